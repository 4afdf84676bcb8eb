"""Seeding, device choice and thread settings, all taken from the config."""
from __future__ import annotations

import random

import numpy as np
import torch

from .config import Config


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for the kit's own random draws."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} asked for, but CUDA is not available (use device=cpu or auto)")
    return dev


def setup(cfg: Config) -> tuple[torch.device, torch.Generator]:
    """Apply the config's runtime settings; returns (device, seeded generator)."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    return resolve_device(cfg.device), seed_everything(cfg.seed)

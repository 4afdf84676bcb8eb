"""Seeding, device choice and thread settings, all taken from the config; per-trainee generators."""
from __future__ import annotations

import random

import numpy as np
import torch

from .config import Config
from .distributed import init_distributed


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
    """Apply the config's runtime settings; returns (device, seeded generator). Under ``torchrun``
    this process joins the run's process group (``distributed.py``); on CUDA, its rank's GPU."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    _, device = init_distributed(resolve_device(cfg.device))
    return device, seed_everything(cfg.seed)


def trainee_generator(seed: int, index: int) -> torch.Generator:
    """The generator of trainee ``index``'s batches: its own stream of the run's seed, so that what a
    model is trained on does not depend on which other models a process trains (torchrun shares K
    single-landmark models out over the ranks)."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

"""Seeding, device choice, thread settings and mixed precision, all taken from the config;
per-trainee generators."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from .config import AMP_MODES, Config
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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX (recent Xeons, AMD Zen 4 and later). Elsewhere bf16 is emulated, which is
    usually slower than float32 (not measured here: the development machine has AVX512-BF16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own (private) probes
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def use_bf16(mode: str, device: torch.device) -> bool:
    """``train.amp`` / ``eval.amp`` on ``device``: "bf16", "off", or "auto" (bf16 where it is native)."""
    if mode not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {mode!r}")
    return native_bf16(device) if mode == "auto" else mode == "bf16"


def bf16_autocast(on: bool, device: torch.device):
    """``torch.autocast`` in bfloat16 on ``device`` when ``on``, else a context that does nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if on else contextlib.nullcontext()


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

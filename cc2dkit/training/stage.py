"""A training stage: some steps of one network on batches from its patch source(s)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..config import Config
from .loss import Walk
from .average import WeightAverage
from .parallel import DataParallel
from .step import ssl_step


def make_optimizer(net: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """Adam over the network's trainable parameters (a stack's: K Adams, element-wise)."""
    params = [p for p in net.decoder.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


LR_SCHEDULES = ("constant", "cosine")


def epoch_lr(cfg: Config, epoch: int) -> float:
    """The learning rate of epoch ``epoch`` (1-based): ``train.lr``, or a cosine from it down to
    ``lr * lr_final_frac`` at the last epoch (a function of the epoch, so a resumed run continues it)."""
    tc = cfg.train
    if tc.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"train.lr_schedule must be one of {LR_SCHEDULES}, got {tc.lr_schedule!r}")
    if tc.lr_schedule == "constant" or tc.epochs <= 1:
        return tc.lr
    t = (epoch - 1) / (tc.epochs - 1)
    return tc.lr * (tc.lr_final_frac + (1 - tc.lr_final_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def stage_steps(cfg: Config, pairs: int) -> int:
    """Steps of one stage per epoch: ``train.steps_per_epoch`` when set, else one pass over the
    stage's ``pairs`` (training items: images, or (image, landmark) pairs), ``ceil(pairs / batch)``."""
    return cfg.train.steps_per_epoch or max(1, math.ceil(pairs / cfg.train.batch_size))


def train_stage(net, optimizer: torch.optim.Optimizer, sources: Sequence, cfg: Config, generator: torch.Generator,
                device: torch.device, steps: int | None = None, dp: DataParallel | None = None,
                average: WeightAverage | None = None) -> np.ndarray:
    """``steps`` SSL steps (None: :func:`stage_steps`); source k feeds model k of ``net`` (one source for one model).

    Returns the (K,) mean losses. Batches are drawn in source order from ``generator`` (``dp``:
    every rank draws the same global batches and trains its share). ``average``: updated after
    every step (``train.ema``).
    """
    losses = []
    for _ in range(steps or stage_steps(cfg, max(len(s) for s in sources))):
        batches = [s.sample(cfg.train.batch_size, generator) for s in sources]
        walk = Walk(cfg.method.pl_walk, cfg.method.pl_walk_stride) if batches[0].partners is not None else None
        losses.append(ssl_step(net, batches, optimizer, cfg.train, device, dp, walk))
        if average is not None:
            average.update(net)
    return np.asarray(losses).mean(axis=0)

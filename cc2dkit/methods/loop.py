"""The one epoch loop of every method.

An epoch: each *trainee* (one model, or a stack of single-landmark models trained as one network)
runs the method's stages in order, each stage ``stage_steps`` SSL steps on batches of its patch
sources; then, for PL methods, Infer-PL re-infers the pseudo-labels with the method's predictor;
then the tracked test error, the log row and the checkpoint.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..inference import Predictor, stack_chunks
from ..network import CC2D, StackedModels
from ..training import PLState, epoch_lr, make_optimizer, set_lr, train_stage
from .context import EpochLog, RunContext, tracked_test_grid


@dataclass
class Trainee:
    """What one :func:`~cc2dkit.training.train_stage` call trains: one model, or K models stacked."""

    net: CC2D | StackedModels
    optimizer: torch.optim.Optimizer
    models: list[CC2D]  # the models it trains (a stack copies its weights back into them)
    columns: list[int]  # the trained landmarks (0..K-1) whose losses it reports
    sources: dict[str, list]  # stage -> one patch source per model of ``net`` (the stages it trains)
    steps: int | None = None  # steps per stage and epoch (None: the ``stage_steps`` rule)

    def sync(self) -> None:
        """Make ``models`` hold the trained weights (a stack trains copies of them)."""
        if isinstance(self.net, StackedModels):
            self.net.to_models(self.models)


def training_groups(ctx: RunContext, per_landmark: bool, batched: bool) -> list[list[int]]:
    """Which models train together: all (one model), one each, or stacks of ``method.stack_size``."""
    k = len(ctx.landmarks)
    if not per_landmark:
        return [list(range(k))]
    return stack_chunks(k, ctx.cfg.method.stack_size) if batched else [[j] for j in range(k)]


def layout(groups: list[list[int]], per_landmark: bool, batched: bool) -> str:
    """How the models are grouped for training (a checkpoint resumes only into the same grouping)."""
    kind = "one model" if not per_landmark else "stacks" if batched else "models"
    return f"{kind} {[len(g) for g in groups]}"


def make_trainees(ctx: RunContext, models: list[CC2D], sources: dict[str, list], groups: list[list[int]],
                  per_landmark: bool, batched: bool) -> list[Trainee]:
    """A trainee per group of :func:`training_groups`. ``sources``: stage -> one source per model
    (per-landmark methods) or the one model's source."""
    if not per_landmark:
        return [Trainee(models[0], make_optimizer(models[0], ctx.cfg), models, groups[0], sources)]
    trainees = []
    for g in groups:
        members = [models[j] for j in g]
        net = StackedModels(members) if batched else members[0]
        trainees.append(Trainee(net, make_optimizer(net, ctx.cfg), members, g,
                                {s: [src[j] for j in g] for s, src in sources.items()}))
    return trainees


def run_epochs(ctx: RunContext, stages: tuple[str, ...], trainees: list[Trainee], predictor: Predictor,
               pl: PLState | None, log: EpochLog, start: int, save: Callable[[int], None], name: str,
               progress: bool) -> None:
    """Epochs ``start + 1`` .. ``train.epochs`` (see the module docstring); ``save(epoch)`` after each."""
    cfg, k = ctx.cfg, len(ctx.landmarks)
    bar = tqdm(total=(cfg.train.epochs - start) * len(trainees), desc=name, disable=not progress)
    for epoch in range(start + 1, cfg.train.epochs + 1):
        t0 = time.perf_counter()
        losses = {s: np.zeros(k) for s in stages}
        for t in trainees:
            set_lr(t.optimizer, epoch_lr(cfg, epoch))
            for s in stages:
                if s in t.sources:
                    losses[s][t.columns] = train_stage(t.net, t.optimizer, t.sources[s], cfg, ctx.generator,
                                                       ctx.device, t.steps)
            t.sync()
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{float(np.mean([losses[s][t.columns] for s in t.sources])):.3f}")
        t_train = time.perf_counter() - t0
        if pl is not None:
            pl.pls = predictor.predict_grid(ctx.train, ctx.unlabelled)
            pl.record(epoch, ctx.train)
        log.add(epoch, losses, tracked_test_grid(ctx, predictor, epoch), time.perf_counter() - t0, t_train)
        save(epoch)
    bar.close()

"""The one epoch loop of every method.

An epoch: each *trainee* (one model, or a stack of single-landmark models trained as one network)
runs the method's stages in order, each stage ``stage_steps`` SSL steps on batches of its patch
sources, drawn from its own generator; then, for PL methods, Infer-PL re-infers the pseudo-labels
with the method's predictor (each PL moving at most ``method.pl_max_move`` grid px after the first
update, when set; with ``method.pl_shape`` read through a shape check fitted to the previous
Infer-PL's unchecked answers, :func:`pl_reader`); then the tracked test error, the log row and the checkpoint.
With ``train.ema`` each trainee keeps a moving average of its weights (:func:`attach_averages`):
Infer-PL and tracking answer with it (:func:`averaged`), the checkpoint keeps both, and after the
last epoch the models hold the average (:func:`adopt_averages`).

Under ``torchrun`` (:func:`distribute`): one model trains data parallel on every rank; K models
(or stacks) are shared out, trainee i to rank ``i % N``, and after each epoch's training every rank
receives the others' weights. Infer-PL and tracking split the images over the ranks.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..distributed import broadcast_tensors, gather_objects, sum_over_ranks
from ..inference import Predictor, stack_chunks
from ..inference.shape import ShapeCheck, ShapeSettings
from ..network import CC2D, StackedModels
from ..runtime import trainee_generator
from ..training import (DataParallel, PLState, WeightAverage, data_parallel, epoch_lr, make_optimizer, memory_format,
                        set_lr, train_stage)
from .context import EpochLog, RunContext, predict_rows, tracked_test_grid


@dataclass
class Trainee:
    """What one :func:`~cc2dkit.training.train_stage` call trains: one model, or K models stacked."""

    net: CC2D | StackedModels
    optimizer: torch.optim.Optimizer
    models: list[CC2D]  # the models it trains (a stack copies its weights back into them)
    columns: list[int]  # the trained landmarks (0..K-1) whose losses it reports
    sources: dict[str, list]  # stage -> one patch source per model of ``net`` (the stages it trains)
    steps: int | None = None  # steps per stage and epoch (None: the ``stage_steps`` rule)
    generator: torch.Generator | None = None  # its batches' draws (set by :func:`distribute`)
    owner: int | None = None  # the rank that trains it when trainees are shared out (None: every rank)
    dp: DataParallel | None = None  # data-parallel training over the ranks (None: this process alone)
    average: WeightAverage | None = None  # train.ema's average of ``net``'s weights (None: off)

    def sync(self) -> None:
        """Make ``models`` hold the trained weights (a stack trains copies of them)."""
        if isinstance(self.net, StackedModels):
            self.net.to_models(self.models)


def distribute(ctx: RunContext, trainees: list[Trainee], per_landmark: bool) -> None:
    """Give trainee i its generator (:func:`~cc2dkit.runtime.trainee_generator`) and, under torchrun,
    its rank (per-landmark methods: ``i % N``) or its data-parallel wrapper (one-model methods)."""
    d = ctx.dist
    for i, t in enumerate(trainees):
        t.generator = trainee_generator(ctx.cfg.seed, i)
        if d.active and per_landmark:
            t.owner = i % d.world
        elif d.active:
            t.dp = data_parallel(t.net, d, ctx.device, memory_format(ctx.cfg.train, ctx.device))


def attach_averages(ctx: RunContext, trainees: list[Trainee]) -> None:
    """Give every trainee its ``train.ema`` average (after :func:`distribute`). Refused where trainees
    are shared out over torchrun ranks: a rank holds only its own trainees' averages, and the weights
    broadcast after each epoch would mix averaged and raw ones."""
    decay = ctx.cfg.train.ema
    if decay is None:
        return
    if any(t.owner is not None for t in trainees):
        raise ValueError("train.ema with one model per landmark is not supported under torchrun (the models "
                         "are shared out over the processes): run it in one process or set train.ema=null")
    for t in trainees:
        t.average = WeightAverage(t.net, decay)


@contextmanager
def averaged(trainees: list[Trainee]):
    """``with averaged(trainees):`` the trainees' models hold their averages (``train.ema``), the raw
    weights again after the block; nothing changes for trainees without one."""
    adopt_averages(trainees)
    try:
        yield
    finally:
        adopt_averages(trainees)  # the swap is its own inverse


def adopt_averages(trainees: list[Trainee]) -> None:
    """Swap each trainee's weights with its average (the models then hold the average; the average
    the raw weights) and copy a stack's into its models."""
    for t in trainees:
        if t.average is not None:
            t.average.swap(t.net)
            t.sync()


def owns(ctx: RunContext, t: Trainee) -> bool:
    return t.owner is None or t.owner == ctx.dist.rank


def share_models(ctx: RunContext, trainees: list[Trainee]) -> None:
    """Every rank gets the weights of the trainees the other ranks trained (shared-out runs)."""
    for t in trainees:
        if t.owner is not None:
            for m in t.models:
                broadcast_tensors(list(m.decoder.state_dict().values()), t.owner, ctx.dist)


def trainee_states(ctx: RunContext, trainees: list[Trainee]) -> tuple[list, list]:
    """The trainees' optimizer state dicts and generator states for a checkpoint, each from the rank
    that trains it (a collective in a shared-out torchrun run: every rank calls it)."""
    optimizers = [_to_cpu(t.optimizer.state_dict()) if owns(ctx, t) else None for t in trainees]
    generators = [t.generator.get_state() if owns(ctx, t) else None for t in trainees]
    if any(t.owner is not None for t in trainees):
        ranks = gather_objects((optimizers, generators), ctx.dist)
        optimizers = [ranks[t.owner or 0][0][i] for i, t in enumerate(trainees)]
        generators = [ranks[t.owner or 0][1][i] for i, t in enumerate(trainees)]
    return optimizers, generators


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


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
    shared_out = any(t.owner is not None for t in trainees)
    bar = tqdm(total=(cfg.train.epochs - start) * len(trainees), desc=name, disable=not progress)
    for epoch in range(start + 1, cfg.train.epochs + 1):
        t0 = time.perf_counter()
        losses = {s: np.zeros(k) for s in stages}
        for t in trainees:
            set_lr(t.optimizer, epoch_lr(cfg, epoch))
            if owns(ctx, t):
                for s in stages:
                    if s in t.sources:
                        losses[s][t.columns] = train_stage(t.net, t.optimizer, t.sources[s], cfg, t.generator,
                                                           ctx.device, t.steps, t.dp, t.average)
                t.sync()
                bar.set_postfix(epoch=epoch, loss=f"{float(np.mean([losses[s][t.columns] for s in t.sources])):.3f}")
            bar.update(1)
        if shared_out:  # the other ranks' models and losses (a loss is 0 where this rank did not train)
            share_models(ctx, trainees)
            losses = {s: sum_over_ranks(v, ctx.dist) for s, v in losses.items()}
        t_train = time.perf_counter() - t0
        with averaged(trainees):  # train.ema: the averages answer; the checkpoint keeps the raw weights too
            if pl is not None:
                shaped = cfg.method.pl_shape
                answers = predict_rows(ctx, pl_reader(ctx, predictor, pl), ctx.train, ctx.unlabelled, unchecked=shaped)
                pl.update(answers[0] if shaped else answers, cfg.method.pl_max_move, cfg.method.pl_agree)
                entry = pl.record(epoch, ctx.train)
                if shaped:  # what the next epoch's check is fitted to (checkpoints keep the history)
                    entry["unchecked"] = answers[1]
            tracked = tracked_test_grid(ctx, predictor, epoch)
        log.add(epoch, losses, tracked, time.perf_counter() - t0, t_train)
        save(epoch)
    bar.close()


def pl_reader(ctx: RunContext, predictor: Predictor, pl: PLState) -> Predictor:
    """The predictor Infer-PL answers with: ``predictor`` itself, or with ``method.pl_shape`` (from the
    second Infer-PL on: the first one's answers come from PLs that started at random) that predictor
    with the shape check of ``eval.shape_reach`` / ``shape_prior`` / ``shape_regression`` fitted to
    the last Infer-PL's answers read without a check (its history's ``unchecked``): a check fitted
    to answers it had pulled would narrow its own spreads epoch after epoch. No label is read; a PL
    far from where the other PLs of its image put it is re-picked near there, and with the prior every
    PL is weighed towards it, as the run's final answers are by the check fitted to them."""
    if not ctx.cfg.method.pl_shape or len(pl.history) < 2:
        return predictor
    reference = predictor.template.points[predictor.landmark_indices]
    answers = pl.history[-1]["unchecked"]  # every Infer-PL of such a run keeps it (pl_shape may not change on resume)
    return predictor.with_shape(ShapeCheck.fit(answers, reference, ShapeSettings.of(ctx.cfg.eval)))

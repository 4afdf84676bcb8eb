"""SLA (single-landmark PL training): one CC2D per trained landmark, any subset of the landmarks.

Each epoch, for every landmark k (models are independent; they share the frozen backbone and
its feature cache): Train-PL on patches centred at the PLs of landmark k, then Infer-PL of
landmark k with model k. The K models are one object, :class:`SLASet`, saved as ``sla_set.pt``
(+ a readable ``sla_set.json``) in the run folder. C-ATD (``atd.py``) adds a Train-Template stage.

Batched training (``method.batched``; None, the default, means on CUDA only): the K decoders
are fused into one :class:`~cc2dkit.network.stacked.StackedDecoder` and trained together, same
schedule per epoch (Train-Template for ATD, Train-PL, then Infer-PL of all K landmarks): every step
draws one batch per landmark from that landmark's source (the run's generator, landmark order) and
updates all K models in one forward/backward (``training/stacked.py``). At the end the weights go
back into the K CC2D models, so :class:`SLASet` is the same. The random draws come in another
order than in the sequential loop (``batched=False``), so the two give different (equally valid)
runs for one seed. On a 2-core CPU with K=19 at grid 192 the stacked step measured 2x slower than
19 separate steps and took 3.6x the memory (``benchmarks/bench_sla.py``), hence the default.

Infer-PL (and prediction) always runs the K models stacked, in chunks of ``method.stack_size``:
each image batch is embedded once for the K models (2x faster than K passes on that CPU).

Resumable (``resume=True``, see ``state.py``): the state after each epoch holds the K models and
their optimizers; a run resumes only with the ``method.batched`` / ``method.stack_size`` it was
started with.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import Config
from ..data.grid import GridImages
from ..data.template_aug import TemplatePatchSource, augment_template
from ..network import CC2D
from ..network.stacked import StackedDecoder
from ..training import make_optimizer
from ..training.checkpoint import load_saved, save_atomic
from ..training.pseudo_labels import PLPatchSource, PLState, expand_original
from ..training.stacked import StackedPredictor, stacked_optimizer, stacked_ssl_step
from .common import (EpochLog, MethodResult, RunContext, finish, prepare_context, share_frozen, stage_steps,
                     tracked_test_grid, train_stage)
from .state import apply_state, load_optimizers, load_state, save_state

SLA_FILE = "sla_set.pt"
SLA_FORMAT = "cc2dkit-sla-set-1"


class SLASet:
    """K single-landmark CC2D models + the template they match against, used as one predictor."""

    def __init__(self, cfg: Config, models: list, landmark_indices: Sequence[int], template_image: torch.Tensor,
                 template_landmarks: np.ndarray, device: torch.device):
        if len(models) != len(landmark_indices):
            raise ValueError(f"{len(models)} models for {len(landmark_indices)} landmarks")
        self.cfg, self.models, self.device = cfg, list(models), device
        self.landmark_indices = [int(l) for l in landmark_indices]
        self.template_image = template_image.detach().cpu()
        self.template_landmarks = np.asarray(template_landmarks, dtype=np.float64)

    def predict_grid(self, data: GridImages, image_indices=None, progress: bool = False) -> np.ndarray:
        """(N, K, 2) grid coordinates of the K trained landmarks (stacked inference, see the module doc)."""
        return _Chunked([_stacked_predictor(self, c) for c in self.chunks()]).predict_grid(data, image_indices,
                                                                                           progress)

    def chunks(self) -> list[list[int]]:
        """Model indices in stacks of at most ``method.stack_size`` (None: all K in one)."""
        size = self.cfg.method.stack_size
        size = len(self.models) if size is None else size
        if size < 1:
            raise ValueError(f"method.stack_size must be >= 1 or None, got {size}")
        return [list(range(i, min(i + size, len(self.models)))) for i in range(0, len(self.models), size)]

    def predict(self, data: GridImages, progress: bool = False) -> np.ndarray:
        """(N, L, 2) original pixels; NaN for the landmarks without a model."""
        return expand_original(data, self.landmark_indices, self.predict_grid(data, progress=progress))

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {"format": SLA_FORMAT, "config": self.cfg.to_dict(), "landmark_indices": self.landmark_indices,
                 "template_image": self.template_image, "template_landmarks": self.template_landmarks,
                 "models": [m.trainable_state_dict() for m in self.models]}
        save_atomic(state, d / SLA_FILE)
        (d / "sla_set.json").write_text(json.dumps({"format": SLA_FORMAT, "landmark_indices": self.landmark_indices,
                                                    "models": len(self.models)}, indent=2))
        return d / SLA_FILE

    @classmethod
    def load(cls, directory: str | Path, device: torch.device | str = "cpu") -> "SLASet":
        path = Path(directory) / SLA_FILE
        state = load_saved(path, SLA_FORMAT, "cc2dkit SLA set")
        cfg = Config.from_dict(state["config"])
        device = torch.device(device)
        models = []
        for sd in state["models"]:
            m = CC2D(cfg.net, cfg.backbone)
            m.load_trainable_state_dict(sd)
            models.append(m)
        share_frozen(models)
        return cls(cfg, [m.to(device) for m in models], state["landmark_indices"], state["template_image"],
                   state["template_landmarks"], device)


def run_per_landmark(cfg: Config, out_dir, data, progress: bool, with_templates: bool, name: str,
                     resume: bool = False) -> MethodResult:
    """The SLA loop; ``with_templates``: a Train-Template stage before Train-PL every epoch (C-ATD)."""
    ctx = prepare_context(cfg, out_dir, data, progress)
    models = [CC2D(cfg.net, cfg.backbone) for _ in ctx.landmarks]
    share_frozen(models)
    models = [m.to(ctx.device) for m in models]
    copies = _template_copies(ctx, progress) if with_templates else None
    pl = PLState.random(ctx.train, ctx.unlabelled, ctx.landmarks, ctx.generator)
    pl.record(0, ctx.train)
    pl_sources = [PLPatchSource(ctx.train, cfg.train, cfg.method, pl, [l]) for l in ctx.landmarks]
    tpl_sources = [TemplatePatchSource(copies, cfg.train, cfg.method, [l]) for l in ctx.landmarks] if copies else None
    sla = SLASet(cfg, models, ctx.landmarks, ctx.template_image, ctx.template_landmarks, ctx.device)
    sla.chunks()  # checks method.stack_size before any work
    log = EpochLog(ctx)
    state = load_state(ctx.out) if resume else None
    bar = tqdm(total=cfg.train.epochs * len(models), desc=name, disable=not progress)
    loop = _batched_epochs if batched_training(cfg, ctx.device) else _sequential_epochs
    loop(ctx, sla, pl, pl_sources, tpl_sources, log, bar, state)
    bar.close()
    if ctx.out is not None:
        sla.save(ctx.out)
    result = finish(ctx, sla, pl, log, progress)
    result.extra["template_copies"] = copies
    return result


def batched_training(cfg: Config, device: torch.device) -> bool:
    """``method.batched``, its None resolved: stacked training on CUDA, one model after the other elsewhere."""
    return device.type == "cuda" if cfg.method.batched is None else bool(cfg.method.batched)


def _sequential_epochs(ctx: RunContext, sla: SLASet, pl: PLState, pl_sources, tpl_sources, log: EpochLog, bar,
                       state: dict | None):
    """One model after the other: Train-Template (ATD) and Train-PL of model k; then Infer-PL of all."""
    models = sla.models
    optimizers = [make_optimizer(m, ctx.cfg) for m in models]
    layout = "sla-sequential"
    start = 0 if state is None else apply_state(state, models, optimizers, ctx.generator, pl, log, layout)
    bar.update(start * len(models))
    for epoch in range(start + 1, ctx.cfg.train.epochs + 1):
        t0 = time.perf_counter()
        losses = {"template": np.zeros(len(models)), "pl": np.zeros(len(models))} if tpl_sources else \
            {"pl": np.zeros(len(models))}
        for k, (model, opt) in enumerate(zip(models, optimizers)):
            if tpl_sources is not None:
                losses["template"][k] = train_stage(model, opt, tpl_sources[k], ctx)
            losses["pl"][k] = train_stage(model, opt, pl_sources[k], ctx)
            bar.update(1)
        t_train = time.perf_counter() - t0
        pl.pls = sla.predict_grid(ctx.train, ctx.unlabelled)
        pl.record(epoch, ctx.train)
        test = tracked_test_grid(ctx, sla, epoch)
        log.add(epoch, losses, test, time.perf_counter() - t0, t_train)
        save_state(ctx.out, epoch, models, optimizers, ctx.generator, pl, log, ctx.cfg.train.save_every,
                   ctx.cfg.train.epochs, layout)


def _batched_epochs(ctx: RunContext, sla: SLASet, pl: PLState, pl_sources, tpl_sources, log: EpochLog, bar,
                    state: dict | None):
    """The K models as StackedDecoders of at most ``method.stack_size`` models (memory grows with
    the stack); their weights are copied back into ``sla.models`` after every epoch."""
    models, chunks = sla.models, sla.chunks()
    layout = f"sla-batched-{[len(c) for c in chunks]}"
    start = 0 if state is None else apply_state(state, models, None, ctx.generator, pl, log, layout)
    stacks = [StackedDecoder([models[k].decoder for k in c]) for c in chunks]
    opts = [stacked_optimizer(s, ctx.cfg) for s in stacks]
    if state is not None:
        load_optimizers(state, opts)
    predictor = _Chunked([_stacked_predictor(sla, c, s) for s, c in zip(stacks, chunks)])
    bar.update(start * len(models))
    for epoch in range(start + 1, ctx.cfg.train.epochs + 1):
        t0 = time.perf_counter()
        losses = {"template": [], "pl": []} if tpl_sources is not None else {"pl": []}
        for stack, opt, c in zip(stacks, opts, chunks):
            if tpl_sources is not None:
                losses["template"].append(_stacked_stage(stack, opt, [tpl_sources[k] for k in c], models[0].cache, ctx))
            losses["pl"].append(_stacked_stage(stack, opt, [pl_sources[k] for k in c], models[0].cache, ctx))
            bar.update(len(c))
        t_train = time.perf_counter() - t0
        pl.pls = predictor.predict_grid(ctx.train, ctx.unlabelled)
        pl.record(epoch, ctx.train)
        test = tracked_test_grid(ctx, predictor, epoch)
        log.add(epoch, {k: np.concatenate(v) for k, v in losses.items()}, test, time.perf_counter() - t0, t_train)
        for stack, c in zip(stacks, chunks):
            stack.to_decoders([models[k].decoder for k in c])
        save_state(ctx.out, epoch, models, opts, ctx.generator, pl, log, ctx.cfg.train.save_every,
                   ctx.cfg.train.epochs, layout)


def _stacked_predictor(sla: SLASet, chunk: list[int], stack: StackedDecoder | None = None) -> StackedPredictor:
    """Models ``chunk`` of ``sla`` as one StackedPredictor (``stack``: an existing stack of them)."""
    stack = StackedDecoder([sla.models[k].decoder for k in chunk]) if stack is None else stack
    points = sla.template_landmarks[[sla.landmark_indices[k] for k in chunk]]
    return StackedPredictor(sla.models[0].cache, stack, sla.template_image, points, sla.device,
                            sla.cfg.eval.batch_size)


class _Chunked:
    """Stacked predictors of consecutive landmark chunks, as one: columns concatenated in order."""

    def __init__(self, predictors: list):
        self.predictors = predictors

    def predict_grid(self, data: GridImages, image_indices=None, progress: bool = False) -> np.ndarray:
        return np.concatenate([p.predict_grid(data, image_indices, progress) for p in self.predictors], axis=1)


def _stacked_stage(stack: StackedDecoder, opt, sources, cache, ctx: RunContext) -> np.ndarray:
    """``train_stage`` of the K models at once (source k feeds model k) -> (K,) mean losses."""
    losses = []
    for _ in range(stage_steps(ctx.cfg, max(len(s) for s in sources))):
        batches = [s.sample(ctx.cfg.train.batch_size, ctx.generator) for s in sources]
        losses.append(stacked_ssl_step(cache, stack, batches, opt, ctx.cfg.train, ctx.device))
    return np.asarray(losses).mean(axis=0)


def _template_copies(ctx: RunContext, progress: bool):
    sample = ctx.train.dataset[ctx.template_index]
    return augment_template(sample.image, sample.landmarks, ctx.cfg.method, ctx.cfg.data.grid, ctx.generator, progress)


def run_sla(cfg: Config, out_dir=None, data=None, progress: bool = True, resume: bool = False) -> MethodResult:
    """SLA: each epoch Train-PL then Infer-PL, one model per landmark (see the module docstring)."""
    return run_per_landmark(cfg, out_dir, data, progress, with_templates=False, name="sla", resume=resume)

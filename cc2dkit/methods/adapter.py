"""C-Adapter schedule: ONE model with per-landmark adapters, trained with the SLA+ATD schedule.

``build_model(cfg, n_landmarks)`` makes the model (e.g. ``network.adapter.build_model``); it is
called with K = the number of trained landmarks and must accept ``model(images, keys,
landmark_ids)`` with ``landmark_ids`` (B,) in [0, K). Each epoch covers all landmarks at once:
Train-Template (augmented-template patches of every landmark, mixed in every batch), Train-PL
(PL patches of every landmark), then Infer-PL of landmark k through adapter k. Every sample carries
its landmark id. Saves ``checkpoint.pt`` (the trainable state of the model).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from ..config import Config
from ..data.template_aug import TemplatePatchSource
from ..training import CHECKPOINT_NAME, make_optimizer, save_checkpoint
from ..training.pseudo_labels import ModelPredictor, PLPatchSource, PLState
from .common import EpochLog, MethodResult, finish, prepare_context, tracked_test_grid, train_stage
from .state import restore_state, save_state
from .sla import _template_copies


def run_adapter(cfg: Config, build_model: Callable, out_dir=None, data=None, progress: bool = True,
                resume: bool = False) -> MethodResult:
    ctx = prepare_context(cfg, out_dir, data, progress)
    model = build_model(cfg, len(ctx.landmarks)).to(ctx.device)
    optimizer = make_optimizer(model, cfg)
    copies = _template_copies(ctx, progress)
    pl = PLState.random(ctx.train, ctx.unlabelled, ctx.landmarks, ctx.generator)
    pl.record(0, ctx.train)
    tpl_source = TemplatePatchSource(copies, cfg.train, cfg.method, ctx.landmarks)
    pl_source = PLPatchSource(ctx.train, cfg.train, cfg.method, pl)
    predictor = ModelPredictor(model, ctx.template_image, ctx.template_landmarks, ctx.landmarks, ctx.device,
                               cfg.eval.batch_size)
    log = EpochLog(ctx)
    k = len(ctx.landmarks)
    start = restore_state(ctx.out, [model], [optimizer], ctx.generator, pl, log) if resume else 0
    for epoch in tqdm(range(start + 1, cfg.train.epochs + 1), desc="adapter", disable=not progress):
        t0 = time.perf_counter()
        loss_t = train_stage(model, optimizer, tpl_source, ctx)
        loss_p = train_stage(model, optimizer, pl_source, ctx)
        t_train = time.perf_counter() - t0
        pl.pls = predictor.predict_grid(ctx.train, ctx.unlabelled)
        pl.record(epoch, ctx.train)
        test = tracked_test_grid(ctx, predictor, epoch)
        log.add(epoch, {"template": np.full(k, loss_t), "pl": np.full(k, loss_p)}, test, time.perf_counter() - t0,
                t_train)
        save_state(ctx.out, epoch, [model], [optimizer], ctx.generator, pl, log, cfg.train.save_every,
                   cfg.train.epochs)
    if ctx.out is not None:
        save_checkpoint(ctx.out / CHECKPOINT_NAME, model, cfg, cfg.train.epochs, optimizer, ctx.generator)
    result = finish(ctx, predictor, pl, log, progress)
    result.extra["template_copies"] = copies
    return result

"""Multi-landmark PL baseline: ONE CC2D trained on PL-centred patches of all K landmarks.

Each epoch: Train-PL (patches around the PLs of every landmark, mixed in every batch), then
Infer-PL of all landmarks with the current model, then the per-landmark test MRE, so the seesaw
(landmarks improving at each other's expense) can be read from ``metrics.csv``. Saves
``checkpoint.pt`` (the trained decoder).
"""
from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from ..network import CC2D
from ..training import CHECKPOINT_NAME, make_optimizer, save_checkpoint
from ..training.pseudo_labels import ModelPredictor, PLPatchSource, PLState
from .common import EpochLog, MethodResult, finish, prepare_context, tracked_test_grid, train_stage
from .state import restore_state, save_state


def run_multi(cfg, out_dir=None, data=None, progress: bool = True, resume: bool = False) -> MethodResult:
    ctx = prepare_context(cfg, out_dir, data, progress)
    model = CC2D(cfg.net, cfg.backbone).to(ctx.device)
    optimizer = make_optimizer(model, cfg)
    pl = PLState.random(ctx.train, ctx.unlabelled, ctx.landmarks, ctx.generator)
    pl.record(0, ctx.train)
    source = PLPatchSource(ctx.train, cfg.train, cfg.method, pl)
    predictor = ModelPredictor(model, ctx.template_image, ctx.template_landmarks, ctx.landmarks, ctx.device,
                               cfg.eval.batch_size)
    log = EpochLog(ctx)
    start = restore_state(ctx.out, [model], [optimizer], ctx.generator, pl, log) if resume else 0
    for epoch in tqdm(range(start + 1, cfg.train.epochs + 1), desc=cfg.method.name, disable=not progress):
        t0 = time.perf_counter()
        loss = train_stage(model, optimizer, source, ctx)
        t_train = time.perf_counter() - t0
        pl.pls = predictor.predict_grid(ctx.train, ctx.unlabelled)
        pl.record(epoch, ctx.train)
        test = tracked_test_grid(ctx, predictor, epoch)
        log.add(epoch, {"pl": np.full(len(ctx.landmarks), loss)}, test, time.perf_counter() - t0, t_train)
        save_state(ctx.out, epoch, [model], [optimizer], ctx.generator, pl, log, cfg.train.save_every,
                   cfg.train.epochs)
    if ctx.out is not None:
        save_checkpoint(ctx.out / CHECKPOINT_NAME, model, cfg, cfg.train.epochs, optimizer, ctx.generator)
    return finish(ctx, predictor, pl, log, progress)

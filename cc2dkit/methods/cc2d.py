"""CC2D as a method: self-supervision on random patches of every training image, no pseudo-labels.

The same training as ``pipeline.train`` (``RandomPatchSource`` + ``Trainer``), run epoch by epoch
so that the per-landmark test error can be tracked like the PL methods' (the seesaw shows in plain
CC2D too). Saves ``checkpoint.pt``; the predictor matches the template with the one model.
"""
from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from ..network import CC2D
from ..training import CHECKPOINT_NAME, RandomPatchSource, Trainer
from ..training.pseudo_labels import ModelPredictor
from .common import EpochLog, MethodResult, finish, prepare_context, stage_steps, tracked_test_grid
from .state import restore_state, save_state


def run_cc2d(cfg, out_dir=None, data=None, progress: bool = True, resume: bool = False) -> MethodResult:
    ctx = prepare_context(cfg, out_dir, data, progress)
    model = CC2D(cfg.net, cfg.backbone).to(ctx.device)
    source = RandomPatchSource(ctx.train, cfg.train)
    trainer = Trainer(model, cfg, source, ctx.device, ctx.generator, stage_steps(cfg, len(ctx.train)))
    predictor = ModelPredictor(model, ctx.template_image, ctx.template_landmarks, ctx.landmarks, ctx.device,
                               cfg.eval.batch_size)
    log = EpochLog(ctx)
    start = restore_state(ctx.out, [model], [trainer.optimizer], ctx.generator, None, log) if resume else 0
    trainer.epoch = start
    for epoch in tqdm(range(start + 1, cfg.train.epochs + 1), desc="cc2d", disable=not progress):
        t0 = time.perf_counter()
        history = trainer.fit(epoch, progress=False)
        t_train = time.perf_counter() - t0
        test = tracked_test_grid(ctx, predictor, epoch)
        log.add(epoch, {"ssl": np.full(len(ctx.landmarks), history[-1]["loss"])}, test, time.perf_counter() - t0,
                t_train)
        save_state(ctx.out, epoch, [model], [trainer.optimizer], ctx.generator, None, log, cfg.train.save_every,
                   cfg.train.epochs)
    if ctx.out is not None:
        trainer.save(ctx.out / CHECKPOINT_NAME)
    return finish(ctx, predictor, None, log, progress)

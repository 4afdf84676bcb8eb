"""The one run path of every method: ``run_method(cfg, out_dir)``.

1. the context: seed, device, data at the grid, the template, the trained landmarks;
2. the models (``registry.py``), then the augmented templates and the initial pseudo-labels, each
   drawn from the run's generator in this order;
3. the patch sources of the method's stages, the predictor, the trainees, and (``resume``) the
   checkpoint's state;
4. the epochs (``loop.py``), a checkpoint after each ``train.save_every``; with ``refine.enabled``
   the fine stage's network trains beside them (stage ``fine``) and refines the final answers;
   with ``train.ema`` the models then take their weight averages;
5. ``model.pt``, then the test split's predictions and evaluation (``runfolder.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..backbone import recorded_weights
from ..config import RESUME_MAY_CHANGE, Config, config_diff
from ..data.template_aug import TemplateCopies, augment_template
from ..data.grid import GridImages
from ..inference import Predictor, RefinedPredictor, fine_template
from ..inference.shape import check_shape_inputs
from ..network import CC2D
from ..training import (CropPatchSource, PLPatchSource, PLState, RandomPatchSource, TemplatePatchSource,
                        make_optimizer)
from ..distributed import env_dist
from ..runtime import resolve_device, use_bf16
from .checkpoint import load_checkpoint, restore, restore_trainees, save_checkpoint
from .context import EpochLog, RunContext, pool_rows, predict_rows, prepare_context, unlabelled_rows
from .loop import (Trainee, adopt_averages, attach_averages, distribute, layout, make_trainees, run_epochs,
                   trainee_states, training_groups)
from .registry import MethodSpec, method_config, method_spec
from .runfolder import (CHECKPOINT, CONFIG, LEGACY, METRICS, MODEL, PL_HISTORY, evaluation, save_model,
                        with_shape_and_pool, write_csv_atomic, write_results, write_text_atomic)


@dataclass
class MethodResult:
    predictor: Predictor  # the trained model(s) with the template
    pl_state: PLState | None  # None without pseudo-labels (plain CC2D)
    metrics: pd.DataFrame  # per epoch and landmark
    table: pd.DataFrame | None  # final per-landmark table on the test split (when labelled)
    predictions: np.ndarray | None = None  # (N_test, L, 2) original pixels, NaN for landmarks not trained
    extra: dict = field(default_factory=dict)  # "template_copies": the augmented templates (ATD stages)
    data: tuple | None = None  # (train, test) GridImages the run used


def batched_training(cfg: Config, device: torch.device) -> bool:
    """``method.batched``, its None resolved: stacked training on CUDA, one model after the other elsewhere
    (on a 2-core CPU the stacked step was the slower one: benchmarks/RESULTS.md) and wherever the
    config crops the finest stages (``train.crop_below``: a stack's batch row carries K models' samples;
    an explicit ``method.batched=true`` with a crop is refused when the config is built)."""
    if cfg.method.batched is None:
        return device.type == "cuda" and cfg.train.crop_below is None
    return bool(cfg.method.batched)


def stage_sources(spec: MethodSpec, ctx: RunContext, copies: TemplateCopies | None, pl: PLState | None
                  ) -> dict[str, list]:
    """Per stage, the patch sources: one per model (per-landmark methods) or one for the one model."""
    cfg = ctx.cfg
    groups = [[l] for l in ctx.landmarks] if spec.per_landmark else [ctx.landmarks]
    makers = {
        "ssl": lambda g: RandomPatchSource(ctx.train, cfg.train),
        "template": lambda g: TemplatePatchSource(copies, cfg.train, cfg.method, g),
        "pl": lambda g: PLPatchSource(ctx.train, cfg.train, cfg.method, pl, g, copies=copies),
    }
    return {s: [makers[s](g) for g in groups] for s in spec.stages}


def run_method(cfg: Config, out_dir=None, data=None, progress: bool = True, resume: bool = False) -> MethodResult:
    """Train ``cfg.method.name``, evaluate on the test split, write the run folder ``out_dir`` (if given).

    ``data``: (train, test) GridImages to reuse (built from ``cfg.data`` when None). ``resume``:
    continue from ``out_dir/checkpoint.pt``. Under ``torchrun`` every rank calls it; they share
    the work (``loop.py``) and rank 0 writes the run folder and shows progress.
    """
    d = env_dist()
    progress = progress and d.main
    cfg = record_backbone(method_config(cfg))
    spec = method_spec(cfg)
    if d.active and not spec.per_landmark and cfg.train.batch_size % d.world:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} must be divisible by the {d.world} processes "
                         "of the run: each trains an equal share of every batch")
    if resume and out_dir is None:
        raise ValueError("resume needs a run folder (out_dir)")
    state = load_checkpoint(Path(out_dir)) if resume else None
    if state is not None:
        check_resume(state, cfg)
    elif out_dir is not None:
        refuse_to_overwrite(Path(out_dir))
    ctx = prepare_context(cfg, out_dir, data, progress)
    if spec.uses_pl and not ctx.unlabelled:
        raise ValueError("the training split holds only the template; PL methods need unlabelled images")
    if cfg.eval.shape_reach is not None:  # fitted at the end: fail now, not after the training
        check_shape_inputs(len(ctx.landmarks), len(unlabelled_rows(ctx.train, cfg.data.template)))
    if cfg.method.pl_shape:  # a check fitted to the PLs from the second epoch on: fail now
        check_shape_inputs(len(ctx.landmarks), len(ctx.unlabelled), "method.pl_shape")
    pool_rows(ctx.train, cfg)  # the template pool's images, fitted at the end: fail now, not after the training
    k = len(ctx.landmarks)
    models = [m.to(ctx.device) for m in spec.build_models(cfg, k)]
    fine = CC2D(cfg.net, cfg.backbone).to(ctx.device) if cfg.refine.enabled else None  # the fine stage's network
    copies = augment_template(*_template_original(ctx), cfg.method, cfg.data.grid, ctx.generator, progress) \
        if spec.uses_templates else None
    pl = None
    if spec.uses_pl:
        pl = PLState.random(ctx.train, ctx.unlabelled, ctx.landmarks, ctx.generator)
        pl.record(0, ctx.train)
    sources = stage_sources(spec, ctx, copies, pl)
    # the eval.* settings: how the trained model answers
    final = spec.predictor(cfg, models, ctx.template, ctx.landmarks, ctx.device)
    bf16 = use_bf16(cfg.train.amp, ctx.device)  # the step, Infer-PL and tracking
    predictor = final.plain(bf16=bf16)  # Infer-PL and tracking: the grid argmax against the template alone (cheap)
    log, start = EpochLog(ctx), 0
    batched = spec.per_landmark and batched_training(cfg, ctx.device)
    groups = training_groups(ctx, spec.per_landmark, batched)
    grouping = layout(groups, spec.per_landmark, batched)
    trained = models + ([fine] if fine is not None else [])
    if fine is not None:
        grouping += f" + fine x{cfg.refine.scale}"
    if state is not None:  # the weights before the trainees: a stack copies them when it is built
        start, log.rows = restore(state, trained, ctx.generator, pl, grouping)
    trainees = make_trainees(ctx, models, sources, groups, spec.per_landmark, batched)
    stages = spec.stages
    if fine is not None:
        trainees.append(fine_trainee(ctx, fine, progress))
        stages += ("fine",)
    distribute(ctx, trainees, spec.per_landmark)
    attach_averages(ctx, trainees)
    if state is not None:
        restore_trainees(state, [t.optimizer for t in trainees], [t.generator for t in trainees],
                         [t.average for t in trainees])
    if ctx.out is not None:
        ctx.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(ctx.out / CONFIG, cfg.to_json())

    def save(epoch: int) -> None:
        every = max(cfg.train.save_every, 1)
        if out_dir is not None and (epoch % every == 0 or epoch == cfg.train.epochs):
            optimizers, generators = trainee_states(ctx, trainees)  # every rank: a collective when shared out
            if ctx.out is not None:
                save_checkpoint(ctx.out, cfg, epoch, trained, optimizers, generators, ctx.generator, pl, log.rows,
                                grouping, bf16, [t.average for t in trainees])

    run_epochs(ctx, stages, trainees, predictor, pl, log, start, save, spec.name, progress)
    adopt_averages(trainees)  # train.ema: the trained models are the averages
    predictor = final
    if fine is not None:  # Infer-PL and tracking ran at the grid; the result is refined
        predictor = RefinedPredictor.build(predictor, fine, fine_template(ctx.template, cfg.refine.scale), cfg.refine)
    # the shape check, then the template pool: fitted to its own answers on the unlabelled images
    predictor = with_shape_and_pool(predictor, cfg, None, ctx.train, progress)
    if ctx.out is not None:
        save_model(ctx.out, predictor, cfg, cfg.train.epochs)
    result = finish(ctx, predictor, pl, log, progress)
    result.extra["template_copies"] = copies
    return result


def record_backbone(cfg: Config) -> Config:
    """``cfg`` with its backbone weights file recorded: the absolute path and the file's sha256 (a
    run predicts later only with the same weights), unless already recorded."""
    if cfg.backbone.weights_sha256 is not None:
        return cfg
    weights, sha = recorded_weights(cfg.backbone.weights)
    return cfg.replace(**{"backbone.weights": weights, "backbone.weights_sha256": sha})


def check_resume(state: dict, cfg: Config) -> None:
    """Refuse a resume whose config changes what the checkpoint's weights mean (``RESUME_MAY_CHANGE``
    lists what may change), or that would end before the epoch the checkpoint already holds."""
    saved = Config.from_dict(state["config"])
    changed = config_diff(saved, cfg, RESUME_MAY_CHANGE)
    if changed:
        was, now = saved.flat(), cfg.flat()
        diffs = "; ".join(f"{k}: {was[k]!r} -> {now[k]!r}" for k in changed)
        raise ValueError(f"cannot resume {state['path']} with another config ({diffs}); on resume only "
                         f"{', '.join(RESUME_MAY_CHANGE)} may change")
    if state["epoch"] > cfg.train.epochs:
        raise ValueError(f"cannot resume {state['path']}: it holds epoch {state['epoch']}, more than "
                         f"train.epochs={cfg.train.epochs}; resume with train.epochs >= {state['epoch']}")
    check_precision(state, saved, cfg)


def check_precision(state: dict, saved: Config, cfg: Config) -> None:
    """A run trains on in the precision it started in: ``train.amp`` may change on resume only in
    how it is spelled ("auto" resolves by device: a run moved to another machine must not switch
    precision silently)."""
    device = resolve_device(cfg.device)
    now = use_bf16(cfg.train.amp, device)
    name = {True: "bfloat16", False: "float32"}
    was = state.get("train_bf16")
    if was is None:  # saved before the record: an explicit train.amp is the user's choice; "auto" changed meaning
        old_auto = device.type == "cuda"  # "auto" meant bf16 on CUDA only before it meant "where native"
        if cfg.train.amp == "auto" and saved.train.amp == "auto" and old_auto != now:
            raise ValueError(f"cannot resume {state['path']}: its checkpoint does not record the precision it "
                             f"trained in, and train.amp='auto' now means {name[now]} on {device} (it meant "
                             f"{name[old_auto]} before); resume with --set train.amp=off or --set train.amp=bf16")
        return
    if was != now:
        raise ValueError(f"cannot resume {state['path']}: it trained in {name[was]}, and train.amp="
                         f"{cfg.train.amp!r} means {name[now]} on {device}; resume with --set train.amp="
                         f"{'bf16' if was else 'off'} to train on as it did")


def refuse_to_overwrite(out: Path) -> None:
    """A new run never writes into a folder holding another run's model or checkpoint."""
    held = [f for f in (CHECKPOINT, MODEL, *LEGACY) if (out / f).exists()]
    if held:
        raise ValueError(f"{out} already holds a run ({', '.join(held)}): resume it (--resume) or choose "
                         "another run folder")


def fine_trainee(ctx: RunContext, fine: CC2D, progress: bool) -> Trainee:
    """The fine stage's network, trained each epoch on windows of the training images at the fine grid."""
    rc, train = ctx.cfg.refine, ctx.cfg.train
    if rc.rotation_deg is not None:
        train = replace(train, rotation_deg=rc.rotation_deg)
    images = GridImages(ctx.train.dataset, rc.scale * ctx.cfg.data.grid, "fine", progress).images
    source = CropPatchSource(images, rc.crop, train)
    return Trainee(fine, make_optimizer(fine, ctx.cfg), [fine], list(range(len(ctx.landmarks))), {"fine": [source]},
                   steps=rc.steps_per_epoch)


def _template_original(ctx: RunContext) -> tuple[np.ndarray, np.ndarray]:
    """The template at original resolution: (H, W) image and (L, 2) landmarks in pixels."""
    sample = ctx.train.dataset[ctx.template_index]
    return sample.image, sample.landmarks


def finish(ctx: RunContext, predictor: Predictor, pl: PLState | None, log: EpochLog, progress: bool) -> MethodResult:
    """Final test predictions and table, and the run files; returns the result."""
    metrics = log.frame()
    pred = table = None
    if ctx.test is not None:
        pred = predictor.to_original(ctx.test, predict_rows(ctx, predictor, ctx.test, list(range(len(ctx.test))),
                                                            progress))
        if ctx.test.labelled.all():
            table = evaluation(ctx.test, pred, ctx.landmarks, ctx.cfg.eval.radii_mm)[1]
    if ctx.out is not None:
        if pl is not None:
            write_csv_atomic(pl.history_frame(), ctx.out / PL_HISTORY, index=False)
        write_csv_atomic(metrics, ctx.out / METRICS, index=False)
        if pred is not None:
            write_results(ctx.out, "test", ctx.test, pred, ctx.landmarks, ctx.cfg.eval.radii_mm)
    return MethodResult(predictor, pl, metrics, table, pred, data=(ctx.train, ctx.test))

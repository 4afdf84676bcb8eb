"""The run folder: one format for every method.

    config.json             the configuration the run trains with
    checkpoint.pt           resumable training state, saved every ``train.save_every`` epochs:
                            epoch, model weights, optimizers, generator, pseudo-labels, log rows
    model.pt                the trained result: model weights, trained landmarks, the template
                            (grid image and landmarks), the config, the shape check's model
                            (eval.shape_reach), the template pool (eval.template_pool); what
                            predict/evaluate load
    metrics.csv             per epoch and landmark: stage losses, tracked test MRE, seconds
    pl_history.csv          PL methods: per epoch and landmark, PL movement and (analysis) PL error
    predictions_<split>.csv image, landmark, x, y in original pixels (the folder-CSV format; image: the file
                            as the dataset names it, e.g. test/005.png)
    evaluation_<split>.csv  per-landmark MRE, SD, SDR and the "all" row (labelled splits)
    errors_<split>.csv      image, landmark, error_mm (labelled splits)

Each file is written whole (``save_atomic`` / ``write_text_atomic``): an interrupted run never
leaves half a file. Folders written by cc2dkit 0.1 (``checkpoint.pt`` as the trained one-model
weights, ``sla_set.pt``, ``method_state.pt``, format 1) still predict and evaluate; they cannot
be resumed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..config import PREDICTION_KEEPS, Config, config_diff, matches
from ..data.folder import landmarks_frame
from ..data.grid import GridImages
from ..inference import ModelSetPredictor, Predictor, RefinedPredictor, Template
from ..inference.pool import TemplatePool
from ..inference.shape import ShapeCheck, ShapeSettings
from ..metrics import errors_long, per_landmark_table, radial_errors_mm
from ..network import CC2D
from ..network.legacy import upgrade_decoder_state
from .context import pool_rows, unlabelled_rows
from .registry import method_config, method_spec

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
METRICS = "metrics.csv"
PL_HISTORY = "pl_history.csv"
CHECKPOINT_FORMAT = "cc2dkit-checkpoint-3"  # 3: each trainee's generator
MODEL_FORMAT = "cc2dkit-model-2"
LEGACY = {"checkpoint.pt": "cc2dkit-checkpoint-1", "sla_set.pt": "cc2dkit-sla-set-1",
          "method_state.pt": "cc2dkit-method-state-1"}


def predictions_csv(split: str) -> str:
    return f"predictions_{split}.csv"


def evaluation_csv(split: str) -> str:
    return f"evaluation_{split}.csv"


def errors_csv(split: str) -> str:
    return f"errors_{split}.csv"


# -- whole-file writes and checked reads --------------------------------------------------------

def save_atomic(state: dict, path: str | Path) -> Path:
    """``torch.save`` to a temporary file, then rename: an interrupted save never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_csv_atomic(frame: pd.DataFrame, path: str | Path, **kw) -> Path:
    return write_text_atomic(path, frame.to_csv(**kw))


def load_saved(path: str | Path, fmt: str, what: str) -> dict:
    """A dict saved by cc2dkit with ``"format": fmt``; clear errors naming ``path`` otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or foreign file: say which one
        raise ValueError(f"cannot read {what} {path}: {e}") from e
    if not isinstance(state, dict) or state.get("format") != fmt:
        found = state.get("format") if isinstance(state, dict) else None
        raise ValueError(f"{path} is not a {what} of this cc2dkit (format {found!r}, expected {fmt!r})")
    return state


def run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise FileNotFoundError(f"no {CONFIG} in run folder {run_dir}")
    return Config.from_dict(json.loads(path.read_text()))


# -- the trained result -------------------------------------------------------------------------

def trained_networks(predictor: Predictor) -> tuple[list[CC2D], CC2D | None]:
    """What a run trained: its coarse model(s) and its fine network (None without a fine stage)."""
    coarse = predictor.coarse_stage
    models = coarse.models if isinstance(coarse, ModelSetPredictor) else [coarse.model]
    return models, predictor.fine if isinstance(predictor, RefinedPredictor) else None


def save_model(out: Path, predictor: Predictor, cfg: Config, epochs: int) -> Path:
    """``model.pt``: what :func:`load_predictor` needs, without the training data."""
    refined = predictor if isinstance(predictor, RefinedPredictor) else None
    coarse = predictor.coarse_stage
    models, fine = trained_networks(predictor)
    state = {"format": MODEL_FORMAT, "version": __version__, "config": cfg.to_dict(), "epochs": epochs,
             "landmark_indices": predictor.landmark_indices,
             "models": [m.trainable_state_dict() for m in models],
             "template_image": predictor.template.image.detach().cpu(),
             "template_points": np.asarray(predictor.template.points),
             "template_names": list(predictor.template.names),
             "template_original": None if predictor.template.original is None else  # for augmented template views
             torch.as_tensor(predictor.template.original, dtype=torch.float16),
             "fine": None if fine is None else fine.trainable_state_dict(),
             "template_fine": None if refined is None else refined.template_fine.detach().cpu(),
             "shape": None if coarse.shape is None else coarse.shape.state(),
             "pool": None if coarse.pool is None else {**coarse.pool.state(), "asked": cfg.eval.template_pool}}
    return save_atomic(state, out / MODEL)


def load_predictor(run_dir: str | Path, device: torch.device | str = "cpu", cfg: Config | None = None,
                   train: GridImages | None = None, progress: bool = False) -> Predictor:
    """The trained predictor of a finished run folder (its own template; ``with_template`` for another).

    ``cfg``: the config to predict with (inference settings such as ``eval.*``, another data
    folder, where the backbone weights file is now); it must keep what the weights mean
    (``PREDICTION_KEEPS``), else a ValueError names the fields. ``train``: the run's training
    images, needed only by one-model folders of cc2dkit 0.1 and by a shape check (``eval.shape_reach``)
    or a template pool (``eval.template_pool``) that ``model.pt`` does not hold (built from the
    config when None).
    """
    run_dir = Path(run_dir)
    state = load_saved(run_dir / MODEL, MODEL_FORMAT, "cc2dkit model file") if (run_dir / MODEL).exists() else None
    run_cfg = method_config(Config.from_dict(state["config"]) if state is not None else run_config(run_dir))
    if cfg is not None:
        changed = [k for k in config_diff(run_cfg, method_config(cfg)) if matches(k, PREDICTION_KEEPS)]
        if changed:
            was, now = run_cfg.flat(), method_config(cfg).flat()
            raise ValueError(f"{run_dir} was trained with {', '.join(f'{k}={was[k]!r}' for k in changed)}; "
                             f"predicting with {', '.join(f'{k}={now[k]!r}' for k in changed)} would misuse "
                             "its weights")
    cfg = method_config(cfg) if cfg is not None else run_cfg
    device = torch.device(device)
    if state is not None:
        original = state.get("template_original")
        template = Template(state["template_image"], np.asarray(state["template_points"], dtype=np.float64),
                            None if original is None else original.float().numpy(),
                            tuple(state.get("template_names", ())))
        predictor = _predictor(cfg, state["models"], state["landmark_indices"], template, device, run_dir / MODEL)
        if state.get("fine") is not None:
            fine = CC2D(cfg.net, cfg.backbone)
            fine.load_trainable_state_dict(state["fine"])
            predictor = RefinedPredictor.build(predictor, fine.to(device), state["template_fine"], cfg.refine)
        return with_shape_and_pool(predictor, cfg, state, train, progress)
    if (run_dir / "sla_set.pt").exists():
        state = load_saved(run_dir / "sla_set.pt", LEGACY["sla_set.pt"], "cc2dkit 0.1 SLA set")
        template = Template(state["template_image"], np.asarray(state["template_landmarks"], dtype=np.float64))
        return with_shape_and_pool(_predictor(cfg, state["models"], state["landmark_indices"], template, device,
                                              run_dir / "sla_set.pt", legacy=True), cfg, None, train, progress)
    legacy = run_dir / "checkpoint.pt"
    if legacy.exists() and _format(legacy) == LEGACY["checkpoint.pt"]:
        state = load_saved(legacy, LEGACY["checkpoint.pt"], "cc2dkit 0.1 checkpoint")
        if train is None:
            train = training_images(cfg)
        from ..data.landmarks import resolve_landmarks

        landmarks = resolve_landmarks(cfg.method.landmarks, train.landmark_names)
        template = Template.from_data(train, cfg.data.template)
        return with_shape_and_pool(_predictor(cfg, [state["model"]], landmarks, template, device, legacy,
                                              legacy=True), cfg, None, train, progress)
    raise FileNotFoundError(f"no {MODEL} in {run_dir}: the run has not finished (resume it: "
                            f"python -m cc2dkit train --run {run_dir} --resume)")


def training_images(cfg: Config, progress: bool = False) -> GridImages:
    """The config's training split at the model grid (its labels unread but the template's)."""
    from ..data import build_datasets

    return GridImages(build_datasets(cfg.data, cfg.seed)[0], cfg.data.grid, "train", progress=progress)


def with_shape_and_pool(predictor: Predictor, cfg: Config, state: dict | None, train: GridImages | None = None,
                        progress: bool = False) -> Predictor:
    """``predictor`` with the shape check (``eval.shape_reach``, ``eval.shape_prior``) and then the template pool
    (``eval.template_pool``) the config asks for: those a run saved in its model file (``state``),
    or (a run's end; a run trained without them, a check of the other kind, a pool of another size or
    fitted under another check) fitted now to the predictor's own answers on the unlabelled training
    images of ``train`` (built from the config when None). The one place that knows their order: the
    pool is fitted to checked answers."""
    state = state or {}
    shape, pool, saved_pool = ShapeSettings.of(cfg.eval), cfg.eval.template_pool, state.get("pool")
    saved_shape = state.get("shape")
    fit_shape = shape is not None and (saved_shape is None
                                       or (saved_shape.get("coef") is not None) != shape.regression)
    # the pool was fitted to the saved check's answers: another check model (the other kind, or none) refits
    # it; the reach and prior, read-time settings like the check's own, keep it
    other_check = fit_shape or (shape is None and saved_shape is not None)
    fit_pool = pool > 0 and (saved_pool is None or saved_pool.get("asked") != pool or other_check)
    if train is None and (fit_shape or fit_pool):
        train = training_images(cfg, progress)
    if shape is not None:
        predictor = predictor.fitted_shape(train, unlabelled_rows(train, cfg.data.template), shape, progress) \
            if fit_shape else predictor.with_shape(ShapeCheck.from_state(saved_shape, shape))
    if pool > 0:
        predictor = predictor.pooled(train, pool_rows(train, cfg), progress) if fit_pool \
            else predictor.with_pool(TemplatePool.from_state(saved_pool))
    return predictor


def _format(path: Path) -> str | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        return None
    return state.get("format") if isinstance(state, dict) else None


def _predictor(cfg: Config, weights: list, landmarks: list[int], template: Template, device: torch.device,
               where: Path, legacy: bool = False) -> Predictor:
    spec = method_spec(cfg)
    k = len(landmarks)
    models = spec.build_models(cfg, k)
    if len(models) != len(weights):
        raise ValueError(f"{where} holds {len(weights)} models, a {spec.name} run of {k} landmarks has {len(models)}")
    for m, w in zip(models, weights):
        m.load_trainable_state_dict(upgrade_decoder_state(w, m.decoder, f"{where} ({LEGACY.get(where.name)})")
                                    if legacy else w)
    models = [m.to(device) for m in models]
    return spec.predictor(cfg, models, template, landmarks, device)


# -- results of a split -------------------------------------------------------------------------

def evaluation(data: GridImages, pred: np.ndarray, landmarks: list[int], radii) -> tuple[np.ndarray, pd.DataFrame]:
    """(N, K) errors and the per-landmark table of original-pixel predictions (N, L, 2) on a labelled
    split, in mm (or px, labelled so, when the images' spacing is unknown)."""
    if not data.labelled.all():
        missing = [data.ids[i] for i in np.flatnonzero(~data.labelled)][:5]
        raise ValueError(f"cannot evaluate: images without ground truth, e.g. {missing}")
    errors = radial_errors_mm(pred[:, landmarks], data.original_landmarks[:, landmarks], data.scale)
    return errors, per_landmark_table(errors, [data.landmark_names[l] for l in landmarks], radii, data.unit)


def write_results(out: Path, split: str, data: GridImages, pred: np.ndarray, landmarks: list[int], radii,
                  evaluate: bool = True) -> pd.DataFrame | None:
    """``predictions_<split>.csv`` and, with ``evaluate`` on a labelled split, ``evaluation_<split>.csv``
    and ``errors_<split>.csv``; returns the evaluation table (None when not evaluated)."""
    names = [data.landmark_names[l] for l in landmarks]
    refs = [data.dataset.image_ref(i) for i in range(len(data))]  # file names, not bare ids ("005" stays "005.png")
    write_csv_atomic(landmarks_frame(pred[:, landmarks], refs, names), out / predictions_csv(split), index=False)
    if not evaluate or not data.labelled.all():
        return None
    errors, table = evaluation(data, pred, landmarks, radii)
    write_csv_atomic(table, out / evaluation_csv(split))
    write_csv_atomic(errors_long(errors, names, refs, data.unit), out / errors_csv(split), index=False)
    return table

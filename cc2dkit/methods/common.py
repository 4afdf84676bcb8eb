"""What every pseudo-label method shares: data and landmark selection, stages, evaluation, run files.

Steps of a stage per epoch: ``cfg.train.steps_per_epoch`` when set, else one pass over the
stage's (image, landmark) pairs, ``ceil(pairs / cfg.train.batch_size)``: N unlabelled images x the
landmarks the stage trains for a Train-PL stage, ``method.atd_copies`` x those landmarks for a
Train-Template stage. Pairs are drawn uniformly with replacement.

A run folder (``out_dir``) receives:

    config.json       the full configuration
    pl_history.csv    PLState.history_frame(): epoch, landmark, movement (px, mm), PL error (mm, analysis)
    metrics.csv       per epoch and landmark: stage losses, test MRE (mm) when the test split is labelled,
                      seconds of the epoch and of its training stages
    predictions.csv   test predictions of the trained landmarks (original pixels)
    evaluation.csv    final per-landmark table (cc2dkit.metrics.per_landmark_table) when labelled
    + the trained model(s), see each method
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import Config
from ..data import build_datasets
from ..data.grid import GridImages
from ..inference import predictions_frame
from ..metrics import per_landmark_table, radial_errors_mm
from ..runtime import setup
from ..training.pseudo_labels import PLState, for_model
from ..training.step import ssl_step


@dataclass
class RunContext:
    cfg: Config
    device: torch.device
    generator: torch.Generator
    train: GridImages
    test: GridImages | None
    template_index: int  # row of the template in ``train``
    unlabelled: list[int]  # rows of ``train`` the PLs live on (non-template images; the first ``method.pl_images``)
    landmarks: list[int]  # the K trained dataset landmarks
    out: Path | None

    @property
    def landmark_names(self) -> list[str]:
        return [self.train.landmark_names[l] for l in self.landmarks]

    @property
    def template_image(self) -> torch.Tensor:
        return self.train.images[self.template_index]

    @property
    def template_landmarks(self) -> np.ndarray:
        """(L, 2) grid landmarks of the template: the only ground truth training reads."""
        return self.train.landmarks[self.template_index]


def prepare_context(cfg: Config, out_dir, data=None, progress: bool = True) -> RunContext:
    """Seed and device from ``cfg``; ``data`` = (train, test) GridImages, built from ``cfg.data`` if None."""
    device, gen = setup(cfg)
    if data is None:
        train_set, test_set = build_datasets(cfg.data, cfg.seed)
        data = (GridImages(train_set, cfg.data.grid, "train", progress),
                GridImages(test_set, cfg.data.grid, "test", progress))
    train, test = data
    t = train.index(cfg.data.template)
    if np.isnan(train.landmarks[t]).any():
        raise ValueError(f"template image {cfg.data.template!r} has no landmark annotation")
    landmarks = resolve_landmarks(cfg.method.landmarks, train.landmark_names)
    unlabelled = [i for i in range(len(train)) if i != t]
    if not unlabelled:
        raise ValueError("the training split holds only the template; PL methods need unlabelled images")
    n = cfg.method.pl_images
    if n is not None:
        if n < 1:
            raise ValueError(f"method.pl_images must be >= 1 or None, got {n}")
        unlabelled = unlabelled[:n]
    out = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(cfg.to_json())
    return RunContext(cfg, device, gen, train, test, t, unlabelled, landmarks, out)


def resolve_landmarks(selection, names) -> list[int]:
    """``method.landmarks`` (indices and/or names, None: all) -> distinct dataset landmark indices.

    Names match case-insensitively; an unknown name or an index out of range raises a ValueError
    naming it and listing the valid choices.
    """
    names = list(names)
    if selection is None:
        return list(range(len(names)))
    lower = {n.lower(): i for i, n in enumerate(names)}
    out = []
    for item in selection:
        if isinstance(item, str) and not item.strip().lstrip("-").isdigit():
            if item.lower() not in lower:
                raise ValueError(f"unknown landmark name {item!r} in method.landmarks; known: {names}")
            out.append(lower[item.lower()])
        else:
            i = int(item)
            if not 0 <= i < len(names):
                raise ValueError(f"landmark index {i} in method.landmarks is out of range [0, {len(names)})")
            out.append(i)
    if not out or len(set(out)) != len(out):
        raise ValueError(f"method.landmarks must name distinct landmarks, got {selection}")
    return out


def stage_steps(cfg: Config, pairs: int) -> int:
    """Steps of one stage per epoch (see the module docstring)."""
    return cfg.train.steps_per_epoch or max(1, math.ceil(pairs / cfg.train.batch_size))


def train_stage(model, optimizer, source, ctx: RunContext) -> float:
    """``stage_steps`` SSL steps on batches of ``source``; returns the mean loss."""
    losses = []
    for _ in range(stage_steps(ctx.cfg, len(source))):
        batch = for_model(source.sample(ctx.cfg.train.batch_size, ctx.generator), model)
        loss, _ = ssl_step(model, batch, optimizer, ctx.cfg.train, ctx.device)
        losses.append(loss)
    return float(np.mean(losses))


def share_frozen(models: list) -> None:
    """Let models share one frozen backbone and feature cache (they are identical and frozen)."""
    for m in models[1:]:
        m.backbone = models[0].backbone
        m.cache = models[0].cache


def tracked_test_grid(ctx: RunContext, predictor, epoch: int) -> tuple[list[int], np.ndarray] | None:
    """After epoch ``epoch``: (rows, (n, K, 2) grid predictions) of the tracked test images, or None.

    Tracked: every ``eval.track_every`` epochs and at the last one (never when 0), on the first
    ``eval.track_images`` test images (all when None).
    """
    every, last = ctx.cfg.eval.track_every, epoch == ctx.cfg.train.epochs
    if ctx.test is None or every <= 0 or (epoch % every and not last):
        return None
    limit = ctx.cfg.eval.track_images
    rows = list(range(len(ctx.test) if limit is None else min(limit, len(ctx.test))))
    return rows, predictor.predict_grid(ctx.test, rows)


def test_errors(ctx: RunContext, rows: list[int], pred_grid: np.ndarray) -> np.ndarray | None:
    """(n, K) errors in mm of (n, K, 2) grid predictions on test ``rows``; None when unlabelled."""
    if ctx.test is None or not ctx.test.labelled[rows].all():
        return None
    full = np.full((len(ctx.test), len(ctx.test.landmark_names), 2), np.nan)
    full[np.ix_(rows, ctx.landmarks)] = pred_grid
    pred = ctx.test.to_original(full)[np.ix_(rows, ctx.landmarks)]
    return radial_errors_mm(pred, ctx.test.original_landmarks[np.ix_(rows, ctx.landmarks)], ctx.test.spacing_mm)


@dataclass
class MethodResult:
    predictor: object  # has predict(data) -> (N, L, 2) original pixels (NaN for untrained landmarks)
    pl_state: PLState | None  # None for plain CC2D (no pseudo-labels)
    metrics: pd.DataFrame  # per epoch and landmark
    table: pd.DataFrame | None  # final per-landmark table on the test split (when labelled)
    predictions: np.ndarray | None = None  # (N_test, L, 2) original pixels
    extra: dict = field(default_factory=dict)


class EpochLog:
    """Collects per-epoch, per-landmark rows: losses and test MRE."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.rows: list[dict] = []

    def add(self, epoch: int, losses: dict[str, np.ndarray], tracked: tuple[list[int], np.ndarray] | None,
            seconds: float, train_seconds: float = float("nan")):
        """``losses``: stage name -> (K,) mean losses; ``tracked``: :func:`tracked_test_grid`'s result;
        ``seconds`` the whole epoch, ``train_seconds`` its training stages (without Infer-PL, tracking)."""
        errs = None if tracked is None else test_errors(self.ctx, *tracked)
        for k, (l, name) in enumerate(zip(self.ctx.landmarks, self.ctx.landmark_names)):
            row = {"epoch": epoch, "landmark": name, "landmark_index": l}
            row.update({f"loss_{s}": float(v[k]) for s, v in losses.items()})
            row["test_mre_mm"] = float(errs[:, k].mean()) if errs is not None else float("nan")
            row["seconds"] = seconds
            row["train_seconds"] = train_seconds
            self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def finish(ctx: RunContext, predictor, pl_state: PLState | None, log: EpochLog, progress: bool) -> MethodResult:
    """Final test predictions, table and the run files; returns the result."""
    metrics = log.frame()
    pred = table = None
    if ctx.test is not None:
        pred = predictor.predict(ctx.test, progress=progress)
        if ctx.test.labelled.all():
            errors = radial_errors_mm(pred[:, ctx.landmarks], ctx.test.original_landmarks[:, ctx.landmarks],
                                      ctx.test.spacing_mm)
            table = per_landmark_table(errors, ctx.landmark_names, ctx.cfg.eval.radii_mm)
    if ctx.out is not None:
        if pl_state is not None:
            pl_state.history_frame().to_csv(ctx.out / "pl_history.csv", index=False)
        metrics.to_csv(ctx.out / "metrics.csv", index=False)
        if pred is not None:
            predictions_frame(pred[:, ctx.landmarks], ctx.test.ids, tuple(ctx.landmark_names)).to_csv(
                ctx.out / "predictions.csv", index=False)
        if table is not None:
            table.to_csv(ctx.out / "evaluation.csv")
    return MethodResult(predictor, pl_state, metrics, table, pred)

"""What a run works on (data, template, landmarks, run folder) and what it logs per epoch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import Config
from ..distributed import SINGLE, Dist, current, gather_objects
from ..data import build_datasets
from ..data.grid import GridImages
from ..data.landmarks import resolve_landmarks
from ..inference import Predictor, Template
from ..metrics import radial_errors_mm
from ..runtime import setup


@dataclass
class RunContext:
    cfg: Config
    device: torch.device
    generator: torch.Generator  # every random draw of the run (patches, PLs, templates)
    train: GridImages
    test: GridImages | None
    template: Template  # the one labelled training image: the only ground truth training reads
    template_index: int  # its row in ``train``
    unlabelled: list[int]  # rows of ``train`` the PLs live on (non-template images; the first ``method.pl_images``)
    landmarks: list[int]  # the K trained dataset landmarks
    out: Path | None  # the run folder; None: nothing written (no folder given, or not rank 0)
    dist: Dist = SINGLE  # the ranks of a torchrun run (methods/loop.py shares the work out)

    @property
    def landmark_names(self) -> list[str]:
        return [self.train.landmark_names[l] for l in self.landmarks]


def unlabelled_rows(train: GridImages, template: str) -> list[int]:
    """The training images without labels: every row but the template's (PLs live on the first
    ``method.pl_images`` of them; a shape check is fitted to all of them)."""
    t = train.index(template)
    return [i for i in range(len(train)) if i != t]


def pool_rows(train: GridImages, cfg: Config) -> list[int]:
    """The unlabelled rows of the template pool: the first ``eval.template_pool`` (all, if fewer)."""
    rows = unlabelled_rows(train, cfg.data.template)[:cfg.eval.template_pool]
    if cfg.eval.template_pool and not rows:
        raise ValueError(f"eval.template_pool={cfg.eval.template_pool} needs unlabelled training images; the "
                         "training split holds only the template (set eval.template_pool=0)")
    return rows


def prepare_context(cfg: Config, out_dir, data=None, progress: bool = True) -> RunContext:
    """Seed and device from ``cfg``; ``data`` = (train, test) GridImages, built from ``cfg.data`` if None."""
    device, gen = setup(cfg)
    if data is None:
        train_set, test_set = build_datasets(cfg.data, cfg.seed)
        train_set.index(cfg.data.template)  # an unknown template id fails before the resizing
        data = (GridImages(train_set, cfg.data.grid, "train", progress),
                GridImages(test_set, cfg.data.grid, "test", progress))
    train, test = data
    t = train.index(cfg.data.template)
    template = Template.from_data(train, cfg.data.template)
    landmarks = resolve_landmarks(cfg.method.landmarks, train.landmark_names)
    unlabelled = unlabelled_rows(train, cfg.data.template)
    n = cfg.method.pl_images
    if n is not None:
        if n < 1:
            raise ValueError(f"method.pl_images must be >= 1 or None, got {n}")
        unlabelled = unlabelled[:n]
    d = current()
    out = None if out_dir is None or not d.main else Path(out_dir)  # rank 0 alone writes the run folder
    return RunContext(cfg, device, gen, train, test, template, t, unlabelled, landmarks, out, d)


def predict_rows(ctx: RunContext, predictor: Predictor, data: GridImages, rows: list[int],
                 progress: bool = False, unchecked: bool = False) -> np.ndarray:
    """(n, K, 2) grid predictions of ``data``'s ``rows``; in a torchrun run each rank predicts its
    share of the rows and every rank gets them all. With ``unchecked`` (a predictor at the model
    grid): (2, n, K, 2), the answers and the same maps' answers without the shape check's factor
    (:func:`both_readings`)."""
    d = ctx.dist

    def predict(some):
        return both_readings(predictor, data, some, progress) if unchecked else \
            predictor.predict_grid(data, some, progress)
    if not d.active:
        return predict(rows)
    mine = d.rows(rows)
    part = predict(mine) if mine else None
    out = np.zeros((len(rows), len(predictor.landmark_indices), 2))
    out = np.stack([out, out.copy()]) if unchecked else out
    where = {r: i for i, r in enumerate(rows)}
    for their_rows, their_part in gather_objects((mine, part), d):
        if their_rows:
            out[..., [where[r] for r in their_rows], :, :] = their_part
    return out


@torch.no_grad()
def both_readings(predictor: Predictor, data: GridImages, rows: list[int], progress: bool = False) -> np.ndarray:
    """(2, n, K, 2): ``predictor``'s answers on ``data``'s ``rows`` and, from the same maps (one
    embedding), the answers without its shape check's factor (the same twice without a check)."""
    if predictor.coarse_stage is not predictor:
        raise ValueError("both_readings reads a predictor's maps at the model grid; a refined predictor answers "
                         "from its fine stage")
    out = np.zeros((2, len(rows), len(predictor.landmark_indices), 2))
    scales = len(predictor.strides)
    for start, chunk, maps in predictor.map_batches(data, rows, progress, local=True):  # both readings checked
        out[0, start:start + len(chunk)] = predictor.answers(maps).cpu().double().numpy()
        out[1, start:start + len(chunk)] = predictor.answers(maps[:scales]).cpu().double().numpy()
    return out


def tracked_test_grid(ctx: RunContext, predictor: Predictor, epoch: int) -> tuple[list[int], np.ndarray] | None:
    """After epoch ``epoch``: (rows, (n, K, 2) grid predictions) of the tracked test images, or None.

    Tracked: every ``eval.track_every`` epochs and at the last one (never when 0), on the first
    ``eval.track_images`` test images (all when None). For plots only: nothing is chosen by it.
    """
    every, last = ctx.cfg.eval.track_every, epoch == ctx.cfg.train.epochs
    if ctx.test is None or every <= 0 or (epoch % every and not last):
        return None
    limit = ctx.cfg.eval.track_images
    rows = list(range(len(ctx.test) if limit is None else min(limit, len(ctx.test))))
    return rows, predict_rows(ctx, predictor, ctx.test, rows)


def test_errors(ctx: RunContext, rows: list[int], pred_grid: np.ndarray) -> np.ndarray | None:
    """(n, K) errors (mm, or px when the spacing is unknown) of (n, K, 2) grid predictions on test
    ``rows``; None when unlabelled."""
    if ctx.test is None or not ctx.test.labelled[rows].all():
        return None
    full = np.full((len(ctx.test), len(ctx.test.landmark_names), 2), np.nan)
    full[np.ix_(rows, ctx.landmarks)] = pred_grid
    pred = ctx.test.to_original(full)[np.ix_(rows, ctx.landmarks)]
    return radial_errors_mm(pred, ctx.test.original_landmarks[np.ix_(rows, ctx.landmarks)], ctx.test.scale[rows])


class EpochLog:
    """Per-epoch, per-landmark rows: stage losses, tracked test MRE, seconds."""

    def __init__(self, ctx: RunContext, rows: list[dict] | None = None):
        self.ctx = ctx
        self.rows: list[dict] = list(rows or [])

    def add(self, epoch: int, losses: dict[str, np.ndarray], tracked: tuple[list[int], np.ndarray] | None,
            seconds: float, train_seconds: float = float("nan")):
        """``losses``: stage name -> (K,) mean losses; ``tracked``: :func:`tracked_test_grid`'s result;
        ``seconds`` the whole epoch, ``train_seconds`` its training stages (without Infer-PL, tracking)."""
        errs = None if tracked is None else test_errors(self.ctx, *tracked)
        unit = self.ctx.test.unit if self.ctx.test is not None else "mm"
        for k, (l, name) in enumerate(zip(self.ctx.landmarks, self.ctx.landmark_names)):
            row = {"epoch": epoch, "landmark": name, "landmark_index": l}
            row.update({f"loss_{s}": float(v[k]) for s, v in losses.items()})
            row[f"test_mre_{unit}"] = float(errs[:, k].mean()) if errs is not None else float("nan")
            row["seconds"] = seconds
            row["train_seconds"] = train_seconds
            self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

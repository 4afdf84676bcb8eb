"""Figures of the pseudo-labels (PLs): their error and movement per epoch, and their paths on images.

Inputs: ``pl_state.history_frame()`` for :func:`plot_pl_history`; the paths of
:func:`cc2dkit.analysis.pl.pl_trajectory` for :func:`plot_pl_trajectory`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..analysis.pl import history_unit, pl_trajectory
from ..data.landmarks import landmark_index
from .plots import _gray

PATH_LABEL = "PL path"
START_LABEL = "initial PL"
END_LABEL = "final PL"
GT_LABEL = "ground truth"


def plot_pl_history(history_frame: pd.DataFrame, title: str | None = None) -> Figure:
    """Two panels, one line per landmark: PL error (mm, or px, against the ground truth that
    training never reads) and PL movement (the mean distance the PLs moved since the previous epoch)."""
    u = history_unit(history_frame)
    if history_frame.empty:
        raise ValueError("empty PL history")
    names = list(dict.fromkeys(history_frame["landmark"]))
    fig = Figure(figsize=(9.6, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, col, label in zip(axes, (f"pl_error_{u}", f"movement_{u}"), (f"PL error ({u})", f"PL movement ({u})")):
        for name in names:
            rows = history_frame[history_frame["landmark"] == name].sort_values("epoch")
            ax.plot(rows["epoch"].to_numpy(), rows[col].to_numpy(float), "o-", ms=3, lw=1.2, label=str(name))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7, ncol=2 if len(names) > 8 else 1)
    if title is not None:
        fig.suptitle(title)
    return fig


def _xy(points, name: str, shape_hint: str) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) == 0:
        raise ValueError(f"{name} must have shape {shape_hint} of (x, y) pixels, got {p.shape}")
    return p


def plot_pl_trajectory(image, trajectory_original_xy, gt_xy=None, title: str | None = None, ax=None,
                       color: str = "cyan", zoom: float | None = None, label: str | None = None) -> Figure:
    """The PL of one landmark on one image across epochs, drawn as a path on the image.

    ``trajectory_original_xy`` (E+1, 2) original pixels (see :func:`pl_trajectory`); ``gt_xy``
    (2,) the landmark's ground truth (optional). Artists: the path (a ``Line2D`` labelled
    ``label`` or ``"PL path"``, one vertex per epoch), the initial PL (white square,
    ``"initial PL"``), the final PL (red x, ``"final PL"``) and the ground truth (hollow green
    circle, ``"ground truth"``). ``zoom``: crop to the path and truth plus this margin (pixels).
    """
    img = _gray(image)
    traj = _xy(trajectory_original_xy, "trajectory_original_xy", "(E+1, 2)")
    if ax is None:
        h, w = img.shape
        fig = Figure(figsize=(5.0, 5.0 * h / w if w else 5.0), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    if not ax.images:
        ax.imshow(img, cmap="gray", interpolation="nearest")
    ax.plot(traj[:, 0], traj[:, 1], "-o", color=color, ms=3, lw=1.2, alpha=0.9, label=label or PATH_LABEL)
    ax.plot(traj[:1, 0], traj[:1, 1], "s", mfc="white", mec="black", ms=6, label=START_LABEL)
    ax.plot(traj[-1:, 0], traj[-1:, 1], "x", color="red", ms=8, mew=2, label=END_LABEL)
    pts = traj
    if gt_xy is not None:
        gt = np.asarray(gt_xy, dtype=np.float64).reshape(2)
        if np.isfinite(gt).all():
            ax.plot([gt[0]], [gt[1]], "o", mfc="none", mec="lime", ms=9, mew=2, label=GT_LABEL)
            pts = np.vstack([traj, gt[None]])
    if zoom is not None:
        lo, hi = pts.min(axis=0) - zoom, pts.max(axis=0) + zoom
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(hi[1], lo[1])  # image axes: y down
    ax.set_xticks([]), ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)
    return fig


def pl_trajectory_gallery(pl_state, data, image_rows: Sequence[int], landmark_cols: Sequence[int] | None = None,
                          zoom: float | None = None) -> Figure:
    """One panel per training image in ``image_rows``: the PL paths of the landmarks
    ``landmark_cols`` (columns 0..K-1; default all), one colour each, with their ground truth."""
    rows = [int(i) for i in image_rows]
    if not rows:
        raise ValueError("no image rows given")
    cols = list(range(len(pl_state.landmark_indices))) if landmark_cols is None else \
        [landmark_index(pl_state.landmark_names, k) for k in landmark_cols]
    fig = Figure(figsize=(4.0 * len(rows), 4.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(rows)))
    colours = [f"C{j % 10}" for j in range(len(cols))]
    names = [pl_state.landmark_names[k] for k in cols]
    for ax, i in zip(axes, rows):
        pts = []
        for c, k in zip(colours, cols):
            gt = data.original_landmarks[i, pl_state.landmark_indices[k]]
            traj = pl_trajectory(pl_state, data, i, k)
            plot_pl_trajectory(data.dataset[i].image, traj, gt, ax=ax, color=c, label=pl_state.landmark_names[k])
            pts += [traj, gt[None]]
        if zoom is not None:
            pts = np.vstack(pts)
            pts = pts[np.isfinite(pts).all(axis=1)]
            lo, hi = pts.min(axis=0) - zoom, pts.max(axis=0) + zoom
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(hi[1], lo[1])
        ax.set_title(f"{data.ids[i]}", fontsize=9)
    axes[0].legend(handles=[ln for ln in axes[0].lines if ln.get_label() in names], fontsize=7, loc="lower right")
    fig.suptitle("PL paths across epochs: square = initial (random) PL, x = final PL, o = ground truth")
    return fig

"""Matplotlib figures for evaluation; headless-safe (no pyplot state, never ``show()``).

Figures are built with :class:`matplotlib.figure.Figure` directly, so they work under any
backend (including ``Agg``) and are garbage-collected like ordinary objects. In a notebook,
display them by returning the figure from a cell or ``IPython.display.display(fig)``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from ..metrics.errors import as_numpy
from ..metrics.tables import ALL_ROW

GT_LABEL = "ground truth"
PRED_LABEL = "prediction"
LINK_LABEL = "error"


def _gray(image) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) image (array or tensor) -> (H, W) float array."""
    img = as_numpy(image, dtype=np.float32)
    img = np.squeeze(img)
    if img.ndim == 3:
        if img.shape[0] in (1, 3, 4) and img.shape[-1] not in (1, 3, 4):
            img = np.moveaxis(img, 0, -1)
        img = img[..., :3].mean(axis=-1)
    if img.ndim != 2:
        raise ValueError(f"image must be (H, W), (H, W, C) or (C, H, W), got shape {np.shape(image)}")
    return img


def _points(p, name: str) -> np.ndarray:
    p = as_numpy(p)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"{name} must have shape (L, 2) of (x, y) pixels, got {p.shape}")
    return p


def plot_predictions(image, pred, gt, landmark_names: Sequence[str] | None = None,
                     ax=None, title: str | None = None) -> Figure:
    """Overlay predictions and ground truth on a grayscale image.

    Args:
        image: (H, W) image (or with a channel axis, averaged to gray).
        pred, gt: (L, 2) (x, y) coordinates in the image's pixels (pixel centres at integers).
        landmark_names: optional L labels written next to the ground-truth points.
        ax: draw into this Axes instead of a new figure.
        title: optional axes title.

    Returns:
        The Figure holding the axes. Ground truth is one ``Line2D`` (hollow green (``"lime"``) circles, label
        ``"ground truth"``), predictions one ``Line2D`` (red crosses, label ``"prediction"``),
        and the L pred-gt segments one ``LineCollection`` (label ``"error"``).
    """
    img = _gray(image)
    pred = _points(pred, "pred")
    gt = _points(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: pred {pred.shape} vs gt {gt.shape}")
    if landmark_names is not None and len(landmark_names) != len(gt):
        raise ValueError(f"got {len(landmark_names)} landmark names for {len(gt)} landmarks")
    if ax is None:
        h, w = img.shape
        fig = Figure(figsize=(6.0, 6.0 * h / w if w else 6.0))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.imshow(img, cmap="gray", interpolation="nearest")
    segments = np.stack([gt, pred], axis=1)  # (L, 2 points, 2 coords)
    ax.add_collection(LineCollection(segments, colors="yellow", linewidths=1.0, label=LINK_LABEL))
    ax.plot(gt[:, 0], gt[:, 1], linestyle="none", marker="o", markersize=6, markerfacecolor="none",
            markeredgecolor="lime", markeredgewidth=1.5, label=GT_LABEL)
    ax.plot(pred[:, 0], pred[:, 1], linestyle="none", marker="x", markersize=6,
            color="red", markeredgewidth=1.5, label=PRED_LABEL)
    if landmark_names is not None:
        for name, (x, y) in zip(landmark_names, gt):
            ax.annotate(str(name), (x, y), xytext=(4, 4), textcoords="offset points",
                        color="lime", fontsize=7)
    ax.set_axis_off()
    ax.legend(handles=[ax.lines[-2], ax.lines[-1]], loc="lower right", fontsize=7)
    if title is not None:
        ax.set_title(title)
    return fig


def plot_error_bars(table: pd.DataFrame) -> Figure:
    """Bar chart of per-landmark ``MRE_mm`` with ``SD_mm`` error bars.

    ``table`` is a :func:`cc2dkit.metrics.tables.per_landmark_table`; its ``"all"`` row, if
    present, is drawn as a dashed horizontal line rather than a bar (one bar per landmark).
    """
    missing = {"MRE_mm", "SD_mm"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}; has {list(table.columns)}")
    per = table.drop(index=ALL_ROW, errors="ignore")
    names = [str(n) for n in per.index]
    fig = Figure(figsize=(max(4.0, 0.45 * len(names) + 1.5), 3.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(names))
    ax.bar(x, per["MRE_mm"].to_numpy(float), yerr=per["SD_mm"].to_numpy(float),
           capsize=3, color="tab:blue", label="MRE ± SD")
    if ALL_ROW in table.index:
        ax.axhline(float(table.loc[ALL_ROW, "MRE_mm"]), color="tab:red", linestyle="--",
                   label=f"overall MRE {float(table.loc[ALL_ROW, 'MRE_mm']):.2f} mm")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("radial error (mm)")
    ax.legend(fontsize=7)
    return fig


def plot_landmarks(image, points, landmark_names: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """A grayscale image with its (L, 2) landmarks (green circles), optionally labelled."""
    img = _gray(image)
    pts = _points(points, "points")
    h, w = img.shape
    fig = Figure(figsize=(5.0, 5.0 * h / w if w else 5.0))
    ax = fig.add_subplot()
    ax.imshow(img, cmap="gray", interpolation="nearest")
    ax.plot(pts[:, 0], pts[:, 1], linestyle="none", marker="o", markersize=6, markerfacecolor="none",
            markeredgecolor="lime", markeredgewidth=1.5, label=GT_LABEL)
    for name, (x, y) in zip(landmark_names or [], pts):
        ax.annotate(str(name), (x, y), xytext=(4, 4), textcoords="offset points", color="lime", fontsize=7)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return fig


def prediction_gallery(images: Sequence, preds: np.ndarray, gts: np.ndarray, titles: Sequence[str]) -> Figure:
    """One panel per image: predictions against ground truth (see :func:`plot_predictions`)."""
    n = len(images)
    if not (len(preds) == len(gts) == len(titles) == n) or n == 0:
        raise ValueError(f"need as many (>0) images, predictions, truths and titles: "
                         f"{n}, {len(preds)}, {len(gts)}, {len(titles)}")
    fig = Figure(figsize=(min(9.6, 3.2 * n), 4.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    for ax, img, p, g, t in zip(axes, images, preds, gts, titles):
        plot_predictions(img, p, g, ax=ax, title=t)
    return fig


def plot_history(metrics: pd.DataFrame) -> Figure:
    """Training curves of a run's ``metrics`` (``result.metrics`` or metrics.csv): each stage's loss
    (``loss_*`` columns, mean over the trained landmarks) per epoch."""
    losses = [c for c in metrics.columns if c.startswith("loss_")]
    if metrics.empty or not losses:
        raise ValueError("no training history: expected per-epoch rows with loss_* columns")
    per_epoch = metrics.groupby("epoch")[losses].mean()
    fig = Figure(figsize=(5.0, 3.0), layout="constrained")
    ax = fig.add_subplot()
    for c in losses:
        ax.plot(per_epoch.index, per_epoch[c], "o-", label=c.removeprefix("loss_"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend(title="stage", fontsize=8)
    return fig


def image_gallery(images: Sequence, titles: Sequence[str], columns: int = 4) -> Figure:
    """Images side by side (a first look at a folder), ``columns`` per row."""
    if not images:
        raise ValueError("no images to show")
    cols = min(columns, len(images))
    rows = -(-len(images) // cols)
    fig = Figure(figsize=(min(9.6, 2.4 * cols), 2.6 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax in axes:
        ax.set_axis_off()
    for ax, img, title in zip(axes, images, titles):
        ax.imshow(_gray(img), cmap="gray")
        ax.set_title(str(title), fontsize=9)
    return fig

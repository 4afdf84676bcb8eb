"""Figures of the seesaw measures (``cc2dkit.analysis.seesaw``): error curves, correlation heatmaps, events."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..analysis.seesaw import VALUE, _LABELS, change_correlation, error_table, mean_off_diagonal


def plot_error_curves(frame: pd.DataFrame, value: str = VALUE, title: str | None = None, ax=None) -> Figure:
    """Per-landmark error per evaluated epoch (one line each, labelled by landmark) and their mean
    (black dashed line, label ``"mean"``)."""
    table = error_table(frame, value)
    if ax is None:
        fig = Figure(figsize=(6.5, 3.8), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    x = table.index.to_numpy()
    for name in table.columns:
        ax.plot(x, table[name].to_numpy(float), "o-", ms=3, lw=1.2, label=str(name))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        ax.plot(x, np.nanmean(table.to_numpy(float), axis=1), "k--", lw=2, label="mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel(_LABELS.get(value, value))
    ax.legend(fontsize=7, ncol=2 if table.shape[1] > 8 else 1, loc="best")
    if title is not None:
        ax.set_title(title)
    return fig


def plot_change_correlation(corr: pd.DataFrame, title: str | None = None, ax=None,
                            annotate: bool | None = None) -> Figure:
    """Heatmap of a :func:`change_correlation` matrix (blue: -1, red: +1; NaN blank).

    ``annotate``: write the values in the cells (default: up to 12 landmarks).
    """
    c = np.asarray(corr, dtype=float)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"expected a square correlation matrix, got shape {c.shape}")
    names = [str(n) for n in getattr(corr, "columns", range(len(c)))]
    if ax is None:
        side = max(3.5, 0.45 * len(c) + 2.0)
        fig = Figure(figsize=(side + 0.8, side), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    im = ax.imshow(np.ma.masked_invalid(c), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(c)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(c)), names, fontsize=7)
    fig.colorbar(im, ax=ax, label="correlation of error changes")
    if annotate if annotate is not None else len(c) <= 12:
        for i in range(len(c)):
            for j in range(len(c)):
                if np.isfinite(c[i, j]):
                    ax.text(j, i, f"{c[i, j]:.1f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(c[i, j]) > 0.6 else "black")
    if title is not None:
        ax.set_title(title)
    return fig


def compare_error_curves(runs: dict[str, pd.DataFrame], value: str = VALUE) -> Figure:
    """:func:`plot_error_curves` of several runs (name -> error frame) side by side, one y scale."""
    if not runs:
        raise ValueError("no runs to compare")
    fig = Figure(figsize=(5.2 * len(runs), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(runs), sharey=True))
    for ax, (name, frame) in zip(axes, runs.items()):
        plot_error_curves(frame, value, title=name, ax=ax)
    return fig


def compare_change_correlations(runs: dict[str, pd.DataFrame], value: str = VALUE) -> Figure:
    """:func:`plot_change_correlation` of several runs (name -> error frame) side by side."""
    if not runs:
        raise ValueError("no runs to compare")
    corrs = {name: change_correlation(frame, value) for name, frame in runs.items()}
    k = max(len(c) for c in corrs.values())
    side = max(3.5, 0.45 * k + 2.0)
    fig = Figure(figsize=((side + 0.8) * len(runs), side), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(runs)))
    for ax, (name, corr) in zip(axes, corrs.items()):
        plot_change_correlation(corr, title=f"{name}: mean off-diagonal {mean_off_diagonal(corr):+.2f}", ax=ax)
    return fig


def plot_seesaw_events(events: pd.DataFrame, title: str | None = None, ax=None) -> Figure:
    """Per transition: landmarks improved (green, up) and worsened (red, down); seesaw events shaded."""
    missing = {"to_epoch", "n_improved", "n_worsened", "seesaw"} - set(events.columns)
    if missing:
        raise ValueError(f"events lack columns {sorted(missing)}; pass seesaw_events(...)")
    if ax is None:
        fig = Figure(figsize=(6.5, 3.0), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    x = events["to_epoch"].to_numpy()
    for xi, s in zip(x, events["seesaw"].to_numpy(bool)):
        if s:
            ax.axvspan(xi - 0.5, xi + 0.5, color="gold", alpha=0.3, lw=0)
    ax.bar(x, events["n_improved"].to_numpy(), color="tab:green", label="improved")
    ax.bar(x, -events["n_worsened"].to_numpy(), color="tab:red", label="worsened")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("epoch (end of transition)")
    ax.set_ylabel("landmarks")
    ax.legend(fontsize=7, loc="upper right")
    if title is not None:
        ax.set_title(title)
    return fig

"""Figures of the paper's tables (``cc2dkit.analysis.results``): methods side by side, per-landmark bars."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..analysis.results import NOT_RUN, PAPER_PREFIX
from ..metrics.tables import ALL_ROW


def _floats(column: pd.Series) -> np.ndarray:
    """A column (float, nullable Int64 with NA, object) as a float array with NaN."""
    return pd.to_numeric(column, errors="coerce").astype(float).to_numpy()


def plot_method_comparison(table: pd.DataFrame, metrics=("MRE_mm", "SDR_2.0mm")) -> Figure:
    """Bars of the kit's figures per row of :func:`table1` / :func:`table3`, the paper's as diamonds.

    One panel per metric; rows not run get no bar and a "not run" mark at the base.
    """
    missing = set(metrics) - set(table.columns)
    if missing:
        raise ValueError(f"table lacks column(s) {sorted(missing)}; has {list(table.columns)}")
    names = [str(n) for n in table.index]
    x = np.arange(len(names))
    fig = Figure(figsize=(max(5.0, 1.1 * len(names) + 1.5) * len(metrics) / 1.6, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    not_run = table["run"].eq(NOT_RUN).to_numpy() if "run" in table.columns else np.zeros(len(names), bool)
    for ax, m in zip(axes, metrics):
        values = _floats(table[m])
        ax.bar(x, np.nan_to_num(values), color="tab:blue")
        handles = [Patch(facecolor="tab:blue", label="this kit")]
        paper = PAPER_PREFIX + m
        if paper in table.columns and table[paper].notna().any():
            handles += ax.plot(x, _floats(table[paper]), "D", color="black", label="paper")
        for i in np.flatnonzero(not_run | np.isnan(values)):
            ax.text(x[i], 0, NOT_RUN, rotation=90, ha="center", va="bottom", fontsize=7, color="gray")
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(m.replace("_", " "))
        ax.legend(handles=handles, fontsize=7)
    return fig


def plot_landmark_comparison(table: pd.DataFrame, columns: list[str] | None = None) -> Figure:
    """Grouped bars per landmark of ``columns`` (default: every "... MRE_mm" column, not the paper's
    and not a difference "A - B MRE_mm")."""
    cols = columns or [c for c in table.columns if c.endswith("MRE_mm") and not c.startswith(PAPER_PREFIX)
                       and " - " not in c]
    if not cols:
        raise ValueError(f"no MRE columns to plot in {list(table.columns)}")
    per = table.drop(index=ALL_ROW, errors="ignore")
    x = np.arange(len(per))
    width = 0.8 / len(cols)
    fig = Figure(figsize=(min(9.6, max(5.0, 0.45 * len(per) + 2.0)), 3.5), layout="constrained")
    ax = fig.add_subplot()
    for j, c in enumerate(cols):
        ax.bar(x + (j - (len(cols) - 1) / 2) * width, _floats(per[c]), width, label=c)
    ax.set_xticks(x, [str(n) for n in per.index], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("MRE (mm)")
    ax.legend(fontsize=7)
    return fig


def plot_budget_curve(curve: pd.DataFrame, metrics=("MRE_mm", "SDR_2.0mm", "SDR_4.0mm"),
                      targets: dict[str, float] | None = None) -> Figure:
    """Accuracy against training minutes (:func:`cc2dkit.analysis.results.budget_curve`), one panel
    per metric, each point labelled with its run; ``targets``: {metric: value} drawn as dashed lines."""
    missing = {"minutes", *metrics} - set(curve.columns)
    if missing:
        raise ValueError(f"curve lacks column(s) {sorted(missing)}; has {list(curve.columns)}")
    fig = Figure(figsize=(3.4 * len(metrics) + 0.6, 3.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, m in zip(axes, metrics):
        ax.plot(curve["minutes"], _floats(curve[m]), "o-", color="tab:blue")
        for _, row in curve.iterrows():
            ax.annotate(str(row["run"]), (row["minutes"], float(row[m])), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        if targets and m in targets:
            ax.axhline(targets[m], ls="--", color="gray", lw=1, label=f"target {targets[m]:g}")
            ax.legend(fontsize=7)
        ax.set_xlabel("training minutes")
        ax.set_ylabel(m.replace("_", " "))
        ax.grid(alpha=0.3)
    return fig

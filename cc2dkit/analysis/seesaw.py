"""The seesaw phenomenon, measured: landmarks improving at each other's expense during training.

He et al. observe that one model trained on all landmarks at once (``method.name="multi"``)
shows a *seesaw*: from one evaluation to the next some landmarks get better while others get
worse. These functions read it from a per-epoch x landmark error frame, the ``metrics`` frame
of :func:`cc2dkit.methods.run_method` (columns ``epoch``, ``landmark``, ``test_mre_mm``), or
any frame of the same shape (``value="pl_error_mm"`` on ``PLState.history_frame()``).
For single-landmark models (SLA: K independent models) the same functions apply to their
metrics frame: the "seesaw" there can only be coincidence, since the models share nothing.

Definitions (``threshold_mm`` = t):

- an *evaluation* is an epoch with at least one finite error (untracked epochs, see
  ``eval.track_every``, are skipped); a *transition* is a pair of consecutive evaluations;
- the *change* of landmark l at a transition is ``error(later) - error(earlier)`` (mm; < 0 is
  an improvement);
- at a transition, a landmark *improved* when its change < -t and *worsened* when its change > t;
  the transition is a *seesaw event* when at least one landmark improved and at least one worsened;
- the *change correlation* is the Pearson correlation of two landmarks' changes over the
  transitions: negative values mean one gains when the other loses.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

VALUE = "test_mre_mm"  # a run on images of unknown spacing has test_mre_px: the default falls back to it
_LABELS = {"test_mre_mm": "test MRE (mm)", "pl_error_mm": "PL error (mm)", "test_mre_px": "test MRE (px)",
           "pl_error_px": "PL error (px)"}


def error_table(frame: pd.DataFrame, value: str = VALUE) -> pd.DataFrame:
    """Evaluations x landmarks table of ``value`` (mm), landmarks in order of first appearance.

    Epochs whose errors are all NaN (not evaluated) are dropped. Raises ``ValueError`` on missing
    columns, duplicated (epoch, landmark) rows, or fewer than 2 evaluations.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if value == VALUE and VALUE not in frame.columns and "test_mre_px" in frame.columns:
        value = "test_mre_px"
    missing = [c for c in ("epoch", "landmark", value) if c not in frame.columns]
    if missing:
        raise ValueError(f"error frame lacks column(s) {missing}; has {list(frame.columns)}")
    if frame.duplicated(["epoch", "landmark"]).any():
        raise ValueError("error frame has several rows for one (epoch, landmark): pass one run at a time")
    names = list(dict.fromkeys(frame["landmark"]))
    table = frame.pivot(index="epoch", columns="landmark", values=value).reindex(columns=names)
    table = table.astype(float).sort_index().dropna(how="all")
    table.columns.name = "landmark"
    if len(table) < 2:
        raise ValueError(f"the seesaw needs at least 2 evaluated epochs of {value!r}; got {len(table)}")
    return table


def error_changes(frame: pd.DataFrame, value: str = VALUE) -> pd.DataFrame:
    """Transitions x landmarks: change of error (mm) since the previous evaluation.

    Indexed by the later epoch of each transition (``epoch``); negative = the landmark improved.
    """
    return error_table(frame, value).diff().iloc[1:]


def seesaw_events(frame: pd.DataFrame, threshold_mm: float = 0.0, value: str = VALUE) -> pd.DataFrame:
    """One row per transition between consecutive evaluations.

    Columns: ``from_epoch``, ``to_epoch``, ``n_improved`` / ``n_worsened`` (landmarks whose error
    fell / rose by more than ``threshold_mm``), ``seesaw`` (both > 0), ``best_gain_mm`` (largest
    decrease, >= 0), ``worst_loss_mm`` (largest increase, >= 0), ``mean_change_mm``.
    """
    if not np.isfinite(threshold_mm) or threshold_mm < 0:
        raise ValueError(f"threshold_mm must be a finite number >= 0, got {threshold_mm}")
    table = error_table(frame, value)
    changes = table.diff().iloc[1:]
    d = changes.to_numpy(float)
    improved = (d < -threshold_mm).sum(axis=1)
    worsened = (d > threshold_mm).sum(axis=1)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        gain = np.nan_to_num(-np.nanmin(d, axis=1), nan=0.0).clip(min=0.0)
        loss = np.nan_to_num(np.nanmax(d, axis=1), nan=0.0).clip(min=0.0)
        mean = np.nanmean(d, axis=1)
    return pd.DataFrame({
        "from_epoch": table.index[:-1].to_numpy(),
        "to_epoch": table.index[1:].to_numpy(),
        "n_improved": improved.astype(int),
        "n_worsened": worsened.astype(int),
        "seesaw": (improved > 0) & (worsened > 0),
        "best_gain_mm": gain,
        "worst_loss_mm": loss,
        "mean_change_mm": mean,
    })


def seesaw_summary(frame: pd.DataFrame, threshold_mm: float = 0.0, name: str = "run",
                   value: str = VALUE) -> pd.DataFrame:
    """One row (index ``name``) summarising :func:`seesaw_events`.

    Columns: ``landmarks``, ``transitions``, ``seesaw_events``, ``seesaw_share`` (events /
    transitions), ``mean_improved`` / ``mean_worsened`` (landmarks per transition),
    ``mean_worsened_in_seesaw`` (per seesaw event; NaN without one), ``final_mm`` (mean over
    landmarks at the last evaluation), ``gap_to_best_mm`` (mean over landmarks of final error
    minus the landmark's best error at any evaluation: what the seesaw cost by the end),
    ``mean_change_corr`` (mean off-diagonal :func:`change_correlation`; NaN with fewer than 3
    evaluations), ``threshold_mm``.
    """
    table = error_table(frame, value)
    ev = seesaw_events(frame, threshold_mm, value)
    seesaw = ev["seesaw"].to_numpy(bool)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        final = float(np.nanmean(table.iloc[-1].to_numpy(float)))
        gap = float(np.nanmean((table.iloc[-1] - table.min(axis=0)).to_numpy(float)))
    row = {
        "landmarks": table.shape[1],
        "transitions": len(ev),
        "seesaw_events": int(seesaw.sum()),
        "seesaw_share": float(seesaw.mean()),
        "mean_improved": float(ev["n_improved"].mean()),
        "mean_worsened": float(ev["n_worsened"].mean()),
        "mean_worsened_in_seesaw": float(ev.loc[seesaw, "n_worsened"].mean()) if seesaw.any() else float("nan"),
        "final_mm": final,
        "gap_to_best_mm": gap,
        "mean_change_corr": mean_off_diagonal(change_correlation(frame, value)) if len(table) >= 3 else float("nan"),
        "threshold_mm": float(threshold_mm),
    }
    return pd.DataFrame([row], index=pd.Index([name], name="run"))


def seesaw_comparison(runs: dict[str, pd.DataFrame], threshold_mm: float = 0.0, value: str = VALUE) -> pd.DataFrame:
    """:func:`seesaw_summary` of several runs (name -> error frame), one row each."""
    if not runs:
        raise ValueError("no runs to compare")
    return pd.concat([seesaw_summary(f, threshold_mm, name, value) for name, f in runs.items()])


def change_correlation(frame: pd.DataFrame, value: str = VALUE) -> pd.DataFrame:
    """Landmarks x landmarks Pearson correlation of the error changes over the transitions.

    Needs at least 3 evaluations (2 changes); a landmark whose error never changes gets NaN.
    """
    changes = error_changes(frame, value)
    if len(changes) < 2:
        raise ValueError(f"a correlation of error changes needs at least 3 evaluated epochs; got {len(changes) + 1}")
    d = changes.to_numpy(float)
    k = d.shape[1]
    out = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(k):
            ok = np.isfinite(d[:, i]) & np.isfinite(d[:, j])
            if ok.sum() < 2:
                continue
            a, b = d[ok, i] - d[ok, i].mean(), d[ok, j] - d[ok, j].mean()
            den = np.sqrt((a * a).sum() * (b * b).sum())
            if den > 0:
                out[i, j] = float(np.clip((a * b).sum() / den, -1.0, 1.0))
    names = list(changes.columns)
    return pd.DataFrame(out, index=pd.Index(names, name="landmark"), columns=pd.Index(names, name="landmark"))


def mean_off_diagonal(corr: pd.DataFrame) -> float:
    """Mean of the finite off-diagonal entries of a correlation matrix (NaN when none)."""
    c = np.asarray(corr, dtype=float)
    vals = c[~np.eye(len(c), dtype=bool)]
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if len(vals) else float("nan")

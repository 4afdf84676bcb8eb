"""The pseudo-labels over training: one landmark's path on an image, all paths, a per-landmark summary,
PL runs side by side, and which PLs a shape check of the PLs would doubt.

Inputs come from a method's :class:`~cc2dkit.training.pseudo_labels.PLState` (``result.pl_state``):
its ``history`` (the PLs after every epoch) and ``history_frame()``; :func:`pl_outcomes` reads run
folders (``pl_history.csv`` beside the test evaluation).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..data.coords import from_grid
from ..data.landmarks import landmark_index
from ..inference.shape import ShapeCheck, ShapeSettings
from ..methods.runfolder import PL_HISTORY
from ..metrics.tables import ALL_ROW
from .runs import read_run


def history_unit(history_frame: pd.DataFrame) -> str:
    """``"mm"``, or ``"px"`` for a PL history of images whose spacing is unknown; ValueError otherwise."""
    for unit in ("mm", "px"):
        if {"epoch", "landmark", f"pl_error_{unit}", f"movement_{unit}"} <= set(history_frame.columns):
            return unit
    raise ValueError(f"history frame lacks column(s) epoch, landmark, pl_error_mm, movement_mm (or _px); "
                     f"has {list(history_frame.columns)}: pass pl_state.history_frame()")


def pl_trajectory(pl_state, data, image_row: int, landmark_col: int | str) -> np.ndarray:
    """(E+1, 2) original-pixel (x, y) PL of one landmark on one image at every recorded epoch.

    ``data`` is the training GridImages the PLs live on; ``image_row`` a row of ``data`` that holds
    PLs (one of ``pl_state.image_indices``: not the template); ``landmark_col`` the column among
    the K trained landmarks (0..K-1) or its name. Row e is the PL after epoch
    ``pl_state.history[e]["epoch"]`` (row 0: the random initial PL).
    """
    if not pl_state.history:
        raise ValueError("the PL state has no history (nothing recorded)")
    if int(image_row) not in pl_state.image_indices:
        raise IndexError(f"image row {image_row} holds no PLs (the template or out of range); "
                         f"rows with PLs: {pl_state.image_indices}")
    r = pl_state.image_indices.index(int(image_row))
    k = landmark_index(pl_state.landmark_names, landmark_col)
    grid_xy = np.stack([np.asarray(h["pls"], dtype=np.float64)[r, k] for h in pl_state.history])
    return from_grid(grid_xy, tuple(int(s) for s in data.sizes[int(image_row)]), data.grid)


def pl_trajectories(pl_state, data, image_rows: Sequence[int]) -> np.ndarray:
    """(n, E+1, K, 2) original-pixel PLs of every trained landmark on ``image_rows`` per epoch."""
    return np.stack([np.stack([pl_trajectory(pl_state, data, i, k) for k in range(len(pl_state.landmark_indices))],
                              axis=1) for i in image_rows])


def pl_summary(history_frame: pd.DataFrame) -> pd.DataFrame:
    """Per landmark (index ``landmark``, training order): ``initial_pl_error_mm`` (random PLs),
    ``best_pl_error_mm``, ``final_pl_error_mm``, ``final_movement_mm`` (last epoch's mean move;
    near 0: the PLs have settled); ``_px`` for images of unknown spacing."""
    u = history_unit(history_frame)
    if history_frame.empty:
        raise ValueError("empty PL history")
    rows = []
    for name in dict.fromkeys(history_frame["landmark"]):
        h = history_frame[history_frame["landmark"] == name].sort_values("epoch")
        err = h[f"pl_error_{u}"].to_numpy(float)
        rows.append({"landmark": name, f"initial_pl_error_{u}": err[0],
                     f"best_pl_error_{u}": float(np.nanmin(err)) if np.isfinite(err).any() else float("nan"),
                     f"final_pl_error_{u}": err[-1], f"final_movement_{u}": float(h[f"movement_{u}"].iloc[-1])})
    return pd.DataFrame(rows).set_index("landmark")


def pl_outcomes(runs: Mapping[str, str | Path]) -> pd.DataFrame:
    """PL runs side by side (e.g. with and without ``method.pl_max_move``): a row per trained landmark,
    then ``"all"`` (NaN where a run did not train a landmark); columns (quantity, run) with quantity
    ``test MRE`` (the run's evaluation, mm), ``final PL error`` (mean over the PL images after the
    last epoch; analysis only, mm or px) and ``PLs capped`` (PL updates the cap held back, summed
    over epochs). The ``"all"`` row: the evaluation's, the mean PL error, the sum of the capped."""
    if not runs:
        raise ValueError("pl_outcomes needs at least one run folder")
    parts = {}
    for label, folder in runs.items():
        _, table, _ = read_run(folder, label)
        path = Path(folder) / PL_HISTORY
        if not path.is_file():
            raise FileNotFoundError(f"run {label!r}: no {PL_HISTORY} in {folder} (a method without pseudo-labels?)")
        history = pd.read_csv(path)
        summary = pl_summary(history)
        pl_error = summary[f"final_pl_error_{history_unit(history)}"]
        capped = history.groupby("landmark", sort=False)["pl_capped"].sum() if "pl_capped" in history \
            else pd.Series(0, index=summary.index)
        part = pd.DataFrame({"test MRE": table["MRE_mm"].reindex(summary.index), "final PL error": pl_error,
                             "PLs capped": capped.reindex(summary.index).astype(int)})
        part.loc[ALL_ROW] = [table.loc[ALL_ROW, "MRE_mm"], pl_error.mean(), int(capped.sum())]
        parts[label] = part
    out = pd.concat(parts, axis=1).swaplevel(axis=1)  # runs of other landmarks: NaN where a run lacks one
    out = out.reindex([n for n in out.index if n != ALL_ROW] + [ALL_ROW])
    out = out[[c for q in ("test MRE", "final PL error", "PLs capped") for c in out.columns if c[0] == q]]
    return out.astype({c: "Int64" for c in out.columns if c[0] == "PLs capped"})


def pl_shape_flags(pl_state, data, reference: np.ndarray, reach: float = 3.0,
                   landmarks: Sequence[int | str] | None = None, wrong_mm: float = 10.0,
                   right_mm: float = 4.0) -> pd.DataFrame:
    """Per recorded epoch after the random start, what a shape check fitted to that epoch's PLs
    (``ShapeCheck.fit``'s model, ``reference`` (K, 2) the template's grid landmarks as its starting
    frame; no label read) doubts: ``flagged``, the PLs further than ``reach`` spreads from where the
    other PLs of their image put them. Against the truth (analysis only; labelled images): ``wrong``
    (PLs over ``wrong_mm``), ``wrong_flagged``, ``right_flagged`` (flagged PLs within ``right_mm``).
    ``landmarks`` (columns or names): count only theirs (the fit reads every landmark's PLs)."""
    if len(pl_state.history) < 2:
        raise ValueError("pl_shape_flags needs a PL history past the random start (epoch >= 1)")
    cols = list(range(len(pl_state.landmark_indices))) if landmarks is None else \
        [landmark_index(pl_state.landmark_names, l) for l in landmarks]
    truth = data.original_landmarks[np.ix_(pl_state.image_indices, pl_state.landmark_indices)]
    scale = data.scale[pl_state.image_indices][:, None]  # mm (or 1) per original pixel
    rows = []
    for h in pl_state.history[1:]:
        model = ShapeCheck.fit(h["pls"], reference, ShapeSettings(reach)).model
        flagged = (np.linalg.norm(model.offsets(h["pls"]), axis=-1) > reach * model.sigma)[:, cols]  # (N, k)
        err = (np.linalg.norm(pl_state.original(data, h["pls"]) - truth, axis=-1) * scale)[:, cols]
        wrong, right = err > wrong_mm, err <= right_mm
        rows.append({"epoch": int(h["epoch"]), "PLs": flagged.size, "flagged": int(flagged.sum()),
                     "wrong": int(wrong.sum()), "wrong_flagged": int((wrong & flagged).sum()),
                     "right_flagged": int((right & flagged).sum())})
    return pd.DataFrame(rows).set_index("epoch")

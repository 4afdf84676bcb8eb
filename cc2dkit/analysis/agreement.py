"""How far apart the annotators put each landmark (analysis only): the ground truth's own spread.

ISBI 2015 has two doctors' annotations and scores against their mean. Where the two disagree by
several millimetres (gonion, porion on ISBI), the mean is a point neither of them chose, and an
answer at either doctor's place is already half their distance from it. A one-shot detector copies
the *template's* mean: where the template's two annotations sit far apart, it looks for a point
between two readings of the anatomy on every image. :func:`annotator_distances` reads the
distances, :func:`agreement_table` summarises them per landmark, optionally beside a detector's
per-landmark errors. (On ISBI the spread does not rank the kit's per-landmark errors: the doctors'
widest disagreement, soft tissue pogonion, is among its easiest; benchmarks/RESULTS.md, twenty-fifth
session.)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def annotator_distances(marks: np.ndarray, spacing_mm: float | np.ndarray) -> np.ndarray:
    """(N, A, L, 2) each image's landmarks as A >= 2 annotators put them (pixels) -> (N, L) mm between
    the first two (``spacing_mm``: one value, or (N,) one per image)."""
    marks = np.asarray(marks, dtype=np.float64)
    if marks.ndim != 4 or marks.shape[1] < 2 or marks.shape[-1] != 2:
        raise ValueError(f"annotations must be (images, annotators >= 2, landmarks, 2), got {marks.shape}")
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (marks.shape[0],))
    return np.linalg.norm(marks[:, 0] - marks[:, 1], axis=-1) * spacing[:, None]


def agreement_table(distances: np.ndarray, names: Sequence[str], errors: np.ndarray | None = None,
                    over_mm: float = 4.0) -> pd.DataFrame:
    """(N, L) distances between the annotators (mm) -> per landmark their mean and median and the
    share over ``over_mm`` (%); with ``errors`` ((M, L) a detector's radial errors in mm, on the
    same or other images), its MRE and SDR at ``over_mm`` beside them. Sorted as ``names``."""
    distances = np.asarray(distances, dtype=np.float64)
    if distances.ndim != 2 or distances.shape[1] != len(names):
        raise ValueError(f"distances must be (images, {len(names)} landmarks), got {distances.shape}")
    table = pd.DataFrame({"doctors apart, mean (mm)": distances.mean(axis=0),
                          "median (mm)": np.median(distances, axis=0),
                          f"apart > {over_mm:g} mm (%)": 100 * (distances > over_mm).mean(axis=0)},
                         index=pd.Index(list(names), name="landmark"))
    if errors is not None:
        errors = np.asarray(errors, dtype=np.float64)
        if errors.ndim != 2 or errors.shape[1] != len(names):
            raise ValueError(f"errors must be (images, {len(names)} landmarks), got {errors.shape}")
        table["detector MRE (mm)"] = errors.mean(axis=0)
        table[f"detector SDR {over_mm:g} mm (%)"] = 100 * (errors <= over_mm).mean(axis=0)
    return table

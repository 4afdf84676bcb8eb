"""Evaluation tables (pandas) and the files an evaluation run writes.

Conventions: ``errors_mm`` is an (N, L) array (images x landmarks) from
:func:`cc2dkit.metrics.errors.radial_errors_mm`; SD is the population std (``ddof=0``).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import _check_errors, _check_radii, summarize

ALL_ROW = "all"  # name of the overall row of the per-landmark table (reserved)


def _check_2d(errors_mm) -> np.ndarray:
    errors = _check_errors(errors_mm)
    if errors.ndim != 2:
        raise ValueError(f"errors_mm must have shape (N images, L landmarks), got {errors.shape}")
    return errors


def _check_names(names: Sequence, expected: int, what: str, axis: str) -> list:
    names = list(names)
    if len(names) != expected:
        raise ValueError(f"got {len(names)} {what} for {expected} {axis} (errors_mm {axis} axis)")
    if len(set(names)) != len(names):
        dup = sorted({str(n) for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate {what}: {dup}")
    return names


def per_landmark_table(errors_mm, landmark_names: Sequence[str], radii: Iterable[float],
                       unit: str = "mm") -> pd.DataFrame:
    """One row per landmark plus a final ``"all"`` row with the overall scores.

    Index (named ``"landmark"``): the landmark names, then ``"all"``. Columns: ``MRE_mm``,
    ``SD_mm`` and ``SDR_<r>mm`` for each radius (e.g. ``SDR_2.0mm``), in that order; with
    ``unit="px"`` (pixel spacing unknown) ``MRE_px``, ``SD_px``, ``SDR_<r>px``.

    Raises:
        ValueError: names of the wrong length, duplicated, empty / non-string, or named ``"all"``.
    """
    errors = _check_2d(errors_mm)
    names = _check_names(landmark_names, errors.shape[1], "landmark names", "landmarks")
    for n in names:
        if not isinstance(n, str) or not n:
            raise ValueError(f"landmark names must be non-empty strings, got {n!r}")
        if n == ALL_ROW:
            raise ValueError(f"{ALL_ROW!r} is reserved for the overall row and cannot be a landmark name")
    radii = _check_radii(radii)
    rows = [summarize(errors[:, j], radii, unit) for j in range(errors.shape[1])]
    rows.append(summarize(errors, radii, unit))
    table = pd.DataFrame(rows, index=pd.Index(names + [ALL_ROW], name="landmark"))
    return table


def errors_long(errors_mm, landmark_names: Sequence[str], image_ids: Sequence, unit: str = "mm") -> pd.DataFrame:
    """Long-format errors: one row per (image, landmark) with columns image, landmark, error_mm (or error_px)."""
    errors = _check_2d(errors_mm)
    names = _check_names(landmark_names, errors.shape[1], "landmark names", "landmarks")
    ids = _check_names(image_ids, errors.shape[0], "image ids", "images")
    n, l = errors.shape
    return pd.DataFrame(
        {
            "image": np.repeat(np.asarray(ids, dtype=object), l),
            "landmark": np.tile(np.asarray(names, dtype=object), n),
            f"error_{unit}": errors.reshape(-1),
        }
    )

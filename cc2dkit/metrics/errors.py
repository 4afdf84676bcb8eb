"""Radial errors and the standard landmark-detection scores (MRE, SD, SDR).

All errors are measured in the *original* image pixels (see :mod:`cc2dkit.data.coords`) and
converted to millimetres with the pixel spacing, as in the ISBI 2015 challenge protocol.

Definitions used throughout the kit:

- ``MRE_mm``: mean radial error over every (image, landmark) pair.
- ``SD_mm``: standard deviation of those same errors, *population* std (``ddof=0``).
- ``SDR_<r>mm``: successful detection rate, the percentage (0-100) of errors ``<= r`` mm;
  an error exactly on the radius counts as a success.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

DEFAULT_RADII: tuple[float, ...] = (2.0, 2.5, 3.0, 4.0)


def as_numpy(x, dtype=np.float64) -> np.ndarray:
    """Array-like or (CPU/GPU, grad or not) torch tensor -> numpy array of ``dtype``."""
    if hasattr(x, "detach"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def sdr_key(radius: float, unit: str = "mm") -> str:
    """Column / dict key of the SDR at ``radius`` (in ``unit``), e.g. ``2 -> "SDR_2.0mm"``."""
    return f"SDR_{float(radius)}{unit}"


def radial_errors_mm(pred, gt, spacing_mm) -> np.ndarray:
    """Euclidean distance between predictions and ground truth, in millimetres.

    Args:
        pred, gt: (N, L, 2) arrays of (x, y) coordinates in original image pixels.
        spacing_mm: pixel size in mm, a float (all images) or an (N,) array (one per image).

    Returns:
        (N, L) float64 array of errors in mm.

    Raises:
        ValueError: on mismatching / non-(N, L, 2) shapes, NaN or infinite coordinates (the
            offending (image, landmark) positions are listed), or a bad spacing.
    """
    pred = as_numpy(pred)
    gt = as_numpy(gt)
    if pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred must have shape (N, L, 2), got {pred.shape}")
    if gt.shape != pred.shape:
        raise ValueError(f"pred and gt shapes differ: pred {pred.shape} vs gt {gt.shape}")
    for name, arr in (("pred", pred), ("gt", gt)):
        bad = ~np.isfinite(arr).all(axis=-1)
        if bad.any():
            where = [tuple(int(i) for i in p) for p in np.argwhere(bad)]
            raise ValueError(
                f"{name} has NaN/inf coordinates at (image, landmark) positions {where[:20]}"
                + (f" ... ({len(where)} in total)" if len(where) > 20 else "")
            )
    spacing = as_numpy(spacing_mm)
    n = pred.shape[0]
    if spacing.ndim == 0:
        spacing = np.full(n, float(spacing))
    elif spacing.shape != (n,):
        raise ValueError(
            f"spacing_mm must be a float or an ({n},) array for {n} images, got shape {spacing.shape}"
        )
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(f"spacing_mm must be finite and positive, got {spacing}")
    dist_px = np.linalg.norm(pred - gt, axis=-1)
    return dist_px * spacing[:, None]


def _check_errors(errors_mm) -> np.ndarray:
    errors = as_numpy(errors_mm)
    if errors.size == 0:
        raise ValueError(f"errors_mm is empty (shape {errors.shape})")
    bad = ~np.isfinite(errors)
    if bad.any():
        where = [tuple(int(i) for i in p) for p in np.argwhere(bad)][:20]
        raise ValueError(f"errors_mm has NaN/inf values at positions {where}")
    if (errors < 0).any():
        raise ValueError("errors_mm must be non-negative")
    return errors


def _check_radii(radii: Iterable[float]) -> tuple[float, ...]:
    radii = tuple(float(r) for r in radii)
    if not radii:
        raise ValueError("radii must not be empty")
    if any(not np.isfinite(r) or r < 0 for r in radii):
        raise ValueError(f"radii must be finite and non-negative, got {radii}")
    if len(set(radii)) != len(radii):
        raise ValueError(f"radii contain duplicates: {radii}")
    return radii


def sdr(errors_mm, radii: Iterable[float] = DEFAULT_RADII) -> dict[float, float]:
    """Successful detection rate: ``{radius_mm: percentage of errors <= radius_mm}``.

    ``errors_mm`` may have any shape (all entries are pooled). Percentages are in [0, 100].
    """
    errors = _check_errors(errors_mm)
    return {r: float(100.0 * np.mean(errors <= r)) for r in _check_radii(radii)}


def summarize(errors_mm, radii: Iterable[float], unit: str = "mm") -> dict[str, float]:
    """Overall scores of a set of errors (any shape, all entries pooled).

    Returns ``{"MRE_mm": mean, "SD_mm": population std (ddof=0), "SDR_<r>mm": percentage, ...}``
    with one SDR key per radius (see :func:`sdr_key`), all plain Python floats. ``unit``: what the
    errors are in, written into the keys (``"px"`` for images of unknown pixel spacing).
    """
    errors = _check_errors(errors_mm)
    out = {f"MRE_{unit}": float(errors.mean()), f"SD_{unit}": float(errors.std(ddof=0))}
    for r, rate in sdr(errors, radii).items():
        out[sdr_key(r, unit)] = rate
    return out

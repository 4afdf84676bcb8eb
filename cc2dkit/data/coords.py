"""Exact coordinate mapping between original pixels and the square model grid.

Convention (used throughout the kit): pixel centres sit at integer coordinates, so an image of
width ``W`` spans ``[-0.5, W - 0.5)``. Resizing by stretching (as CC2D does) maps the *edges* of
the image onto each other, which gives

    x_grid = (x_orig + 0.5) * G / W - 0.5        x_orig = (x_grid + 0.5) * W / G - 0.5

This matches ``torch.nn.functional.interpolate(..., align_corners=False)`` and
``grid_sample(..., align_corners=False)``, so features sampled at a grid coordinate and images
resized with bilinear interpolation agree.
"""
from __future__ import annotations

import numpy as np
import torch


def to_grid(points, size_hw: tuple[int, int], grid: int):
    """Original (x, y) pixels -> grid pixels. ``points``: (..., 2) array or tensor."""
    h, w = size_hw
    scale = _scale(points, (grid / w, grid / h))
    return (points + 0.5) * scale - 0.5


def from_grid(points, size_hw: tuple[int, int], grid: int):
    """Grid (x, y) pixels -> original pixels. Inverse of :func:`to_grid`."""
    h, w = size_hw
    scale = _scale(points, (w / grid, h / grid))
    return (points + 0.5) * scale - 0.5


def to_normalized(points, grid: int):
    """Grid pixels -> ``grid_sample`` coordinates in [-1, 1] (align_corners=False)."""
    return (points + 0.5) * (2.0 / grid) - 1.0


def cell_index(points, stride: int):
    """Grid pixels -> integer (col, row) of the stride-``stride`` feature cell containing them."""
    if isinstance(points, torch.Tensor):
        return torch.floor((points + 0.5) / stride).long()
    return np.floor((np.asarray(points) + 0.5) / stride).astype(np.int64)


def _scale(points, sxy):
    if isinstance(points, torch.Tensor):
        return torch.tensor(sxy, dtype=points.dtype, device=points.device)
    return np.asarray(sxy, dtype=np.float64)

"""A dataset resized once to the square model grid, held in memory as one tensor.

``GridImages`` stretches every image to ``grid x grid`` (bilinear, antialiased, the CC2D
convention) and maps landmarks with :mod:`coords`, so grid coordinates and original coordinates
convert exactly both ways. Resizing the 1935x2400 ISBI images is done once per run.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .base import LandmarkDataset, SubsetDataset
from .coords import from_grid, to_grid


def resize_to_grid(image: np.ndarray, grid: int) -> torch.Tensor:
    """(H, W) float image -> (1, grid, grid) float32 tensor (bilinear, antialiased)."""
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # (1, 1, H, W)
    out = F.interpolate(t, size=(grid, grid), mode="bilinear", align_corners=False, antialias=True)
    return out[0].clamp_(0.0, 1.0)


class GridImages:
    """All images of ``dataset`` at the model grid.

    Attributes: ``images`` (N, 1, G, G) float32; ``sizes`` (N, 2) original (H, W);
    ``keys`` feature-cache keys ``"<split>/<id>"``; ``landmarks`` (N, L, 2) float64 grid coordinates, NaN for unlabelled images; ``labelled`` (N,);
    ``unit`` ``"mm"`` when every image's pixel spacing is known, else ``"px"``; ``scale`` (N,)
    what one original pixel is in that unit (the spacing, or 1).
    """

    def __init__(self, dataset: LandmarkDataset, grid: int, split: str, progress: bool = True):
        if grid % 32:
            raise ValueError(f"data.grid must be a multiple of 32 (got {grid})")
        self.dataset = dataset
        self.grid = grid
        self.split = split
        self.ids = list(dataset.ids)
        self.keys = [f"{split}/{i}" for i in self.ids]  # feature-cache keys, unique across splits
        self.landmark_names = tuple(dataset.landmark_names)
        spacing = np.array([np.nan if dataset.spacing_of(i) is None else dataset.spacing_of(i)
                            for i in range(len(dataset))], dtype=np.float64)
        self.unit = "mm" if np.isfinite(spacing).all() else "px"
        self.scale = spacing if self.unit == "mm" else np.ones(len(dataset))
        n, n_lm = len(dataset), len(dataset.landmark_names)
        self.images = torch.empty(n, 1, grid, grid)
        self.sizes = np.zeros((n, 2), dtype=np.int64)
        self.landmarks = np.full((n, n_lm, 2), np.nan)
        self.original_landmarks = np.full((n, n_lm, 2), np.nan)
        for i in tqdm(range(n), desc=f"resizing to {grid}x{grid}", disable=not progress, leave=False):
            s = dataset[i]
            self.images[i] = resize_to_grid(s.image, grid)
            self.sizes[i] = s.image.shape
            if s.landmarks is not None:
                if s.landmarks.shape != (n_lm, 2):
                    raise ValueError(f"image {s.id}: landmarks of shape {s.landmarks.shape}, expected {(n_lm, 2)}")
                self.original_landmarks[i] = s.landmarks
                self.landmarks[i] = to_grid(s.landmarks, tuple(s.image.shape), grid)
        self.labelled = ~np.isnan(self.landmarks).any(axis=(1, 2))

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows) -> "GridImages":
        """Some rows of this set as a set of their own (the images are not resized again)."""
        rows = [int(r) for r in rows]
        sub = copy.copy(self)
        sub.dataset = SubsetDataset(self.dataset, [self.ids[r] for r in rows])
        sub.ids, sub.keys = [self.ids[r] for r in rows], [self.keys[r] for r in rows]
        for name in ("images", "sizes", "landmarks", "original_landmarks", "labelled", "scale"):
            setattr(sub, name, getattr(self, name)[rows])
        return sub

    def index(self, image_id: str) -> int:
        return self.dataset.index(image_id)

    def to_original(self, grid_points: np.ndarray, landmarks: Sequence[int] | None = None) -> np.ndarray:
        """(N, L, 2) grid coordinates of every image -> original pixels. With ``landmarks``, the
        (N, K, 2) points are those K landmarks' and the result is (N, L, 2), NaN for the others."""
        if landmarks is not None:
            full = np.full((len(self), len(self.landmark_names), 2), np.nan)
            full[:, list(landmarks)] = grid_points
            grid_points = full
        out = np.empty_like(grid_points, dtype=np.float64)
        for i in range(len(self)):
            out[i] = from_grid(np.asarray(grid_points[i], dtype=np.float64), tuple(self.sizes[i]), self.grid)
        return out

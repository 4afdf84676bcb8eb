"""The dataset interface every source (ISBI, folder, phantom) implements.

A *landmark dataset* holds images at their original resolution and, when labelled, landmark
coordinates in original pixels. Coordinates are ``(x, y)`` floats with **pixel centres at integer
positions**: pixel ``(0, 0)`` covers ``[-0.5, 0.5) x [-0.5, 0.5)``. This one convention is used
everywhere (see ``coords.py`` for the mapping to the model grid).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .landmarks import landmark_index


@dataclass(frozen=True)
class Sample:
    """One image at original resolution."""

    id: str  # e.g. "125" or "train_003"
    image: np.ndarray  # (H, W) float32 in [0, 1], grayscale
    landmarks: np.ndarray | None  # (L, 2) float64 (x, y) in original pixels; None if unlabelled
    spacing_mm: float | None  # millimetres per pixel (isotropic); None: unknown (errors in pixels)


class LandmarkDataset:
    """Base class: subclasses fill ``ids``, ``landmark_names``, ``spacing_mm`` (the images' pixel
    size in mm, None when unknown; ``spacing_of(i)`` may differ per image) and ``_load``."""

    ids: list[str]
    landmark_names: tuple[str, ...]
    spacing_mm: float | None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Sample:
        if not 0 <= i < len(self.ids):
            raise IndexError(f"index {i} out of range for {len(self.ids)} images")
        return self._load(i)

    def index(self, image_id: str) -> int:
        """Position of an image id; a clear error when it is not in this dataset."""
        try:
            return self.ids.index(str(image_id))
        except ValueError:
            shown = ", ".join(self.ids[:5]) + (", ..." if len(self.ids) > 5 else "")
            raise KeyError(f"image id {image_id!r} is not in this dataset (ids: {shown})") from None

    def image_ref(self, i: int) -> str:
        """How a landmark CSV names image ``i`` (the folder format's ``image`` column); the id here."""
        return self.ids[i]

    def spacing_of(self, i: int) -> float | None:
        """Image ``i``'s pixel size in mm (None: unknown)."""
        return self.spacing_mm

    def landmark_index(self, name: str | int) -> int:
        """Landmark index from a name (case-insensitive) or a 0-based index (see ``landmarks.py``)."""
        return landmark_index(self.landmark_names, name)

    def _load(self, i: int) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError


class SubsetDataset(LandmarkDataset):
    """A view of some images of another dataset (keeps its names and spacing)."""

    def __init__(self, base: LandmarkDataset, ids: list[str]):
        self.base = base
        self._indices = [base.index(i) for i in ids]
        self.ids = [base.ids[j] for j in self._indices]
        self.landmark_names = base.landmark_names
        self.spacing_mm = base.spacing_mm

    def _load(self, i: int) -> Sample:
        return self.base[self._indices[i]]

    def image_ref(self, i: int) -> str:
        return self.base.image_ref(self._indices[i])

    def spacing_of(self, i: int) -> float | None:
        return self.base.spacing_of(self._indices[i])

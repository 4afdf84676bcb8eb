"""Finding landmarks by name or index: one rule for the whole kit.

A landmark is named by its 0-based index among a dataset's landmark names (an int, or a string of
digits such as ``"3"``) or by its name, matched **case-insensitively** (``"Sella"`` = ``"sella"``);
a dataset therefore never holds two names that differ only in case.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


class LandmarkNotFound(KeyError, ValueError):
    """An unknown landmark name or an index out of range (a KeyError and a ValueError)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def landmark_index(names: Sequence[str], landmark: int | str) -> int:
    """Position of ``landmark`` (an index, a digit string, or a case-insensitive name) among ``names``."""
    names = list(names)
    if isinstance(landmark, (int, np.integer)) or (isinstance(landmark, str) and landmark.strip().lstrip("-").isdigit()):
        i = int(landmark)
        if not 0 <= i < len(names):
            raise LandmarkNotFound(f"landmark index {i} out of range [0, {len(names)}) (landmarks: {names})")
        return i
    lowered = [n.lower() for n in names]
    key = str(landmark).strip().lower()
    if key not in lowered:
        raise LandmarkNotFound(f"unknown landmark {landmark!r}; known: {names}")
    return lowered.index(key)


def resolve_landmarks(selection: Iterable[int | str] | None, names: Sequence[str], what: str = "method.landmarks"
                      ) -> list[int]:
    """A selection of landmarks (indices and/or names; None: all) -> distinct indices, in the given order."""
    if selection is None:
        return list(range(len(names)))
    try:
        out = [landmark_index(names, item) for item in selection]
    except LandmarkNotFound as e:
        raise LandmarkNotFound(f"{what}: {e}") from None
    if not out or len(set(out)) != len(out):
        raise ValueError(f"{what} must name distinct landmarks, got {selection}")
    return out


def case_clash(names: Iterable[str]) -> tuple[str, str] | None:
    """Two names that differ only in case (the first such pair), or None."""
    seen: dict[str, str] = {}
    for n in names:
        if n.lower() in seen and seen[n.lower()] != n:
            return seen[n.lower()], n
        seen.setdefault(n.lower(), n)
    return None


def check_inside(points: np.ndarray, size_hw: tuple[int, int], names, where: str) -> None:
    """Refuse landmarks outside the image (pixel centres at integers: [-0.5, W - 0.5] x [-0.5, H - 0.5])."""
    h, w = size_hw
    for name, (x, y) in zip(names, points):
        if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
            raise ValueError(f"{where}: landmark {name!r} at ({x:g}, {y:g}) lies outside the image "
                             f"({w} x {h} pixels)")

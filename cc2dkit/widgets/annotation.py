"""The template annotator's logic, without any widget: which landmark comes next, undo, and where a
click on the canvas lands in the image.

- :class:`Annotation`: the named landmarks of one image, placed one after the other (each click
  places the current landmark, then the next missing one becomes current); any landmark can be
  picked again and moved; every change can be undone.
- :class:`View`, :func:`canvas_to_image`, :func:`image_to_canvas`: the map between canvas pixels
  (origin top-left, as the browser counts) and image pixels (the kit's convention: pixel centres at
  integers) through the current zoom and pan, i.e. the axes' limits. It is matplotlib's own map
  (``ax.transData``) written out, so a test or a browser script knows where to click.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.landmarks import case_clash, landmark_index


class Annotation:
    """Landmarks ``names`` of one image of size ``size_hw`` (H, W); ``points``: those already placed."""

    def __init__(self, names: Sequence[str], size_hw: tuple[int, int],
                 points: Mapping[str, tuple[float, float]] | None = None):
        self.names = [str(n) for n in names]
        if not self.names:
            raise ValueError("the annotator needs at least one landmark name")
        clash = case_clash(self.names)
        if clash or len(set(self.names)) != len(self.names):
            raise ValueError(f"landmark names must be distinct (case-insensitively): {self.names}")
        self.size_hw = tuple(int(v) for v in size_hw)
        self.points: dict[str, tuple[float, float] | None] = dict.fromkeys(self.names)
        for name, xy in (points or {}).items():
            self.points[self.names[landmark_index(self.names, name)]] = self._inside(name, xy)
        self.current = self.missing[0] if self.missing else self.names[0]
        self._history: list[tuple[str, tuple[float, float] | None, str]] = []

    @property
    def missing(self) -> list[str]:
        return [n for n in self.names if self.points[n] is None]

    @property
    def placed(self) -> list[str]:
        return [n for n in self.names if self.points[n] is not None]

    @property
    def complete(self) -> bool:
        return not self.missing

    def _inside(self, name: str, xy) -> tuple[float, float]:
        x, y = (float(v) for v in xy)
        h, w = self.size_hw
        if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
            raise ValueError(f"landmark {name!r} at ({x:g}, {y:g}) lies outside the image ({w} x {h} pixels)")
        return x, y

    def select(self, landmark: int | str) -> str:
        """Make ``landmark`` (name or index) the one the next click places (to place or move it)."""
        self.current = self.names[landmark_index(self.names, landmark)]
        return self.current

    def place(self, x: float, y: float) -> str:
        """Put the current landmark at (x, y) image pixels; the next missing one becomes current.

        Returns the landmark placed. A point outside the image is refused (ValueError).
        """
        name = self.current
        xy = self._inside(name, (x, y))
        self._history.append((name, self.points[name], self.current))
        self.points[name] = xy
        after = self.names[self.names.index(name) + 1:] + self.names[:self.names.index(name)]
        self.current = next((n for n in after if self.points[n] is None), name)
        return name

    def undo(self) -> str | None:
        """Revert the last placement (the landmark becomes current again); None when nothing is left."""
        if not self._history:
            return None
        name, previous, _ = self._history.pop()
        self.points[name] = previous
        self.current = name
        return name

    def array(self) -> np.ndarray:
        """(L, 2) points in name order, NaN for the missing."""
        return np.array([self.points[n] if self.points[n] is not None else (np.nan, np.nan) for n in self.names])


@dataclass(frozen=True)
class View:
    """What a canvas shows: the axes' data limits and where the axes sit on the canvas.

    ``xlim`` (data x at the left, right edge), ``ylim`` (data y at the bottom, top edge: for an
    image (H - 0.5, -0.5)), ``box`` (left, top, width, height) of the axes in canvas pixels, origin
    at the canvas's top-left corner.
    """

    xlim: tuple[float, float]
    ylim: tuple[float, float]
    box: tuple[float, float, float, float]


def canvas_to_image(cx: float, cy: float, view: View) -> tuple[float, float]:
    """Canvas pixel (origin top-left) -> image pixel (x, y) through the zoom and pan of ``view``."""
    left, top, width, height = view.box
    (x0, x1), (yb, yt) = view.xlim, view.ylim
    return x0 + (cx - left) / width * (x1 - x0), yt + (cy - top) / height * (yb - yt)


def image_to_canvas(x: float, y: float, view: View) -> tuple[float, float]:
    """Image pixel (x, y) -> canvas pixel (origin top-left): the inverse of :func:`canvas_to_image`."""
    left, top, width, height = view.box
    (x0, x1), (yb, yt) = view.xlim, view.ylim
    return left + (x - x0) / (x1 - x0) * width, top + (y - yt) / (yb - yt) * height


def view_of(ax) -> View:
    """The :class:`View` of a matplotlib axes as it is drawn now (canvas pixels at the figure's dpi)."""
    fig_h = ax.figure.bbox.height
    box = ax.get_window_extent()  # display pixels, origin bottom-left
    return View(tuple(ax.get_xlim()), tuple(ax.get_ylim()), (box.x0, fig_h - box.y1, box.width, box.height))

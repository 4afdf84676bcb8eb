"""The template annotator: place the landmarks of one image of your own by clicking, in JupyterLab.

The image is drawn at its own resolution in an interactive matplotlib canvas (``ipympl``: the
toolbar's magnifier zooms to a rectangle, the cross pans, the house goes back), so a landmark can
be put on the pixel it belongs to. A click on the image (no toolbar tool active) places the
current landmark; the next missing one becomes current. The panel beside it lists every landmark
(placed or missing); picking one there makes it current, to place it or move it; "undo" reverts
the last click; "save" writes the points into the landmark CSV (the folder format), replacing
that image's rows and keeping all others. ``ipympl`` was chosen over hand-written JavaScript or a
raw canvas: it is matplotlib (the kit's figures), its toolbar gives zoom and pan, and its click
events arrive in image pixels through whatever zoom is shown. The logic lives in
``annotation.py`` and is tested without a browser.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from ..data.folder import read_image_rows, write_image_rows
from .annotation import Annotation, view_of


class TemplateAnnotator:
    """Annotate ``image`` (H, W) with ``names``; ``csv`` / ``image_ref``: where "save" writes (and
    what it loads first). Names default to those already in the CSV for this image."""

    def __init__(self, image: np.ndarray, names: Sequence[str] | None = None, csv: str | Path | None = None,
                 image_ref: str = "template.png", width_in: float = 6.5):
        from ipympl.backend_nbagg import Canvas, FigureManager

        self.csv, self.image_ref = (Path(csv) if csv is not None else None), image_ref
        existing = read_image_rows(self.csv, image_ref) if self.csv is not None else {}
        names = list(names) if names is not None else list(existing)
        self.state = Annotation(names, image.shape[:2], {k: v for k, v in existing.items() if k in names})
        h, w = image.shape[:2]
        self.figure = Figure(figsize=(width_in, width_in * h / w), layout="constrained")
        self.ax = self.figure.add_subplot()
        self.ax.imshow(image, cmap="gray", interpolation="nearest")
        self.ax.set_xticks([]), self.ax.set_yticks([])
        (self.markers,) = self.ax.plot([], [], "o", mfc="none", mec="lime", ms=8, mew=2)
        (self.current_marker,) = self.ax.plot([], [], "+", color="red", ms=14, mew=2)
        self.labels = []
        self.canvas = Canvas(self.figure)
        self.manager = FigureManager(self.canvas, 0)
        self.canvas.header_visible = False
        self.canvas.toolbar_position = "top"
        self.canvas.toolbar_visible = True
        self.canvas.mpl_connect("button_press_event", self._pressed)

        self.prompt = W.HTML()
        self.listing = W.Select(rows=min(len(names), 19), layout=W.Layout(width="260px"))
        self.listing.observe(lambda change: self._picked(change["new"]), names="value")
        self.undo_button = W.Button(description="undo", icon="undo", layout=W.Layout(width="125px"))
        self.save_button = W.Button(description="save", icon="save", layout=W.Layout(width="125px"),
                                    disabled=self.csv is None)
        self.undo_button.on_click(lambda _: self.undo())
        self.save_button.on_click(lambda _: self.save())
        self.status = W.HTML()
        panel = W.VBox([self.prompt, self.listing, W.HBox([self.undo_button, self.save_button]), self.status])
        self.widget = W.HBox([self.canvas, panel])
        self._redraw()

    # -- actions (the buttons and clicks call these; tests and notebooks may too) -----------------
    def click(self, x: float, y: float) -> str:
        """Place the current landmark at image pixel (x, y)."""
        placed = self.state.place(x, y)
        self._redraw(f"placed {placed} at ({x:.1f}, {y:.1f})")
        return placed

    def select(self, landmark: int | str) -> None:
        self.state.select(landmark)
        self._redraw()

    def undo(self) -> None:
        name = self.state.undo()
        self._redraw("nothing to undo" if name is None else f"undid {name}")

    def save(self, csv: str | Path | None = None) -> Path:
        """Write the points to ``csv`` (default: the annotator's), this image's rows replaced."""
        target = Path(csv) if csv is not None else self.csv
        if target is None:
            raise ValueError("no CSV to save to: give TemplateAnnotator(csv=...) or save(csv)")
        path = write_image_rows(target, self.image_ref, self.state.points)
        self._redraw(f"saved {len(self.state.placed)} landmarks of {self.image_ref} to {path}")
        return path

    def view(self):
        """Where the axes are on the canvas and what they show (see ``annotation.View``)."""
        return view_of(self.ax)

    # -- drawing --------------------------------------------------------------------------------
    def _pressed(self, event) -> None:
        tool = getattr(self.canvas.toolbar, "mode", "") if self.canvas.toolbar is not None else ""
        if event.inaxes is not self.ax or event.button != 1 or str(tool) not in ("", "None"):
            return  # a zoom or pan gesture, another button, or outside the image
        try:
            self.click(event.xdata, event.ydata)
        except ValueError as e:
            self._redraw(str(e))

    def _picked(self, value) -> None:
        if value is not None and value != self.state.current:
            self.select(value)

    def _redraw(self, message: str = "") -> None:
        s = self.state
        placed = s.placed
        xy = np.array([s.points[n] for n in placed]).reshape(-1, 2)
        self.markers.set_data(xy[:, 0], xy[:, 1])
        cur = s.points[s.current]
        self.current_marker.set_data(*(([cur[0]], [cur[1]]) if cur is not None else ([], [])))
        for t in self.labels:
            t.remove()
        self.labels = [self.ax.annotate(n, s.points[n], xytext=(6, 6), textcoords="offset points", color="lime",
                                        fontsize=8) for n in placed]
        self.listing.unobserve_all("value")
        self.listing.options = [(f"{'✓' if s.points[n] is not None else '·'} {n}", n) for n in s.names]
        self.listing.value = s.current
        self.listing.observe(lambda change: self._picked(change["new"]), names="value")
        self.prompt.value = (f"<b>click to place: {s.current}</b><br>{len(placed)} of {len(s.names)} placed"
                             if not s.complete else f"<b>all {len(s.names)} placed</b> (pick one to move it)")
        self.status.value = message
        self.canvas.draw_idle()

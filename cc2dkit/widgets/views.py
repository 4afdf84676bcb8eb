"""Figures that follow the landmark picker, updated in place.

Each view owns one matplotlib figure and redraws its artists' data on a landmark change (no new
figure per change), shown through an ``ipywidgets.Output``. ``view.figure`` is inspectable in
tests: the image data of the axes is what a student sees.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
import ipywidgets as W

from ..inference.explain import ImageMaps


class FigureView:
    """Base: a figure inside an Output widget, re-displayed after each update."""

    def __init__(self, figure: Figure):
        self.figure = figure
        self.output = W.Output()
        self.updates = 0

    def show(self) -> None:
        from IPython.display import display

        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)

    def __call__(self, landmark: int) -> None:
        self.update(landmark)
        self.updates += 1
        self.show()

    def update(self, landmark: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SimilarityMapsView(FigureView):
    """The 5 per-scale similarity maps of one landmark on one image, their product, and the
    prediction (red x) against ground truth (green o)."""

    def __init__(self, maps: ImageMaps, landmark_names: tuple[str, ...]):
        self.maps = maps
        self.names = tuple(landmark_names)
        s = maps.maps.shape[0]
        fig = Figure(figsize=(2.6 * (s + 1), 3.0))
        axes = fig.subplots(1, s + 1)
        self.images = []
        for k, ax in enumerate(axes):
            ax.set_xticks([]), ax.set_yticks([])
            data = maps.maps[k, 0] if k < s else maps.product[0]
            self.images.append(ax.imshow(data, cmap="magma", vmin=0, vmax=None))
            ax.set_title(f"stride {maps.strides[k]}" if k < s else "product", fontsize=9)
        last = axes[-1]
        last.imshow(maps.image, cmap="gray", alpha=0.35)
        (self.pred_marker,) = last.plot([], [], "rx", ms=9, mew=2, label="prediction")
        (self.truth_marker,) = last.plot([], [], "o", mfc="none", mec="lime", ms=9, mew=2, label="truth")
        self.title = fig.suptitle("")
        fig.tight_layout()
        super().__init__(fig)

    def update(self, landmark: int) -> None:
        s = self.maps.maps.shape[0]
        for k, im in enumerate(self.images):
            data = self.maps.maps[k, landmark] if k < s else self.maps.product[landmark]
            im.set_data(data)
            im.set_clim(0, max(float(data.max()), 1e-6))
        px, py = self.maps.prediction[landmark]
        self.pred_marker.set_data([px], [py])
        if self.maps.truth is not None:
            tx, ty = self.maps.truth[landmark]
            self.truth_marker.set_data([tx], [ty])
        self.title.set_text(f"{self.names[landmark]}: similarity per scale and cascade product")


class PredictionsView(FigureView):
    """Predictions of one landmark on several images against ground truth (original pixels)."""

    def __init__(self, images: list[np.ndarray], pred: np.ndarray, truth: np.ndarray | None,
                 landmark_names: tuple[str, ...], titles: list[str]):
        self.pred, self.truth, self.names = pred, truth, tuple(landmark_names)
        fig = Figure(figsize=(3.0 * len(images), 3.4))
        axes = np.atleast_1d(fig.subplots(1, len(images)))
        self.pred_markers, self.truth_markers, self.lines = [], [], []
        for ax, img, title in zip(axes, images, titles):
            ax.imshow(img, cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(title, fontsize=9)
            self.pred_markers.append(ax.plot([], [], "rx", ms=9, mew=2)[0])
            self.truth_markers.append(ax.plot([], [], "o", mfc="none", mec="lime", ms=9, mew=2)[0])
            self.lines.append(ax.plot([], [], "y-", lw=1)[0])
        self.title = fig.suptitle("")
        fig.tight_layout()
        super().__init__(fig)

    def update(self, landmark: int) -> None:
        for i, (pm, tm, ln) in enumerate(zip(self.pred_markers, self.truth_markers, self.lines)):
            px, py = self.pred[i, landmark]
            pm.set_data([px], [py])
            if self.truth is not None:
                tx, ty = self.truth[i, landmark]
                tm.set_data([tx], [ty])
                ln.set_data([px, tx], [py, ty])
        self.title.set_text(f"{self.names[landmark]}: prediction (x) vs ground truth (o)")

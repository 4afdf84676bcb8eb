"""Figures that follow the landmark picker, updated in place.

Each view owns one matplotlib figure (constrained layout, so a figure title never covers the
panel titles) and redraws its artists' data on a landmark change (no new figure per change),
shown through an ``ipywidgets.Output``. ``view.figure`` is inspectable in tests: the image data of
the axes is what a student sees.
"""
from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from ..inference import ImageMaps

WIDTH_IN = 9.6  # inches: about the width of a JupyterLab cell at the default 100 dpi (no scaling down)


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
    """The per-scale similarity maps of one landmark on one image (one colour scale, 0 to 1), their
    product over the image, and the prediction (red x) against ground truth (green o)."""

    def __init__(self, maps: ImageMaps, landmark_names: Sequence[str], image_name: str = ""):
        self.maps, self.names, self.image_name = maps, tuple(landmark_names), image_name
        s = maps.maps.shape[0]
        fig = Figure(figsize=(WIDTH_IN, 2.5), layout="constrained")
        axes = fig.subplots(1, s + 1)
        self.images = []
        for k, ax in enumerate(axes):
            ax.set_xticks([]), ax.set_yticks([])
            if k < s:
                self.images.append(ax.imshow(maps.maps[k, 0], cmap="magma", vmin=0, vmax=1))
                ax.set_title(f"stride {maps.strides[k]}", fontsize=9)
        last = axes[-1]
        last.imshow(maps.image, cmap="gray")
        self.images.append(last.imshow(maps.product[0], cmap="magma", alpha=0.6, vmin=0))
        last.set_title("product on the image", fontsize=9)
        fig.colorbar(self.images[0], ax=list(axes[:s]), shrink=0.8, pad=0.01, label="cosine (clamped at 0)")
        (self.pred_marker,) = last.plot([], [], "rx", ms=8, mew=2, label="prediction")
        (self.truth_marker,) = last.plot([], [], "o", mfc="none", mec="lime", ms=8, mew=2, label="truth")
        self.title = fig.suptitle("", fontsize=10)
        super().__init__(fig)

    def update(self, landmark: int) -> None:
        s = self.maps.maps.shape[0]
        for k, im in enumerate(self.images[:s]):
            im.set_data(self.maps.maps[k, landmark])
        product = self.maps.product[landmark]
        self.images[s].set_data(product)
        self.images[s].set_clim(0, max(float(product.max()), 1e-6))
        px, py = self.maps.prediction[landmark]
        self.pred_marker.set_data([px], [py])
        if self.maps.truth is not None:
            tx, ty = self.maps.truth[landmark]
            self.truth_marker.set_data([tx], [ty])
        on = f" on image {self.image_name}" if self.image_name else ""
        self.title.set_text(f"{self.names[landmark]}{on}: similarity per scale and cascade product "
                            "(x prediction, o truth)")


class PredictionsView(FigureView):
    """Predictions of one landmark on several images against ground truth (original pixels)."""

    def __init__(self, images: list[np.ndarray], pred: np.ndarray, truth: np.ndarray | None,
                 landmark_names: Sequence[str], titles: list[str]):
        self.pred, self.truth, self.names = pred, truth, tuple(landmark_names)
        fig = Figure(figsize=(min(WIDTH_IN, 3.0 * len(images)), 3.3), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(images)))
        self.pred_markers, self.truth_markers, self.lines = [], [], []
        for ax, img, title in zip(axes, images, titles):
            ax.imshow(img, cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(title, fontsize=9)
            self.pred_markers.append(ax.plot([], [], "rx", ms=9, mew=2)[0])
            self.truth_markers.append(ax.plot([], [], "o", mfc="none", mec="lime", ms=9, mew=2)[0])
            self.lines.append(ax.plot([], [], "y-", lw=1)[0])
        self.title = fig.suptitle("", fontsize=10)
        super().__init__(fig)

    @classmethod
    def of(cls, data, predictions: np.ndarray, columns: Sequence[int], n_images: int = 3,
           label: str = "") -> "PredictionsView":
        """The view of (N, L, 2) ``predictions`` of ``data``'s first ``n_images`` images, landmarks ``columns``."""
        n, cols = min(n_images, len(data)), list(columns)
        gt = data.original_landmarks[:n][:, cols] if data.labelled[:n].all() else None
        titles = [f"{label}{data.ids[i]}" for i in range(n)]
        return cls([data.dataset[i].image for i in range(n)], predictions[:n][:, cols], gt,
                   [data.landmark_names[l] for l in cols], titles)

    def update(self, landmark: int) -> None:
        for i, (pm, tm, ln) in enumerate(zip(self.pred_markers, self.truth_markers, self.lines)):
            px, py = self.pred[i, landmark]
            pm.set_data([px], [py])
            if self.truth is not None:
                tx, ty = self.truth[i, landmark]
                tm.set_data([tx], [ty])
                ln.set_data([px, tx], [py, ty])
        self.title.set_text(f"{self.names[landmark]}: prediction (x) vs ground truth (o)")

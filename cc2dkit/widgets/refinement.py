"""Coarse against refined, landmark by landmark: the picker wired to a close-up of each predictor's
cascade product at its answer and to the error histograms over the images (notebook 08)."""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from ..analysis.refinement import PredictorComparison
from ..inference import ImageMaps
from .picker import LandmarkPicker
from .views import WIDTH_IN, FigureView

MARKERS = ("x", "+", "^", "s", "D", "v", "*")  # one per predictor, in the order given
PANELS_PER_ROW = 4  # more predictors wrap onto further rows: each panel stays about 2.2 inches wide


class PeakView(FigureView):
    """One image, one panel per predictor: its cascade product in a window of +-``radius`` grid
    pixels around the truth (or around the first answer without one), every predictor's answer
    marked, the truth as a green circle. Grid pixels: 1-1.25 mm on ISBI at grid 192."""

    def __init__(self, maps: Mapping[str, ImageMaps], answers: Mapping[str, np.ndarray],
                 landmark_names: Sequence[str], image_name: str = "", radius: int = 12):
        self.maps, self.names = dict(maps), tuple(landmark_names)
        self.answers = {k: np.asarray(v) for k, v in answers.items()}  # (K, 2) grid points per predictor
        self.image_name, self.radius = image_name, radius
        first = next(iter(self.maps.values()))
        self.truth = first.truth
        cols = min(len(self.maps), PANELS_PER_ROW)
        rows = -(-len(self.maps) // cols)
        fig = Figure(figsize=(min(WIDTH_IN, 2.6 * cols + 1.0), 2.9 * rows + 0.7), layout="constrained")
        grid = np.atleast_1d(fig.subplots(rows, cols)).ravel()
        for ax in grid[len(self.maps):]:  # the last row's empty places
            ax.set_axis_off()
        self.axes = grid[:len(self.maps)]
        self.images, self.marks, self.truth_marks = [], [], []
        for ax, (label, m) in zip(self.axes, self.maps.items()):
            self.images.append(ax.imshow(m.product[0], cmap="magma", vmin=0))
            ax.set_title(textwrap.fill(label, 20), fontsize=9)  # long labels side by side must not overlap
            self.marks.append([ax.plot([], [], MARKERS[j % len(MARKERS)], ms=9, mew=2, mfc="none", label=other)[0]
                               for j, other in enumerate(self.answers)])
            self.truth_marks.append(ax.plot([], [], "o", mfc="none", mec="lime", ms=11, mew=2, label="truth")[0])
        fig.legend(handles=[*self.marks[0], self.truth_marks[0]], loc="outside lower center", fontsize=8,
                   ncols=len(self.answers) + 1)
        fig.colorbar(self.images[-1], ax=list(self.axes), shrink=0.8, pad=0.01, label="cascade product")
        self.title = fig.suptitle("", fontsize=10)
        super().__init__(fig)

    def update(self, landmark: int) -> None:
        centre = self.truth[landmark] if self.truth is not None else next(iter(self.answers.values()))[landmark]
        cx, cy, r = int(round(centre[0])), int(round(centre[1])), self.radius
        g = next(iter(self.maps.values())).product.shape[-1]
        x0, x1, y0, y1 = max(cx - r, 0), min(cx + r + 1, g), max(cy - r, 0), min(cy + r + 1, g)
        windows = [m.product[landmark][y0:y1, x0:x1] for m in self.maps.values()]
        top = max(max(float(w.max()) for w in windows), 1e-6)  # one colour scale: the colour bar holds for all
        for ax, im, marks, truth_mark, window in zip(self.axes, self.images, self.marks, self.truth_marks, windows):
            im.set_data(window)
            im.set_extent((x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5))  # grid pixel coordinates
            im.set_clim(0, top)
            ax.set_xlim(x0 - 0.5, x1 - 0.5), ax.set_ylim(y1 - 0.5, y0 - 0.5)
            for mark, answer in zip(marks, self.answers.values()):
                mark.set_data([answer[landmark, 0]], [answer[landmark, 1]])
            if self.truth is not None:
                truth_mark.set_data([self.truth[landmark, 0]], [self.truth[landmark, 1]])
        on = f" on image {self.image_name}" if self.image_name else ""
        self.title.set_text(f"{self.names[landmark]}{on}: cascade product near the truth (grid pixels)")


class ErrorHistogramView(FigureView):
    """The errors of one landmark over the images, one outlined histogram per predictor, on common
    bins (``bins`` None: about one per three images, 5 to 30); the legend gives each one's mean and
    SDR at 2 (mm or px)."""

    def __init__(self, comparison: PredictorComparison, bins: int | None = None):
        self.comparison, self.bins = comparison, bins
        fig = Figure(figsize=(WIDTH_IN * 0.75, 3.0), layout="constrained")
        self.ax = fig.add_subplot()
        super().__init__(fig)

    def update(self, landmark: int) -> None:
        c, ax = self.comparison, self.ax
        ax.clear()
        columns = {label: e[:, landmark] for label, e in c.errors.items()}
        top = max(float(np.percentile(np.concatenate(list(columns.values())), 98)), 1e-6)
        n = len(next(iter(columns.values())))
        edges = np.linspace(0, top, (self.bins or int(np.clip(n // 3, 5, 30))) + 1)
        for label, e in columns.items():
            ax.hist(np.clip(e, 0, top), bins=edges, histtype="step", lw=2,
                    label=f"{label}: mean {e.mean():.2f}, SDR 2 {100 * (e <= 2).mean():.0f}%")
        ax.set_xlabel(f"radial error ({c.unit}; the last bin holds everything beyond)")
        ax.set_ylabel("images")
        ax.set_title(f"{c.landmark_names[landmark]}: errors over {n} images", fontsize=10)
        ax.legend(fontsize=8)


@dataclass
class RefinementExplorer:
    picker: LandmarkPicker
    peaks: PeakView
    histograms: ErrorHistogramView
    widget: W.VBox


def refinement_explorer(comparison: PredictorComparison, maps: Mapping[str, ImageMaps], image_index: int,
                        image_name: str = "", start: int | str = 0, radius: int = 12) -> RefinementExplorer:
    """Picker of the landmarks + :class:`PeakView` of image ``image_index`` (``maps``: each predictor's
    ``image_maps`` of it) + :class:`ErrorHistogramView` of ``comparison``."""
    if not 0 <= image_index < len(next(iter(comparison.grid.values()))):
        raise IndexError(f"image_index {image_index} out of range")
    answers = {label: g[image_index] for label, g in comparison.grid.items()}
    picker = LandmarkPicker(comparison.landmark_names, start)
    peaks = PeakView(maps, answers, comparison.landmark_names, image_name, radius)
    histograms = ErrorHistogramView(comparison)
    picker.observe(peaks)
    picker.observe(histograms)
    return RefinementExplorer(picker, peaks, histograms, W.VBox([picker.widget, peaks.output, histograms.output]))

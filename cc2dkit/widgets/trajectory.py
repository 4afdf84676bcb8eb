"""The pseudo-label trajectory view: where the PL of the picked landmark went, epoch by epoch.

:class:`PLTrajectoryView` follows a :class:`~cc2dkit.widgets.LandmarkPicker` whose options are
the K *trained* landmarks (``pl_state.landmark_names``; picker index = PL column k). It draws, on
a few training images, the PL path of that landmark across epochs (initial random PL to the
final one) against the ground truth that training never reads. :func:`pl_explorer` wires it with
the 5 similarity maps of the picked landmark on a test image (through the model that predicts
it, ``Predictor.image_maps``) and a :class:`~cc2dkit.widgets.PredictionsView`
of the test predictions, for the notebooks of the PL methods (``multi``, ``sla``, ``atd``, ``adapter``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from ..analysis.pl import pl_trajectories
from .picker import LandmarkPicker
from .views import WIDTH_IN, FigureView, PredictionsView, SimilarityMapsView


class PLTrajectoryView(FigureView):
    """PL paths of one landmark on several images, updated in place on a landmark change.

    ``trajectories`` (n, E+1, K, 2) original pixels (see :func:`cc2dkit.analysis.pl.pl_trajectories`);
    ``truth`` (n, K, 2) or None; one panel per image. Artists per panel (lists indexed by panel):
    ``paths`` (the path, one vertex per epoch), ``starts`` (initial PL), ``ends`` (final PL),
    ``truth_markers``. ``zoom``: crop each panel to the path and truth plus this margin (pixels).
    """

    def __init__(self, images: Sequence[np.ndarray], trajectories: np.ndarray, truth: np.ndarray | None,
                 landmark_names: Sequence[str], titles: Sequence[str], zoom: float | None = None):
        trajectories = np.asarray(trajectories, dtype=np.float64)
        if trajectories.ndim != 4 or trajectories.shape[-1] != 2 or trajectories.shape[0] != len(images):
            raise ValueError(f"trajectories must be (n_images={len(images)}, E+1, K, 2), got {trajectories.shape}")
        if trajectories.shape[2] != len(landmark_names):
            raise ValueError(f"{trajectories.shape[2]} trajectory columns for {len(landmark_names)} landmark names")
        self.trajectories, self.names, self.zoom = trajectories, tuple(landmark_names), zoom
        self.truth = None if truth is None else np.asarray(truth, dtype=np.float64)
        fig = Figure(figsize=(min(WIDTH_IN, 3.2 * len(images)), 3.5), layout="constrained")
        self.axes = list(np.atleast_1d(fig.subplots(1, len(images))))
        self.paths, self.starts, self.ends, self.truth_markers = [], [], [], []
        for ax, img, title in zip(self.axes, images, titles):
            ax.imshow(img, cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(title, fontsize=9)
            self.paths.append(ax.plot([], [], "-o", color="cyan", ms=3, lw=1.2)[0])
            self.starts.append(ax.plot([], [], "s", mfc="white", mec="black", ms=6)[0])
            self.ends.append(ax.plot([], [], "x", color="red", ms=8, mew=2)[0])
            self.truth_markers.append(ax.plot([], [], "o", mfc="none", mec="lime", ms=9, mew=2)[0])
        self.full_limits = [(ax.get_xlim(), ax.get_ylim()) for ax in self.axes]
        self.title = fig.suptitle("", fontsize=10)
        super().__init__(fig)

    def update(self, landmark: int) -> None:
        for i, ax in enumerate(self.axes):
            path = self.trajectories[i, :, landmark]
            self.paths[i].set_data(path[:, 0], path[:, 1])
            self.starts[i].set_data(path[:1, 0], path[:1, 1])
            self.ends[i].set_data(path[-1:, 0], path[-1:, 1])
            pts = path
            if self.truth is not None and np.isfinite(self.truth[i, landmark]).all():
                tx, ty = self.truth[i, landmark]
                self.truth_markers[i].set_data([tx], [ty])
                pts = np.vstack([path, self.truth[i, landmark][None]])
            else:
                self.truth_markers[i].set_data([], [])
            if self.zoom is not None:
                lo, hi = pts.min(axis=0) - self.zoom, pts.max(axis=0) + self.zoom
                ax.set_xlim(lo[0], hi[0])
                ax.set_ylim(hi[1], lo[1])
        self.title.set_text(f"{self.names[landmark]}: PL path over {self.trajectories.shape[1] - 1} epochs "
                            f"(square: initial, x: final, o: ground truth)")

    @classmethod
    def from_state(cls, pl_state, data, image_rows: Sequence[int] | None = None, n_images: int = 3,
                   zoom: float | None = None) -> "PLTrajectoryView":
        """The view of ``pl_state``'s PLs on training ``data`` rows ``image_rows`` (default: the
        first ``n_images`` rows holding PLs)."""
        rows = list(pl_state.image_indices[:n_images]) if image_rows is None else [int(i) for i in image_rows]
        traj = pl_trajectories(pl_state, data, rows)
        truth = data.original_landmarks[np.ix_(rows, pl_state.landmark_indices)]
        return cls([data.dataset[i].image for i in rows], traj, truth, pl_state.landmark_names,
                   [data.ids[i] for i in rows], zoom)


@dataclass
class PLExplorer:
    picker: LandmarkPicker
    trajectory_view: PLTrajectoryView
    predictions_view: PredictionsView | None
    widget: W.VBox
    maps_view: SimilarityMapsView | None = None


def pl_explorer(result, data, image_rows: Sequence[int] | None = None, n_images: int = 3, start: int | str = 0,
                zoom: float | None = None, maps_image: int | None = 0) -> PLExplorer:
    """Picker of the trained landmarks + similarity maps + PL paths on training images + test predictions.

    ``result``: a :class:`~cc2dkit.methods.MethodResult` with a ``pl_state`` (every method but
    ``cc2d``); ``data``: the (train, test) GridImages it ran on. ``maps_image``: the test image
    whose 5 similarity maps are shown (None: no maps view). ``image_rows``: training rows for the
    paths (default: the first ``n_images`` with PLs); the first ``n_images`` test images show the
    predictions (no predictions view when the result has none). The views are tabs under the
    picker, so the picker and any one view fit a laptop screen together.
    """
    pl_state = result.pl_state
    if pl_state is None:
        raise ValueError("this result has no pseudo-labels (plain CC2D); run a PL method (multi, sla, atd, adapter)")
    train, test = data
    traj_view = PLTrajectoryView.from_state(pl_state, train, image_rows, n_images, zoom)
    picker = LandmarkPicker(pl_state.landmark_names, start)
    tabs: dict[str, W.Widget] = {}
    maps_view = None
    if test is not None and maps_image is not None:
        maps_view = SimilarityMapsView(result.predictor.image_maps(test, maps_image), pl_state.landmark_names,
                                       test.ids[maps_image])
        picker.observe(maps_view)
        tabs["similarity maps"] = maps_view.output
    picker.observe(traj_view)
    tabs["pseudo-label paths"] = traj_view.output
    pred_view = None
    if test is not None and result.predictions is not None:
        pred_view = PredictionsView.of(test, result.predictions, pl_state.landmark_indices, n_images)
        picker.observe(pred_view)
        tabs["predictions"] = pred_view.output
    tab = W.Tab(children=list(tabs.values()), titles=list(tabs))
    return PLExplorer(picker, traj_view, pred_view, W.VBox([picker.widget, tab]), maps_view)

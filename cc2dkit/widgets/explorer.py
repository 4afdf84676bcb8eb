"""One call for a notebook: the landmark picker wired to the similarity-map and prediction views."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W
import numpy as np

from ..inference.explain import image_maps
from .picker import LandmarkPicker
from .views import PredictionsView, SimilarityMapsView


@dataclass
class Explorer:
    picker: LandmarkPicker
    maps_view: SimilarityMapsView
    predictions_view: PredictionsView
    widget: W.VBox


def landmark_explorer(session, pred: np.ndarray, image_index: int = 0, n_images: int = 3,
                      start: int | str = 0) -> Explorer:
    """Picker + the 5 similarity maps on test image ``image_index`` + predictions on ``n_images``.

    ``session`` is a :class:`cc2dkit.pipeline.Session`; ``pred`` its (N, L, 2) test predictions
    in original pixels.
    """
    data = session.test_data
    if not 0 <= image_index < len(data):
        raise IndexError(f"image_index {image_index} out of range for {len(data)} test images")
    truth = data.landmarks[image_index] if data.labelled[image_index] else None
    maps = image_maps(session.model, session.template(), data.images[image_index], session.device, truth)
    n = min(n_images, len(data))
    images = [data.dataset[i].image for i in range(n)]
    gt = data.original_landmarks[:n] if data.labelled[:n].all() else None
    picker = LandmarkPicker(data.landmark_names, start)
    maps_view = SimilarityMapsView(maps, data.landmark_names)
    pred_view = PredictionsView(images, pred[:n], gt, data.landmark_names, [data.ids[i] for i in range(n)])
    picker.observe(maps_view)
    picker.observe(pred_view)
    box = W.VBox([picker.widget, maps_view.output, pred_view.output])
    return Explorer(picker, maps_view, pred_view, box)

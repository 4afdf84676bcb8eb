"""One call for a notebook: the landmark picker wired to the similarity-map and prediction views."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W

from .picker import LandmarkPicker
from .views import PredictionsView, SimilarityMapsView


@dataclass
class Explorer:
    picker: LandmarkPicker
    maps_view: SimilarityMapsView
    predictions_view: PredictionsView | None
    widget: W.VBox


def landmark_explorer(result, test, image_index: int = 0, n_images: int = 3, start: int | str = 0) -> Explorer:
    """Picker of the trained landmarks + their 5 similarity maps on test image ``image_index`` +
    the predictions on the first ``n_images`` test images.

    ``result``: a :class:`~cc2dkit.methods.MethodResult` (any method); ``test``: the GridImages it
    was evaluated on.
    """
    if not 0 <= image_index < len(test):
        raise IndexError(f"image_index {image_index} out of range for {len(test)} test images")
    cols = result.predictor.landmark_indices
    names = [test.landmark_names[l] for l in cols]
    picker = LandmarkPicker(names, start)
    maps_view = SimilarityMapsView(result.predictor.image_maps(test, image_index), names, test.ids[image_index])
    picker.observe(maps_view)
    views, pred_view = [picker.widget, maps_view.output], None
    if result.predictions is not None:
        pred_view = PredictionsView.of(test, result.predictions, cols, n_images)
        picker.observe(pred_view)
        views.append(pred_view.output)
    return Explorer(picker, maps_view, pred_view, W.VBox(views))

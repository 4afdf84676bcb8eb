from pathlib import Path

import numpy as np
import pytest

from cc2dkit.inference import ImageMaps
from cc2dkit.methods import run_method
from cc2dkit.widgets import LandmarkPicker, PredictionsView, SimilarityMapsView, landmark_explorer


def test_picker_dropdown_buttons_and_callbacks():
    seen = []
    picker = LandmarkPicker(("sella", "nasion", "orbitale"))
    picker.observe(seen.append)
    assert seen == [0] and picker.name == "sella"
    picker.next_button.click()
    picker.next()
    assert picker.name == "orbitale" and seen == [0, 1, 2]
    picker.next()  # wraps around
    assert picker.index == 0
    picker.prev_button.click()
    assert picker.index == 2
    picker.dropdown.value = 1  # what the browser does
    assert seen[-1] == 1
    picker.select("ORBITALE")
    assert picker.index == 2
    with pytest.raises(KeyError, match="pogonion"):
        picker.select("pogonion")
    with pytest.raises(KeyError, match="7"):
        picker.select(7)


def _fake_maps(n_lm=3, s=5, g=32):
    rng = np.random.default_rng(0)
    maps = rng.random((s, n_lm, g, g)).astype(np.float32)
    pred = rng.integers(0, g, (n_lm, 2)).astype(float)
    truth = rng.integers(0, g, (n_lm, 2)).astype(float)
    return ImageMaps(rng.random((g, g)), maps, (32, 16, 8, 4, 2)[:s], pred, truth)


def test_similarity_view_shows_the_selected_landmarks_maps():
    maps = _fake_maps()
    view = SimilarityMapsView(maps, ("a", "b", "c"))
    picker = LandmarkPicker(("a", "b", "c"))
    picker.observe(view)
    picker.select("c")
    for k in range(5):
        assert np.array_equal(np.asarray(view.images[k].get_array()), maps.maps[k, 2])
    assert np.allclose(np.asarray(view.images[5].get_array()), maps.product[2])
    assert list(view.pred_marker.get_xdata()) == [maps.prediction[2, 0]]
    assert list(view.truth_marker.get_ydata()) == [maps.truth[2, 1]]
    assert view.title.get_text().startswith("c:")
    assert view.updates == 2 and len(view.figure.axes) == 7  # same figure, updated in place: 6 panels + colorbar
    assert view.figure.axes[-1].get_ylabel() == "cosine (clamped at 0)"
    assert view.figure.get_figwidth() <= 9.6  # shown at full size in a JupyterLab cell, not scaled down


def test_predictions_view_moves_markers():
    pred = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    truth = pred + 1
    view = PredictionsView([np.zeros((8, 8))] * 2, pred, truth, ("a", "b", "c"), ["i0", "i1"])
    view(1)
    assert list(view.pred_markers[1].get_xdata()) == [pred[1, 1, 0]]
    assert list(view.lines[0].get_xdata()) == [pred[0, 1, 0], truth[0, 1, 0]]


def test_explorer_on_a_trained_smoke_run(smoke_cfg):
    cfg = smoke_cfg.replace(**{"train.epochs": 1, "train.steps_per_epoch": 1})
    result = run_method(cfg, progress=False)
    test, pred = result.data[1], result.predictions
    ex = landmark_explorer(result, test, image_index=1, n_images=2)
    ex.picker.select(3)
    # the product's argmax is the prediction of that landmark on that image
    product = np.asarray(ex.maps_view.images[-1].get_array())
    y, x = np.unravel_index(product.argmax(), product.shape)
    assert [x, y] == list(ex.maps_view.maps.prediction[3])
    grid_pred = test.to_original(ex.maps_view.maps.prediction[None].repeat(len(test), 0))
    assert np.allclose(grid_pred[1], pred[1])
    assert list(ex.predictions_view.pred_markers[0].get_xdata()) == [pred[0, 3, 0]]
    assert test.ids[1] in ex.maps_view.title.get_text()


def test_jupyterlab_finds_the_prebuilt_widget_manager():
    """The widgets render in JupyterLab without a front-end build: the ipywidgets 8 manager is a
    prebuilt (federated) extension in one of Jupyter's data paths, matching the kernel's ipywidgets."""
    import json

    import ipywidgets
    from jupyter_core.paths import jupyter_path

    found = [p for p in (Path(d) / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager" / "package.json"
                         for d in jupyter_path()) if p.exists()]
    assert found, f"no @jupyter-widgets/jupyterlab-manager under {jupyter_path()}"
    manager = json.loads(found[0].read_text())
    assert manager["version"].split(".")[0] == "5" and ipywidgets.__version__.split(".")[0] == "8"
    assert (found[0].parent / "static").is_dir()

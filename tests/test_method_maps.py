"""Predictor.image_maps: the similarity maps of a trained method's landmarks; their argmax is its prediction."""
import numpy as np
import pytest

from cc2dkit.methods import run_method

from .conftest import phantom_grids, tiny_cfg

TINY = {"data.phantom_train": 5, "method.landmarks": (0, 2, 3)}


@pytest.fixture(scope="module")
def data():
    return phantom_grids(tiny_cfg(**TINY))


@pytest.mark.parametrize("name", ["multi", "sla", "adapter"])
def test_argmax_of_the_maps_is_the_methods_prediction(data, name):
    cfg = tiny_cfg(**TINY, **{"method.name": name})
    result = run_method(cfg, data=data, progress=False)
    test = data[1]
    for index in range(len(test)):
        maps = result.predictor.image_maps(test, index)
        assert maps.maps.shape == (5, 3, 64, 64) and maps.strides == (32, 16, 8, 4, 2)
        assert (maps.maps >= 0).all()
        np.testing.assert_array_equal(maps.prediction, result.predictor.predict_grid(test, [index])[0])
        np.testing.assert_array_equal(maps.truth, test.landmarks[index][[0, 2, 3]])
    with pytest.raises(IndexError, match="out of range"):
        result.predictor.image_maps(test, len(test))

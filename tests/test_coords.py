"""The pixel-centre coordinate convention between original images and the model grid."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cc2dkit.data.coords import (
    cell_index,
    from_grid,
    to_grid,
    to_normalized,
)

SIZE_HW = (30, 50)  # non-square on purpose
GRID = 16


def test_round_trip_numpy():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 49.5, size=(7, 2))
    back = from_grid(to_grid(pts, SIZE_HW, GRID), SIZE_HW, GRID)
    np.testing.assert_allclose(back, pts, atol=1e-12)
    np.testing.assert_allclose(to_grid(from_grid(pts, SIZE_HW, GRID), SIZE_HW, GRID), pts, atol=1e-12)


def test_round_trip_torch_keeps_type_and_device():
    pts = torch.rand(3, 5, 2, dtype=torch.float64) * 29.0
    g = to_grid(pts, SIZE_HW, GRID)
    assert isinstance(g, torch.Tensor) and g.dtype == torch.float64 and g.shape == pts.shape
    torch.testing.assert_close(from_grid(g, SIZE_HW, GRID), pts)
    # numpy and torch agree
    np.testing.assert_allclose(g.numpy(), to_grid(pts.numpy(), SIZE_HW, GRID))


def test_image_edges_map_onto_grid_edges():
    h, w = SIZE_HW
    corners = np.array([[-0.5, -0.5], [w - 0.5, h - 0.5]])
    np.testing.assert_allclose(to_grid(corners, SIZE_HW, GRID), [[-0.5, -0.5], [GRID - 0.5, GRID - 0.5]])
    np.testing.assert_allclose(from_grid(np.array([[GRID - 0.5, -0.5]]), SIZE_HW, GRID), [[w - 0.5, -0.5]])


def test_normalized_matches_grid_sample_convention():
    np.testing.assert_allclose(to_normalized(np.array([-0.5, GRID - 0.5, (GRID - 1) / 2]), GRID), [-1, 1, 0])


def test_cells():
    pts = np.array([[0.0, 3.49], [3.51, 7.4]])
    np.testing.assert_array_equal(cell_index(pts, 4), [[0, 0], [1, 1]])
    np.testing.assert_array_equal(cell_index(torch.tensor(pts), 4).numpy(), [[0, 0], [1, 1]])


def _centroid(img: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    return np.array([(xs * img).sum(), (ys * img).sum()]) / img.sum()


@pytest.mark.parametrize("dot", [(5, 4), (9, 7), (2, 9)])
def test_interpolate_agrees_with_to_grid(dot):
    """A one-hot dot, bilinearly resized (align_corners=False), lands where to_grid says."""
    h, w, grid = 12, 16, 48  # integer scale factors 4 (y) and 3 (x)
    img = torch.zeros(1, 1, h, w, dtype=torch.float64)
    img[0, 0, dot[1], dot[0]] = 1.0
    up = F.interpolate(img, size=(grid, grid), mode="bilinear", align_corners=False)[0, 0].numpy()
    expected = to_grid(np.array(dot, dtype=np.float64), (h, w), grid)
    np.testing.assert_allclose(_centroid(up), expected, atol=0.05)


def test_antialiased_downsampling_agrees_with_to_grid():
    h, w, grid = 64, 48, 16  # factors 4 and 3
    img = torch.zeros(1, 1, h, w, dtype=torch.float64)
    img[0, 0, 30, 21] = 1.0
    down = F.interpolate(img, size=(grid, grid), mode="bilinear", align_corners=False, antialias=True)
    expected = to_grid(np.array([21.0, 30.0]), (h, w), grid)
    np.testing.assert_allclose(_centroid(down[0, 0].numpy()), expected, atol=0.05)

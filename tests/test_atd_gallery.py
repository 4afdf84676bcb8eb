"""Augmented-template figures and the exact point check (cc2dkit.viz.atd, cc2dkit.analysis.atd)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from cc2dkit.config import MethodConfig
from cc2dkit.data.coords import to_grid
from cc2dkit.data.template_aug import augment_template
from cc2dkit.analysis.atd import dot_warp_check
from cc2dkit.viz.atd import plot_affine_params, plot_dot_check, template_gallery

GRID = 64


@pytest.fixture(scope="module")
def copies():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, size=(80, 96)).astype(np.float32)
    landmarks = np.array([[20.0, 30.0], [70.5, 40.25], [50.0, 60.0]])
    method = MethodConfig(atd_copies=12)
    out = augment_template(image, landmarks, method, GRID, torch.Generator().manual_seed(0))
    return out, to_grid(landmarks, (80, 96), GRID)


def test_gallery_panels_and_landmarks(copies):
    c, _ = copies
    fig = template_gallery(c, n=6, landmark_names=["a", "b", "c"])
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 6 and len(fig.axes) == 8  # 2 rows of 4, two left empty
    for i, ax in enumerate(shown):
        np.testing.assert_allclose(ax.images[0].get_array(), c.images[i, 0].numpy())
        (pts,) = [l for l in ax.lines if l.get_marker() == "o"]
        np.testing.assert_allclose(np.c_[pts.get_xdata(), pts.get_ydata()], c.landmarks[i])
        assert f"#{i}:" in ax.get_title() and f"x{c.params[i, 3]:.3f}" in ax.get_title()
        assert [t.get_text() for t in ax.texts] == ["a", "b", "c"]


def test_gallery_reference_and_limits(copies):
    c, ref = copies
    fig = template_gallery(c, n=2, reference=ref)
    ax = fig.axes[0]
    segments = [l for l in ax.lines if l.get_linestyle() == "-"]
    assert len(segments) == 3
    np.testing.assert_allclose(segments[1].get_xydata(), np.stack([ref[1], c.landmarks[0, 1]]))
    assert len([a for a in template_gallery(c, n=100).axes if a.images]) == len(c)
    with pytest.raises(ValueError, match="names"):
        template_gallery(c, landmark_names=["a"])
    with pytest.raises(ValueError, match="n must"):
        template_gallery(c, n=0)
    with pytest.raises(ValueError, match="reference"):
        template_gallery(c, reference=ref[:2])


def test_affine_param_histograms(copies):
    c, _ = copies
    fig = plot_affine_params(c, bins=5)
    assert len(fig.axes) == 4
    for ax in fig.axes:
        assert sum(p.get_height() for p in ax.patches) == len(c)
    assert np.all(np.abs(c.params[:, 0]) <= MethodConfig().atd_rotation_deg)


@pytest.mark.parametrize("args", [dict(), dict(angle=-5.0, shift=(0.0, 0.0), scale=0.99),
                                  dict(point=(60.0, 50.0), angle=5.0, shift=(2.56, 1.92), scale=1.01)])
def test_dot_moves_exactly(args):
    check = dot_warp_check(**args)
    assert check.error_px < 0.05
    assert np.hypot(*(check.moved - check.point)) > 1.0  # the map did move it
    fig = plot_dot_check(check)
    assert len(fig.axes) == 2 and f"{check.error_px:.3f}" in fig.axes[1].get_title()

"""Metrics against hand-computed values, tables, result files and plots (fast, CPU only)."""
from __future__ import annotations

import io
import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from cc2dkit.metrics import DEFAULT_RADII, per_landmark_table, radial_errors_mm, sdr, summarize
from cc2dkit.viz import plot_error_bars, plot_predictions

RADII = (2.0, 2.5, 3.0, 4.0)
SDR_COLS = ["SDR_2.0mm", "SDR_2.5mm", "SDR_3.0mm", "SDR_4.0mm"]
# Hand-made (3 images x 2 landmarks) errors in mm.
E = np.array([[1.0, 2.0],
              [3.0, 5.0],
              [2.5, 4.5]])


# --------------------------------------------------------------------------- radial errors
def test_radial_errors_345_triangle_scalar_spacing():
    gt = np.zeros((2, 3, 2))
    pred = gt + np.array([3.0, 4.0])  # every point off by a 3-4-5 triangle
    err = radial_errors_mm(pred, gt, 0.1)
    assert err.shape == (2, 3)
    np.testing.assert_allclose(err, 0.5)


def test_radial_errors_per_image_spacing_and_original_pixels():
    gt = np.array([[[10.0, 20.0]], [[0.0, 0.0]]])
    pred = np.array([[[16.0, 28.0]], [[5.0, 12.0]]])  # 6-8-10 and 5-12-13
    err = radial_errors_mm(pred, gt, np.array([0.1, 0.2]))
    np.testing.assert_allclose(err, [[1.0], [2.6]])


def test_radial_errors_accepts_torch():
    torch = pytest.importorskip("torch")
    gt = torch.zeros(1, 1, 2)
    pred = torch.tensor([[[3.0, 4.0]]], requires_grad=True)
    np.testing.assert_allclose(radial_errors_mm(pred, gt, 1.0), [[5.0]])


@pytest.mark.parametrize(
    "pred_shape, gt_shape",
    [((2, 3, 2), (2, 4, 2)), ((2, 3, 3), (2, 3, 3)), ((3, 2), (3, 2))],
)
def test_radial_errors_bad_shapes(pred_shape, gt_shape):
    with pytest.raises(ValueError, match=r"\(.*\)"):
        radial_errors_mm(np.zeros(pred_shape), np.zeros(gt_shape), 0.1)


def test_radial_errors_nan_reports_position():
    pred = np.zeros((2, 3, 2))
    pred[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        radial_errors_mm(pred, np.zeros((2, 3, 2)), 0.1)


@pytest.mark.parametrize("spacing", [np.array([0.1, 0.1, 0.1]), 0.0, -1.0, np.array([0.1, np.nan])])
def test_radial_errors_bad_spacing(spacing):
    with pytest.raises(ValueError, match="spacing"):
        radial_errors_mm(np.zeros((2, 1, 2)), np.zeros((2, 1, 2)), spacing)


# --------------------------------------------------------------------------- SDR / summary
def test_sdr_boundary_counts_as_success():
    rates = sdr(np.array([2.0, 2.0000001, 1.0, 10.0]), radii=(2.0, 4.0))
    assert rates == {2.0: 50.0, 4.0: 75.0}


def test_sdr_default_radii():
    assert tuple(sdr(E)) == DEFAULT_RADII == RADII
    # E flattened: 1, 2, 3, 5, 2.5, 4.5
    assert sdr(E) == pytest.approx({2.0: 200 / 6, 2.5: 300 / 6, 3.0: 400 / 6, 4.0: 400 / 6})


def test_summarize_by_hand():
    s = summarize(E, RADII)
    assert list(s) == ["MRE_mm", "SD_mm"] + SDR_COLS
    mean = (1 + 2 + 3 + 5 + 2.5 + 4.5) / 6  # 3.0
    sq = [(v - mean) ** 2 for v in (1, 2, 3, 5, 2.5, 4.5)]  # 4, 1, 0, 4, .25, 2.25
    assert s["MRE_mm"] == pytest.approx(3.0)
    assert s["SD_mm"] == pytest.approx(np.sqrt(sum(sq) / 6))  # population std, ddof=0
    assert s["SDR_2.0mm"] == pytest.approx(100 * 2 / 6)
    assert s["SDR_4.0mm"] == pytest.approx(100 * 4 / 6)
    assert all(type(v) is float for v in s.values())


def test_summarize_rejects_nan_and_empty():
    with pytest.raises(ValueError):
        summarize(np.array([1.0, np.nan]), RADII)
    with pytest.raises(ValueError):
        summarize(np.zeros((0, 3)), RADII)


# --------------------------------------------------------------------------- tables
def test_per_landmark_table():
    t = per_landmark_table(E, ["A", "B"], RADII)
    assert list(t.columns) == ["MRE_mm", "SD_mm"] + SDR_COLS
    assert list(t.index) == ["A", "B", "all"]
    assert t.index.name == "landmark"
    # landmark A: 1, 3, 2.5 -> mean 6.5/3, population std
    a = np.array([1.0, 3.0, 2.5])
    assert t.loc["A", "MRE_mm"] == pytest.approx(6.5 / 3)
    assert t.loc["A", "SD_mm"] == pytest.approx(np.sqrt(((a - a.mean()) ** 2).mean()))
    assert t.loc["A", "SDR_2.0mm"] == pytest.approx(100 / 3)
    assert t.loc["A", "SDR_2.5mm"] == pytest.approx(200 / 3)
    # landmark B: 2, 5, 4.5
    assert t.loc["B", "SDR_2.0mm"] == pytest.approx(100 / 3)
    assert t.loc["B", "SDR_4.0mm"] == pytest.approx(100 / 3)
    # "all" row equals the overall summary
    assert t.loc["all"].to_dict() == pytest.approx(summarize(E, RADII))


@pytest.mark.parametrize("names", [["A"], ["A", "B", "C"], ["A", "A"], ["A", "all"], ["A", 3]])
def test_per_landmark_table_bad_names(names):
    with pytest.raises(ValueError):
        per_landmark_table(E, names, RADII)


def test_per_landmark_table_needs_2d():
    with pytest.raises(ValueError, match="shape"):
        per_landmark_table(E.reshape(-1), ["A"] * 6, RADII)


def test_tables_in_pixels_say_so():
    """Images of unknown spacing: the same scores, labelled px."""
    t = per_landmark_table(E, ["A", "B"], (2.0,), unit="px")
    assert list(t.columns) == ["MRE_px", "SD_px", "SDR_2.0px"]
    np.testing.assert_allclose(t["MRE_px"], per_landmark_table(E, ["A", "B"], (2.0,))["MRE_mm"])
    from cc2dkit.metrics import errors_long
    assert list(errors_long(E, ["A", "B"], ["1", "2", "3"], unit="px").columns) == ["image", "landmark", "error_px"]


def test_plot_predictions_into_given_axes_and_channel_image():
    fig = Figure()
    ax = fig.add_subplot()
    out = plot_predictions(np.zeros((1, 8, 8)), np.ones((2, 2)), np.zeros((2, 2)), ax=ax)
    assert out is fig and ax.images[0].get_array().shape == (8, 8)
    with pytest.raises(ValueError):
        plot_predictions(np.zeros((8, 8)), np.ones((2, 2)), np.zeros((3, 2)))


def test_plot_error_bars():
    table = per_landmark_table(E, ["A", "B"], RADII)
    fig = plot_error_bars(table)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == 2  # one bar per landmark, the "all" row is not a bar
    np.testing.assert_allclose([p.get_height() for p in ax.patches], table["MRE_mm"].iloc[:2])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"]
    fig.savefig(io.BytesIO(), format="png")


def test_landmarks_gallery_and_history_plots():
    from cc2dkit.viz import plot_history, plot_landmarks, prediction_gallery

    img = np.zeros((20, 30))
    pts = np.array([[1.0, 2.0], [5.0, 6.0]])
    fig = plot_landmarks(img, pts, ["a", "b"])
    assert np.array_equal(fig.axes[0].lines[0].get_xydata(), pts)
    gal = prediction_gallery([img, img], np.stack([pts, pts + 1]), np.stack([pts, pts]), ["i0", "i1"])
    assert len(gal.axes) == 2 and gal.axes[1].get_title() == "i1"
    with pytest.raises(ValueError):
        prediction_gallery([img], np.stack([pts, pts]), np.stack([pts]), ["i0"])
    metrics = pd.DataFrame({"epoch": [1, 1, 2, 2], "landmark": ["a", "b"] * 2, "loss_template": [3.0, 5.0, 2.0, 2.0],
                            "loss_pl": [1.0, 1.0, 0.5, 0.5], "test_mre_mm": [9.0, 9.0, 8.0, 8.0]})
    hist = plot_history(metrics)
    assert [ln.get_label() for ln in hist.axes[0].lines] == ["template", "pl"]
    assert list(hist.axes[0].lines[0].get_ydata()) == [4.0, 2.0]  # mean over the landmarks per epoch
    with pytest.raises(ValueError, match="loss_"):
        plot_history(metrics.drop(columns=["loss_template", "loss_pl"]))


def test_metrics_imports_neither_torch_nor_matplotlib():
    import subprocess
    import sys

    code = "import sys, cc2dkit.metrics; print(sorted({'torch', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""PL figures and the PL trajectory widget: synthetic PL histories, then one tiny SLA run."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cc2dkit.analysis.pl import pl_summary, pl_trajectories, pl_trajectory
from cc2dkit.viz.pl import (END_LABEL, GT_LABEL, PATH_LABEL, START_LABEL, pl_trajectory_gallery, plot_pl_history,
                            plot_pl_trajectory)
from cc2dkit.training.pseudo_labels import PLState
from cc2dkit.widgets import LandmarkPicker, PLTrajectoryView, pl_explorer

GRID = 64


class _Sample:
    def __init__(self, image):
        self.image = image


def _fake_data(n=3, n_lm=3, size_hw=(128, 256)):
    """GridImages-like: what pl_trajectory and the views read."""
    rng = np.random.default_rng(0)
    h, w = size_hw
    images = [rng.random((h, w)) for _ in range(n)]
    return SimpleNamespace(grid=GRID, sizes=np.array([size_hw] * n), ids=[f"img{i}" for i in range(n)],
                           original_landmarks=rng.uniform(0, 100, (n, n_lm, 2)),
                           dataset=[_Sample(im) for im in images])


def _fake_state(epochs=3):
    """PLs of landmarks 0 and 2 (columns 0, 1) on data rows 1 and 2; PL(e) = base + e * step."""
    base = np.array([[[10.0, 20.0], [30.0, 5.0]], [[1.0, 2.0], [3.0, 4.0]]])  # (N=2, K=2, 2) grid px
    step = np.array([[[1.0, 2.0], [-1.0, 0.5]], [[0.0, 1.0], [2.0, 0.0]]])
    st = PLState(base, [1, 2], [0, 2], ["L0", "L2"])
    for e in range(epochs + 1):
        st.history.append({"epoch": e, "pls": base + e * step})
    st.pls = base + epochs * step
    return st, base, step


def test_pl_trajectory_in_original_pixels():
    data, (st, base, step) = _fake_data(), _fake_state(3)
    traj = pl_trajectory(st, data, image_row=2, landmark_col=1)
    assert traj.shape == (4, 2)
    # grid 64 -> (H, W) = (128, 256): x = (gx + 0.5) * 4 - 0.5, y = (gy + 0.5) * 2 - 0.5
    gx = 3.0 + 2.0 * np.arange(4)
    gy = np.full(4, 4.0)
    assert np.allclose(traj[:, 0], (gx + 0.5) * 4 - 0.5) and np.allclose(traj[:, 1], (gy + 0.5) * 2 - 0.5)
    assert np.allclose(pl_trajectory(st, data, 2, "L2"), traj)
    assert np.allclose(traj[0], [13.5, 8.5])  # hand-computed: (3.5 * 4 - 0.5, 4.5 * 2 - 0.5)
    all_traj = pl_trajectories(st, data, [1, 2])
    assert all_traj.shape == (2, 4, 2, 2) and np.allclose(all_traj[1, :, 1], traj)
    with pytest.raises(IndexError, match="holds no PLs"):
        pl_trajectory(st, data, 0, 0)  # row 0 is the template: no PLs
    with pytest.raises(LookupError, match="out of range"):  # LandmarkNotFound, a KeyError
        pl_trajectory(st, data, 1, 2)
    with pytest.raises(KeyError, match="L1"):
        pl_trajectory(st, data, 1, "L1")
    with pytest.raises(ValueError, match="no history"):
        pl_trajectory(PLState(base, [1, 2], [0, 2], ["L0", "L2"]), data, 1, 0)


def test_plot_pl_trajectory_artists():
    traj = np.array([[10.0, 10.0], [20.0, 15.0], [30.0, 12.0]])
    fig = plot_pl_trajectory(np.zeros((50, 60)), traj, gt_xy=(31.0, 11.0), title="P1 on img1", zoom=5)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.lines}
    assert set(lines) == {PATH_LABEL, START_LABEL, END_LABEL, GT_LABEL}
    assert np.allclose(lines[PATH_LABEL].get_xydata(), traj)
    assert list(lines[START_LABEL].get_xdata()) == [10.0] and list(lines[END_LABEL].get_ydata()) == [12.0]
    assert list(lines[GT_LABEL].get_xdata()) == [31.0]
    assert ax.get_xlim() == (5.0, 36.0) and ax.get_ylim() == (20.0, 5.0)  # zoomed, y down
    assert ax.get_title() == "P1 on img1"
    fig = plot_pl_trajectory(np.zeros((50, 60)), traj)  # no ground truth
    assert GT_LABEL not in [ln.get_label() for ln in fig.axes[0].lines]
    with pytest.raises(ValueError, match="E\\+1, 2"):
        plot_pl_trajectory(np.zeros((50, 60)), np.zeros((3, 3)))


def test_plot_pl_history_and_gallery():
    rows = [{"epoch": e, "landmark": n, "landmark_index": i, "movement_grid": np.nan if e == 0 else 1.0 / e,
             "movement_mm": np.nan if e == 0 else 0.1 / e, "pl_error_mm": 10.0 - e - i}
            for e in range(3) for i, n in enumerate(["a", "b"])]
    fig = plot_pl_history(pd.DataFrame(rows))
    err_ax, mov_ax = fig.axes[:2]
    assert [ln.get_label() for ln in err_ax.lines] == ["a", "b"]
    assert list(err_ax.lines[1].get_ydata()) == [9.0, 8.0, 7.0]
    assert np.allclose(mov_ax.lines[0].get_ydata()[1:], [0.1, 0.05])
    with pytest.raises(ValueError, match="pl_error_mm"):
        plot_pl_history(pd.DataFrame(rows).drop(columns="pl_error_mm"))
    s = pl_summary(pd.DataFrame(rows))
    assert list(s.index) == ["a", "b"]
    assert list(s.loc["b"]) == [9.0, 7.0, 7.0, 0.05]
    assert list(s.columns) == ["initial_pl_error_mm", "best_pl_error_mm", "final_pl_error_mm", "final_movement_mm"]
    data, (st, _, _) = _fake_data(), _fake_state(2)
    fig = pl_trajectory_gallery(st, data, [1, 2], zoom=10)
    assert len(fig.axes) == 2
    paths = [ln for ln in fig.axes[1].lines if ln.get_label() in ("L0", "L2")]
    assert np.allclose(paths[1].get_xydata(), pl_trajectory(st, data, 2, 1))


def test_trajectory_view_follows_the_picker():
    data, (st, _, _) = _fake_data(), _fake_state(3)
    view = PLTrajectoryView.from_state(st, data, image_rows=[2, 1], zoom=4)
    picker = LandmarkPicker(st.landmark_names)
    picker.observe(view)
    assert np.allclose(view.paths[0].get_xydata(), pl_trajectory(st, data, 2, 0))
    picker.select("L2")
    for panel, row in enumerate([2, 1]):
        traj = pl_trajectory(st, data, row, 1)
        assert np.allclose(view.paths[panel].get_xydata(), traj)
        assert np.allclose(view.starts[panel].get_xydata(), traj[:1])
        assert np.allclose(view.ends[panel].get_xydata(), traj[-1:])
        assert np.allclose(view.truth_markers[panel].get_xydata(), data.original_landmarks[row, 2][None])
    assert view.title.get_text().startswith("L2:")
    assert view.updates == 2 and len(view.figure.axes) == 2  # one figure, updated in place
    picker.previous()
    assert np.allclose(view.paths[1].get_xydata(), pl_trajectory(st, data, 1, 0))
    with pytest.raises(ValueError, match="trajectories"):
        PLTrajectoryView([np.zeros((4, 4))], np.zeros((2, 3, 1, 2)), None, ["a"], ["t"])


def test_pl_explorer_on_a_tiny_sla_run(smoke_cfg):
    from cc2dkit.methods import run_method
    from cc2dkit.methods.context import prepare_context

    cfg = smoke_cfg.replace(**{"method.name": "sla", "method.landmarks": (1, 3), "train.epochs": 2,
                               "train.steps_per_epoch": 1, "eval.track_images": 2})
    ctx = prepare_context(cfg, None, progress=False)
    data = (ctx.train, ctx.test)
    result = run_method(cfg, data=data, progress=False)
    ex = pl_explorer(result, data, n_images=2)
    assert ex.picker.names == tuple(result.pl_state.landmark_names) == (ctx.train.landmark_names[1],
                                                                       ctx.train.landmark_names[3])
    ex.picker.next()  # second trained landmark = dataset landmark 3
    row = result.pl_state.image_indices[1]
    traj = pl_trajectory(result.pl_state, ctx.train, row, 1)
    assert traj.shape == (3, 2)  # initial PL + 2 epochs
    assert np.allclose(ex.trajectory_view.paths[1].get_xydata(), traj)
    assert np.allclose(ex.trajectory_view.truth_markers[1].get_xydata(), ctx.train.original_landmarks[row, 3][None])
    assert list(ex.predictions_view.pred_markers[0].get_xdata()) == [result.predictions[0, 3, 0]]
    assert list(ex.predictions_view.truth_markers[1].get_ydata()) == [ctx.test.original_landmarks[1, 3, 1]]
    # the final PL of the path is the state's current PL
    assert np.allclose(traj[-1], result.pl_state.original(ctx.train)[1, 1])
    # the maps view follows the picker: landmark 3's maps through model 1, its argmax = the prediction
    maps = ex.maps_view.maps
    assert maps.maps.shape[:2] == (5, 2) and maps.truth.shape == (2, 2)
    assert np.allclose(ex.maps_view.pred_marker.get_xydata(), maps.prediction[1][None])
    assert np.allclose(ex.maps_view.truth_marker.get_xydata(), ctx.test.landmarks[0, 3][None])
    assert np.allclose(ex.maps_view.images[-1].get_array(), maps.product[1])
    assert pl_explorer(result, data, n_images=2, maps_image=None).maps_view is None
    tab = ex.widget.children[1]  # the views as tabs under the picker: one on screen at a time
    assert ex.widget.children[0] is ex.picker.widget and tab.titles == ("similarity maps", "pseudo-label paths",
                                                                        "predictions")
    assert list(tab.children) == [ex.maps_view.output, ex.trajectory_view.output, ex.predictions_view.output]

"""The seesaw measures against values computed by hand on small synthetic error frames."""
import numpy as np
import pandas as pd
import pytest

from cc2dkit.analysis.seesaw import (change_correlation, error_changes, error_table, mean_off_diagonal,
                                     seesaw_comparison, seesaw_events, seesaw_summary)
from cc2dkit.viz.seesaw import (compare_change_correlations, compare_error_curves, plot_change_correlation,
                                plot_error_curves, plot_seesaw_events)

# test MRE (mm) per epoch; changes per transition (epochs 2, 3, 4):
#   A: -1, +0.5, -1.5     B: +1, -0.5, +1.5 (= -A)     C: 0, 0, 0     D: -0.5, +0.25, -0.75 (= A / 2)
ERRORS = {"A": [5.0, 4.0, 4.5, 3.0], "B": [5.0, 6.0, 5.5, 7.0], "C": [3.0, 3.0, 3.0, 3.0],
          "D": [4.0, 3.5, 3.75, 3.0]}


def _frame(errors=ERRORS, epochs=(1, 2, 3, 4), extra_nan_epoch=None):
    rows = []
    for e_i, e in enumerate(epochs):
        for k, (name, errs) in enumerate(errors.items()):
            rows.append({"epoch": e, "landmark": name, "landmark_index": k, "loss_pl": 0.1,
                         "test_mre_mm": errs[e_i], "seconds": 1.0})
    if extra_nan_epoch is not None:  # an epoch that was not evaluated (eval.track_every > 1)
        for k, name in enumerate(errors):
            rows.append({"epoch": extra_nan_epoch, "landmark": name, "landmark_index": k, "loss_pl": 0.1,
                         "test_mre_mm": np.nan, "seconds": 1.0})
    return pd.DataFrame(rows)


def test_error_changes_are_differences_between_consecutive_evaluations():
    ch = error_changes(_frame(extra_nan_epoch=5))  # epoch 5 has no errors: skipped
    assert list(ch.index) == [2, 3, 4] and list(ch.columns) == ["A", "B", "C", "D"]
    assert np.allclose(ch["A"], [-1.0, 0.5, -1.5])
    assert np.allclose(ch["B"], [1.0, -0.5, 1.5])
    assert np.allclose(ch["C"], 0.0)
    assert np.allclose(ch["D"], [-0.5, 0.25, -0.75])


def test_error_table_keeps_landmark_order_and_sorts_epochs():
    f = _frame().iloc[::-1]  # rows reversed: D first, epoch 4 first
    t = error_table(f)
    assert list(t.columns) == ["D", "C", "B", "A"] and list(t.index) == [1, 2, 3, 4]
    assert t.loc[4, "B"] == 7.0


def test_seesaw_events_count_strictly_beyond_the_threshold():
    ev = seesaw_events(_frame(), threshold_mm=0.3)
    assert list(ev["from_epoch"]) == [1, 2, 3] and list(ev["to_epoch"]) == [2, 3, 4]
    # 1->2: A, D improve by 1, 0.5 (> 0.3), B worsens by 1 | 2->3: B improves by 0.5, A worsens by 0.5,
    # D (+0.25) within the threshold | 3->4: A, D improve, B worsens
    assert list(ev["n_improved"]) == [2, 1, 2]
    assert list(ev["n_worsened"]) == [1, 1, 1]
    assert list(ev["seesaw"]) == [True, True, True]
    assert np.allclose(ev["best_gain_mm"], [1.0, 0.5, 1.5])
    assert np.allclose(ev["worst_loss_mm"], [1.0, 0.5, 1.5])
    assert np.allclose(ev["mean_change_mm"], [-0.5 / 4, 0.25 / 4, -0.75 / 4])
    ev1 = seesaw_events(_frame(), threshold_mm=1.0)  # a change of exactly 1.0 is not "more than 1.0"
    assert list(ev1["n_improved"]) == [0, 0, 1] and list(ev1["n_worsened"]) == [0, 0, 1]
    assert list(ev1["seesaw"]) == [False, False, True]


def test_no_seesaw_when_every_landmark_moves_the_same_way():
    f = _frame({"A": [5.0, 4.0, 2.0], "B": [6.0, 5.0, 4.5]}, epochs=(1, 2, 3))
    ev = seesaw_events(f, 0.0)
    assert list(ev["n_improved"]) == [2, 2] and list(ev["n_worsened"]) == [0, 0] and not ev["seesaw"].any()
    s = seesaw_summary(f, 0.0)
    assert s.loc["run", "seesaw_share"] == 0.0 and np.isnan(s.loc["run", "mean_worsened_in_seesaw"])
    # changes A (-1, -2), B (-1, -0.5): both always improve, yet their changes are anti-correlated
    assert s.loc["run", "mean_change_corr"] == pytest.approx(-1.0)
    two = _frame({"A": [5.0, 4.0], "B": [6.0, 7.0]}, epochs=(1, 2))  # 2 evaluations: no correlation
    assert np.isnan(seesaw_summary(two).loc["run", "mean_change_corr"])


def test_seesaw_summary_one_row():
    s = seesaw_summary(_frame(), threshold_mm=1.0, name="multi")
    assert list(s.index) == ["multi"] and len(s) == 1
    r = s.loc["multi"]
    assert r["landmarks"] == 4 and r["transitions"] == 3 and r["seesaw_events"] == 1
    assert r["seesaw_share"] == pytest.approx(1 / 3)
    assert r["mean_improved"] == pytest.approx(1 / 3) and r["mean_worsened"] == pytest.approx(1 / 3)
    assert r["mean_worsened_in_seesaw"] == 1.0
    assert r["final_mm"] == pytest.approx((3.0 + 7.0 + 3.0 + 3.0) / 4)
    assert r["gap_to_best_mm"] == pytest.approx((0 + 2.0 + 0 + 0) / 4)  # B ends 2 mm above its best (5)
    assert r["threshold_mm"] == 1.0
    assert r["mean_change_corr"] == pytest.approx(-1 / 3)  # see test_change_correlation
    s03 = seesaw_summary(_frame(), threshold_mm=0.3)
    assert s03.loc["run", "seesaw_share"] == 1.0 and s03.loc["run", "mean_improved"] == pytest.approx(5 / 3)


def test_change_correlation():
    c = change_correlation(_frame())
    assert list(c.index) == list(c.columns) == ["A", "B", "C", "D"]
    assert c.loc["A", "B"] == pytest.approx(-1.0) and c.loc["A", "D"] == pytest.approx(1.0)
    assert c.loc["B", "D"] == pytest.approx(-1.0) and c.loc["A", "A"] == pytest.approx(1.0)
    assert c["C"].isna().all() and c.loc["C"].isna().all()  # C never changes: undefined
    assert np.allclose(c.to_numpy(), c.to_numpy().T, equal_nan=True)
    assert mean_off_diagonal(c) == pytest.approx(-1 / 3)  # pairs AB, AD, BD: -1, +1, -1
    # a hand-computed non-degenerate value: x = (-1, 0.5, -1.5), y = (1, -1, 0.2)
    f = _frame({"X": [5.0, 4.0, 4.5, 3.0], "Y": [5.0, 6.0, 5.0, 5.2]})
    assert change_correlation(f).loc["X", "Y"] == pytest.approx(-1.6666667 / np.sqrt(2.1666667 * 2.0266667), abs=1e-6)


def test_clear_errors():
    with pytest.raises(ValueError, match="test_mre_mm"):
        error_changes(_frame().drop(columns="test_mre_mm"))
    with pytest.raises(ValueError, match="epoch"):
        seesaw_events(_frame().drop(columns="epoch"))
    with pytest.raises(ValueError, match="at least 2"):
        seesaw_summary(_frame(epochs=(1,), errors={"A": [1.0], "B": [2.0]}))
    with pytest.raises(ValueError, match="at least 2"):  # one evaluated epoch + one untracked one
        error_changes(_frame(epochs=(1,), errors={"A": [1.0]}, extra_nan_epoch=2))
    with pytest.raises(ValueError, match="at least 3"):
        change_correlation(_frame(epochs=(1, 2), errors={"A": [1.0, 2.0], "B": [2.0, 1.0]}))
    with pytest.raises(ValueError, match="one run"):
        error_changes(pd.concat([_frame(), _frame()]))
    with pytest.raises(ValueError, match="threshold"):
        seesaw_events(_frame(), -1.0)


def test_other_value_columns_and_sla_style_frames():
    # PLState.history_frame() has pl_error_mm (and epoch 0); SLA metrics have loss_pl like multi's
    f = _frame().rename(columns={"test_mre_mm": "pl_error_mm"})
    assert np.allclose(error_changes(f, value="pl_error_mm")["A"], [-1.0, 0.5, -1.5])
    with pytest.raises(ValueError, match="test_mre_mm"):
        error_changes(f)


def test_plots():
    f = _frame()
    fig = plot_error_curves(f, title="multi")
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["A", "B", "C", "D", "mean"]
    assert list(ax.lines[1].get_ydata()) == ERRORS["B"] and list(ax.lines[0].get_xdata()) == [1, 2, 3, 4]
    assert np.allclose(ax.lines[-1].get_ydata(), [4.25, 4.125, 4.1875, 4.0])
    c = change_correlation(f)
    fig = plot_change_correlation(c, title="corr")
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (4, 4) and img.mask[2].all() and img[0, 1] == pytest.approx(-1.0)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["A", "B", "C", "D"]
    with pytest.raises(ValueError, match="square"):
        plot_change_correlation(np.zeros((2, 3)))
    fig = plot_seesaw_events(seesaw_events(f, 1.0))
    heights = [p.get_height() for p in fig.axes[0].patches if hasattr(p, "get_height")]
    assert [0, 0, 1] == heights[-6:-3] and [0, 0, -1] == heights[-3:]


def test_comparison_of_runs():
    # SLA-style frame (loss_pl too): the same functions apply
    sla = _frame({"A": [5.0, 4.0, 3.5, 3.0], "B": [5.0, 4.5, 4.0, 3.9], "C": [3.0, 3.0, 3.0, 3.0],
                  "D": [4.0, 3.5, 3.2, 3.0]})
    cmp = seesaw_comparison({"multi": _frame(), "sla": sla}, threshold_mm=0.3)
    assert list(cmp.index) == ["multi", "sla"] and cmp.index.name == "run"
    assert cmp.loc["multi", "seesaw_share"] == 1.0 and cmp.loc["sla", "seesaw_share"] == 0.0
    assert cmp.loc["sla", "mean_worsened"] == 0.0
    fig = compare_error_curves({"multi": _frame(), "sla": sla})
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "sla"
    assert list(fig.axes[1].lines[0].get_ydata()) == [5.0, 4.0, 3.5, 3.0]
    fig = compare_change_correlations({"multi": _frame(), "sla": sla})
    assert fig.axes[0].get_title() == "multi: mean off-diagonal -0.33"
    with pytest.raises(ValueError, match="no runs"):
        seesaw_comparison({})

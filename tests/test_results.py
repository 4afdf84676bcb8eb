"""Results across run folders (cc2dkit.analysis.results): the paper's figures, collect_runs, Tables 1-3."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cc2dkit.backbone import FEATURE_INFO
from cc2dkit.config import preset
from cc2dkit.data.isbi import ISBI_LANDMARKS
from cc2dkit.metrics import per_landmark_table
from cc2dkit.analysis.results import (NOT_RECORDED, NOT_RUN, PAPER, TABLE1_ROWS, TABLE3_ROWS, budget_curve,
                                      compare_tables, gross_errors, table1, table2, table3)
from cc2dkit.analysis.runs import METRICS, collect_runs, finished_runs, read_run, run_labels
from cc2dkit.viz.results import plot_budget_curve, plot_landmark_comparison, plot_method_comparison

from .test_adapter import decoder_parameter_formula  # the closed form, an oracle

NAMES = ["A", "B", "C"]
RADII = (2.0, 2.5, 3.0, 4.0)


def write_run(folder, method: str, errors: np.ndarray, names=NAMES, epochs: int = 2, seconds=(1.5, 2.5), **overrides):
    """A run folder as run_method writes it: config.json, evaluation_test.csv, metrics.csv."""
    cfg = preset("smoke", **{"method.name": method, **overrides})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(cfg.to_json())
    per_landmark_table(errors, list(names), RADII).to_csv(folder / "evaluation_test.csv")
    rows = [{"epoch": e, "landmark": n, "landmark_index": i, "loss_pl": 1.0, "test_mre_mm": 2.0, "seconds": seconds[e - 1]}
            for e in range(1, epochs + 1) for i, n in enumerate(names)]
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    return cfg


def errs(mre: float, n_images: int = 4, n_lm: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.uniform(0.5, 1.5, size=(n_images, n_lm))
    return e * mre / e.mean()


def taps(cfg):
    return tuple(t.channels for t in FEATURE_INFO[cfg.backbone.arch])


@pytest.fixture
def runs(tmp_path):
    """Six runs: cc2d, sla, atd, adapter C_A 16 and 4, wide +16; multi left out, one label None."""
    write_run(tmp_path / "cc2d", "cc2d", errs(3.0))
    write_run(tmp_path / "sla", "sla", errs(2.5))
    write_run(tmp_path / "atd", "atd", errs(2.0, seed=1))
    write_run(tmp_path / "ad16", "adapter", errs(2.2, seed=2), **{"method.adapter_channels": 16})
    write_run(tmp_path / "ad4", "adapter", errs(2.4), **{"method.adapter_channels": 4})
    write_run(tmp_path / "wide", "wide", errs(2.8))
    return {"CC2D run": tmp_path / "cc2d", "sla run": tmp_path / "sla", "atd run": tmp_path / "atd",
            "adapter 16": tmp_path / "ad16", "adapter 4": tmp_path / "ad4", "wide16": tmp_path / "wide",
            "multi run": None}


# -- the paper's figures ---------------------------------------------------------------------

def test_paper_figures_are_only_the_known_ones():
    assert list(PAPER.index) == list(TABLE1_ROWS)
    known = {("CC2D", "MRE_mm"): 2.04, ("CC2D", "SDR_2.0mm"): 62.5, ("C-ATD", "MRE_mm"): 1.79,
             ("C-ATD", "SDR_2.0mm"): 72.0, ("C-Adapter", "MRE_mm"): 1.96, ("C-Adapter", "SDR_2.0mm"): 67.8}
    for row in PAPER.index:
        for m in METRICS:
            v = PAPER.loc[row, m]
            if (row, m) in known:
                assert v == known[(row, m)]
            else:
                assert math.isnan(v), (row, m)
        assert NOT_RECORDED in PAPER.loc[row, "note"]
    assert PAPER.loc["C-ATD", "models"] == 19 and PAPER.loc["C-Adapter", "models"] == 1


# -- collect_runs ----------------------------------------------------------------------------

def test_collect_runs_tidy_frame(runs):
    df = collect_runs(runs)
    assert list(df.columns[:11]) == ["run", "folder", "method", "adapter_channels", "extra_channels", "n_landmarks",
                                     "models", "trainable_params", "epochs", "seconds", "landmark"]
    assert set(METRICS) <= set(df.columns)
    assert "multi run" not in set(df["run"])  # None: not run
    assert len(df) == 6 * 4  # 3 landmarks + "all" per run
    allrows = df[df["landmark"] == "all"].set_index("run")
    assert allrows.loc["sla run", "MRE_mm"] == pytest.approx(2.5)
    assert allrows.loc["atd run", "MRE_mm"] == pytest.approx(2.0)
    # seconds: one value per epoch (repeated over landmarks in metrics.csv), summed
    assert allrows.loc["CC2D run", "seconds"] == pytest.approx(4.0)
    assert allrows.loc["CC2D run", "epochs"] == 2
    assert allrows.loc["sla run", "models"] == 3 and allrows.loc["adapter 16", "models"] == 1
    assert allrows.loc["adapter 16", "adapter_channels"] == 16 and pd.isna(allrows.loc["atd run", "adapter_channels"])
    assert allrows.loc["wide16", "extra_channels"] == 16  # the wide default when left at 0


def test_collect_runs_trainable_parameters(runs):
    allrows = collect_runs(runs).query("landmark == 'all'").set_index("run")
    cfg = preset("smoke")
    one = decoder_parameter_formula(cfg.net, taps(cfg), 3, 0)
    assert allrows.loc["CC2D run", "trainable_params"] == one
    assert allrows.loc["sla run", "trainable_params"] == 3 * one
    assert allrows.loc["adapter 16", "trainable_params"] == decoder_parameter_formula(cfg.net, taps(cfg), 3, 16)
    wide = cfg.replace(**{"net.extra_channels": 16}).net
    assert allrows.loc["wide16", "trainable_params"] == decoder_parameter_formula(wide, taps(cfg), 3, 0)
    assert allrows.loc["adapter 4", "trainable_params"] < allrows.loc["adapter 16", "trainable_params"]


def test_finished_runs_takes_the_evaluated_folders(tmp_path):
    write_run(tmp_path / "sla", "sla", errs(2.0))
    write_run(tmp_path / "atd", "atd", errs(2.0))
    (tmp_path / "atd" / "evaluation_test.csv").unlink()  # still training
    (tmp_path / "log.txt").write_text("not a run")
    assert finished_runs(tmp_path) == {"sla": tmp_path / "sla"}
    assert set(collect_runs(finished_runs(tmp_path))["run"]) == {"sla"}
    with pytest.raises(FileNotFoundError, match="no finished run"):
        finished_runs(tmp_path / "atd")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        finished_runs(tmp_path / "nowhere")


def test_runs_of_cc2dkit_0_1_are_read_from_evaluation_csv(tmp_path):
    write_run(tmp_path / "old", "sla", errs(2.0))
    (tmp_path / "old" / "evaluation_test.csv").rename(tmp_path / "old" / "evaluation.csv")
    assert finished_runs(tmp_path) == {"old": tmp_path / "old"}
    assert read_run(tmp_path / "old")[1].loc["all", "MRE_mm"] == pytest.approx(2.0)


def test_collect_runs_empty():
    df = collect_runs({"a": None})
    assert df.empty and "MRE_mm" in df.columns


@pytest.mark.parametrize("missing", ["config.json", "evaluation_test.csv", "metrics.csv"])
def test_missing_file_named(tmp_path, missing):
    write_run(tmp_path / "r", "sla", errs(2.0))
    (tmp_path / "r" / missing).unlink()
    with pytest.raises(FileNotFoundError) as info:
        collect_runs({"my run": tmp_path / "r"})
    assert missing in str(info.value) and str(tmp_path / "r") in str(info.value) and "my run" in str(info.value)


def test_missing_folder_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_run(tmp_path / "nowhere")


def test_bad_files_named(tmp_path):
    write_run(tmp_path / "r", "sla", errs(2.0))
    pd.DataFrame({"epoch": [1], "loss": [1.0]}).to_csv(tmp_path / "r" / "metrics.csv", index=False)
    with pytest.raises(ValueError, match=r"metrics\.csv.*seconds"):
        read_run(tmp_path / "r")
    write_run(tmp_path / "s", "sla", errs(2.0))
    per_landmark_table(errs(2.0), NAMES, RADII).drop(index="all").to_csv(tmp_path / "s" / "evaluation_test.csv")
    with pytest.raises(ValueError, match=r"evaluation_test\.csv"):
        read_run(tmp_path / "s")
    write_run(tmp_path / "t", "sla", errs(2.0))
    (tmp_path / "t" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json"):
        read_run(tmp_path / "t")


# -- Table 1 ---------------------------------------------------------------------------------

def test_table1_layout_and_missing_rows(runs):
    t = table1(runs)
    assert list(t.index) == list(TABLE1_ROWS)
    assert list(t.columns[:2]) == ["run", "models"]
    for m in METRICS:
        assert m in t.columns and f"paper {m}" in t.columns
    assert t.loc["multi", "run"] == NOT_RUN and t.loc["multi", METRICS].isna().all()
    assert NOT_RUN in t.loc["multi", "note"]
    assert t.loc["SLA", "run"] == "sla run" and t.loc["SLA", "MRE_mm"] == pytest.approx(2.5)
    assert t.loc["C-Adapter", "run"] == "adapter 16"  # C_A 16, not the C_A 4 run
    assert t.loc["C-ATD", "paper MRE_mm"] == 1.79 and t.loc["CC2D", "paper SDR_2.0mm"] == 62.5
    assert math.isnan(t.loc["SLA", "paper MRE_mm"]) and math.isnan(t.loc["CC2D", "paper SD_mm"])
    assert t.loc["SLA", "models"] == 3


def test_table1_labels_and_empty(runs):
    t = table1(runs, labels={"C-Adapter": "adapter 4"})
    assert t.loc["C-Adapter", "run"] == "adapter 4" and t.loc["C-Adapter", "MRE_mm"] == pytest.approx(2.4)
    with pytest.raises(KeyError, match="Table 9"):
        table1(runs, labels={"Table 9": "x"})
    empty = table1({})
    assert (empty["run"] == NOT_RUN).all() and empty[list(METRICS)].isna().all().all()
    assert empty.loc["C-ATD", "paper MRE_mm"] == 1.79


# -- Table 2 ---------------------------------------------------------------------------------

def test_table2_per_landmark(runs):
    t = table2(runs)
    assert list(t.index) == NAMES + ["all"]
    data = collect_runs(runs)
    atd = data[data["run"] == "atd run"].set_index("landmark")["MRE_mm"]
    ad = data[data["run"] == "adapter 16"].set_index("landmark")["MRE_mm"]
    np.testing.assert_allclose(t["C-ATD MRE_mm"], atd.loc[t.index])
    np.testing.assert_allclose(t["C-Adapter - C-ATD MRE_mm"], (ad - atd).loc[t.index])
    assert t["paper C-ATD MRE_mm"].iloc[:-1].isna().all() and t.loc["all", "paper C-ATD MRE_mm"] == 1.79
    assert t.loc["all", "paper C-Adapter MRE_mm"] == 1.96
    assert NOT_RECORDED in t.loc["A", "note"]


def test_table2_missing_runs(runs):
    runs = {k: v for k, v in runs.items() if k != "adapter 16"}
    t = table2(runs)
    assert t["C-Adapter MRE_mm"].isna().all() and t["C-ATD MRE_mm"].notna().all()
    assert all("C-Adapter: not run" in n for n in t["note"])
    none = table2({})
    assert list(none.index) == list(ISBI_LANDMARKS) + ["all"] and len(none) == 20
    assert none[["C-ATD MRE_mm", "C-Adapter MRE_mm"]].isna().all().all()


# -- Table 3 ---------------------------------------------------------------------------------

def test_table3_sweep(runs, tmp_path):
    write_run(tmp_path / "wideK", "wide", errs(2.6), **{"net.extra_channels": 48})  # 16 x K, K = 3
    runs = {**runs, "wide 16xK": tmp_path / "wideK"}
    t = table3(runs)
    assert list(t.index) == list(TABLE3_ROWS)
    assert list(t["C_A"].iloc[:5]) == [0, 4, 8, 16, 32]
    assert t.loc["C_A=16", "run"] == "adapter 16" and t.loc["C_A=4", "run"] == "adapter 4"
    for row in ("C_A=0", "C_A=8", "C_A=32"):
        assert t.loc[row, "run"] == NOT_RUN and t.loc[row, ["MRE_mm", "trainable_params"]].isna().all()
        assert NOT_RUN in t.loc[row, "note"]
    assert t.loc["wide +16", "run"] == "wide16" and t.loc["wide +16", "extra_channels"] == 16
    assert t.loc["wide +16xK", "run"] == "wide 16xK" and t.loc["wide +16xK", "extra_channels"] == 48
    assert t.loc["C_A=4", "trainable_params"] < t.loc["C_A=16", "trainable_params"]
    assert t.loc["wide +16", "trainable_params"] < t.loc["wide +16xK", "trainable_params"]
    assert t["paper MRE_mm"].isna().all()


# -- side by side and figures ------------------------------------------------------------------

def test_compare_tables():
    a = per_landmark_table(errs(2.0), NAMES, RADII)
    b = per_landmark_table(errs(3.0, n_lm=2, seed=3), NAMES[:2], RADII)
    t = compare_tables({"SLA": a, "C-ATD": b})
    assert list(t.index) == NAMES + ["all"]
    assert list(t.columns) == ["SLA MRE_mm", "SLA SDR_2.0mm", "C-ATD MRE_mm", "C-ATD SDR_2.0mm", "C-ATD - SLA MRE_mm"]
    assert math.isnan(t.loc["C", "C-ATD MRE_mm"])
    assert t.loc["all", "C-ATD - SLA MRE_mm"] == pytest.approx(3.0 - 2.0)
    with pytest.raises(ValueError, match="lacks"):
        compare_tables({"x": a[["MRE_mm"]]})


def test_plots(runs):
    t1 = table1(runs)
    fig = plot_method_comparison(t1)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    texts = [x.get_text() for x in fig.axes[0].texts]
    assert texts.count(NOT_RUN) == 1  # multi
    paper = [l for l in fig.axes[0].lines if l.get_label() == "paper"]
    assert len(paper) == 1
    np.testing.assert_allclose(paper[0].get_ydata(), t1["paper MRE_mm"].to_numpy(float))
    assert len(plot_method_comparison(table3(runs), metrics=("MRE_mm",)).axes) == 1
    fig2 = plot_landmark_comparison(table2(runs))
    assert len(fig2.axes[0].patches) == 2 * 3
    with pytest.raises(ValueError, match="lacks"):
        plot_method_comparison(t1[["run"]])


def test_budget_curve_orders_runs_by_training_minutes(tmp_path):
    write_run(tmp_path / "long", "adapter", errs(2.0), epochs=3, seconds=(60.0, 60.0, 120.0))
    write_run(tmp_path / "short", "adapter", errs(2.6), epochs=1, seconds=(90.0,))
    write_run(tmp_path / "other", "cc2d", errs(3.0), epochs=1, seconds=(10.0,))
    runs = {"long": tmp_path / "long", "short": tmp_path / "short", "other": tmp_path / "other"}
    curve = budget_curve(runs, method="adapter")
    assert list(curve["run"]) == ["short", "long"] and list(curve["epochs"]) == [1, 3]
    np.testing.assert_allclose(curve["minutes"], [1.5, 4.0])
    np.testing.assert_allclose(curve["MRE_mm"], [2.6, 2.0])
    assert curve[["median_mm", "> 10 mm"]].isna().all().all()  # no errors_test.csv: unknown, not zero
    errors = pd.DataFrame({"image": ["a", "a", "a", "b", "b"], "landmark": ["x", "y", "z", "x", "y"],
                           "error_mm": [1.0, 12.0, 2.0, 3.0, 10.0]})  # 10.0 is not over 10
    errors.to_csv(tmp_path / "long" / "errors_test.csv", index=False)
    long = budget_curve(runs, method="adapter").set_index("run").loc["long"]
    assert long["median_mm"] == 3.0 and long["> 10 mm"] == 1
    assert list(budget_curve(runs)["run"]) == ["other", "short", "long"]
    with pytest.raises(ValueError, match="no finished run of method 'sla'"):
        budget_curve(runs, method="sla")
    fig = plot_budget_curve(curve, targets={"MRE_mm": 1.9})
    assert len(fig.axes) == 3
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), [1.5, 4.0])
    assert [t.get_text() for t in fig.axes[0].texts] == ["short", "long"]
    assert any(l.get_label() == "target 1.9" for l in fig.axes[0].lines)
    with pytest.raises(ValueError, match="lacks"):
        plot_budget_curve(curve[["run"]])


def test_gross_errors_counts_misses_per_run_and_those_every_run_shares(tmp_path):
    def errors(folder, images, values):
        folder.mkdir()
        pd.DataFrame({"image": images, "landmark": ["a", "b", "a", "b"], "error_mm": values}).to_csv(
            folder / "errors_test.csv", index=False)

    errors(tmp_path / "one", ["151", "151", "152", "152"], [12.0, 11.0, 1.0, 10.0])
    # another kit version named the images by their path: the same images
    errors(tmp_path / "two", ["Raw/151.jpg", "Raw/151.jpg", "Raw/152.jpg", "Raw/152.jpg"], [15.0, 2.0, 30.0, 1.0])
    t = gross_errors({"one": tmp_path / "one", "two": tmp_path / "two"})
    assert t.loc["a"].tolist() == [1, 2, 1] and t.loc["b"].tolist() == [1, 0, 0]  # 10.0 is not over 10
    assert t.loc["all"].tolist() == [2, 2, 1] and list(t.columns) == ["one", "two", "in every run"]
    assert gross_errors({"one": tmp_path / "one"}, threshold=11.5).loc["all"].tolist() == [1, 1]
    with pytest.raises(FileNotFoundError, match="errors_test.csv"):
        gross_errors({"none": tmp_path})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gross_errors({"none": tmp_path / "nowhere"})


def test_run_labels_name_runs_apart_by_their_parent_only_where_names_repeat(tmp_path):
    labels = run_labels([tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "e10"])
    assert list(labels) == ["a/run", "b/run", "e10"] and labels["a/run"] == tmp_path / "a" / "run"
    with pytest.raises(ValueError, match="given twice"):
        run_labels([tmp_path / "e10", str(tmp_path / "e10")])


def test_pl_outcomes_lays_pl_runs_side_by_side(tmp_path):
    from cc2dkit.analysis import pl_outcomes

    def history(folder, errors, capped=None):  # two epochs (0 and 1) of landmarks A, B
        rows = [{"epoch": e, "landmark": n, "landmark_index": i, "movement_grid": 1.0, "movement_mm": 1.0,
                 "pl_error_mm": errors[i] * (3 if e == 0 else 1)} for e in (0, 1) for i, n in enumerate("AB")]
        frame = pd.DataFrame(rows)
        if capped is not None:
            frame["pl_capped"] = [0, 0] + capped
        frame.to_csv(folder / "pl_history.csv", index=False)

    e = errs(2.0, n_lm=2)
    write_run(tmp_path / "free", "atd", e, names=["A", "B"])
    write_run(tmp_path / "cap", "atd", e * 1.5, names=["A", "B"])
    history(tmp_path / "free", [1.0, 3.0])  # written before the cap existed: no pl_capped column
    history(tmp_path / "cap", [2.0, 4.0], capped=[5, 1])
    t = pl_outcomes({"free": tmp_path / "free", "cap": tmp_path / "cap"})
    assert list(t.index) == ["A", "B", "all"]
    assert list(t.columns) == [(q, r) for q in ("test MRE", "final PL error", "PLs capped") for r in ("free", "cap")]
    np.testing.assert_allclose(t[("test MRE", "free")], [e[:, 0].mean(), e[:, 1].mean(), e.mean()])
    np.testing.assert_allclose(t[("test MRE", "cap")], 1.5 * t[("test MRE", "free")])
    assert t[("final PL error", "cap")].tolist() == [2.0, 4.0, 3.0]  # the last epoch's, not the random start's
    assert t[("PLs capped", "cap")].tolist() == [5, 1, 6] and t[("PLs capped", "free")].tolist() == [0, 0, 0]
    write_run(tmp_path / "one", "adapter", e[:, :1], names=["A"])  # another set of landmarks
    history(tmp_path / "one", [1.0, 1.0])
    pd.read_csv(tmp_path / "one" / "pl_history.csv").query("landmark == 'A'").to_csv(
        tmp_path / "one" / "pl_history.csv", index=False)
    mixed = pl_outcomes({"one": tmp_path / "one", "cap": tmp_path / "cap"})
    assert list(mixed.index) == ["A", "B", "all"]  # "all" stays last
    assert pd.isna(mixed.loc["B", ("test MRE", "one")]) and mixed.loc["B", ("PLs capped", "cap")] == 1
    write_run(tmp_path / "plain", "cc2d", e, names=["A", "B"])
    with pytest.raises(FileNotFoundError, match="pl_history.csv"):
        pl_outcomes({"plain": tmp_path / "plain"})
    with pytest.raises(ValueError, match="at least one"):
        pl_outcomes({})

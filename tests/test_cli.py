import json

import numpy as np
import pandas as pd
import pytest

from cc2dkit.__main__ import main


def test_run_then_predict_and_evaluate_from_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--preset", "smoke", "--out", str(out), "--no-progress", "--set", "train.epochs=1",
            "--set", "train.steps_per_epoch=2"]
    assert main(["run", *args]) == 0
    printed = capsys.readouterr().out
    assert "MRE_mm" in printed and "all" in printed
    for name in ("config.json", "checkpoint.pt", "history.csv", "predictions.csv", "evaluation.csv",
                 "evaluation.json", "errors.csv", "predictions.png"):
        assert (out / name).exists(), name
    summary = json.loads((out / "evaluation.json").read_text())["summary"]
    table = pd.read_csv(out / "evaluation.csv", index_col=0)
    assert table.loc["all", "MRE_mm"] == pytest.approx(summary["MRE_mm"])
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds.columns) == ["image", "landmark", "x", "y"] and len(preds) == 6 * 5
    # predict / evaluate reuse the run folder's config.json and checkpoint
    (out / "predictions.csv").unlink()
    assert main(["predict", "--run", str(out), "--no-progress"]) == 0
    assert pd.read_csv(out / "predictions.csv").equals(preds)
    assert main(["evaluate", "--run", str(out), "--no-progress"]) == 0


def test_bad_set_and_unknown_template(tmp_path):
    with pytest.raises(SystemExit):
        main(["show-config", "--set", "train.epochs"])
    with pytest.raises(KeyError, match="nope"):
        main(["train", "--preset", "smoke", "--out", str(tmp_path), "--set", "data.template=nope", "--no-progress"])


def test_train_method_writes_run_folder_and_resumes(tmp_path, capsys):
    out = tmp_path / "atd"
    args = ["--preset", "smoke", "--out", str(out), "--no-progress", "--method", "atd",
            "--set", "train.steps_per_epoch=1", "--set", "method.atd_copies=4", "--set", "method.landmarks=[1,3]"]
    assert main(["train", *args, "--set", "train.epochs=1"]) == 0
    assert "MRE_mm" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["method"]["name"] == "atd"
    for name in ("metrics.csv", "pl_history.csv", "predictions.csv", "evaluation.csv", "sla_set.pt"):
        assert (out / name).exists(), name
    # predict / evaluate rebuild the SLA set from the run folder and give the run's own numbers
    assert main(["evaluate", "--run", str(out), "--no-progress"]) == 0
    again = pd.read_csv(out / "evaluation_test.csv", index_col=0)
    assert np.allclose(again.values, pd.read_csv(out / "evaluation.csv", index_col=0).values)
    multi = tmp_path / "multi"
    margs = ["--preset", "smoke", "--out", str(multi), "--no-progress", "--method", "multi",
             "--set", "train.steps_per_epoch=1"]
    assert main(["train", *margs, "--set", "train.epochs=1"]) == 0
    assert main(["train", *margs, "--set", "train.epochs=2", "--resume"]) == 0
    assert sorted(set(pd.read_csv(multi / "metrics.csv")["epoch"])) == [1, 2]
    assert main(["predict", "--run", str(multi), "--no-progress"]) == 0
    assert pd.read_csv(multi / "predictions_test.csv").equals(pd.read_csv(multi / "predictions.csv"))

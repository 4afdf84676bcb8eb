import json

import numpy as np
import pandas as pd
import pytest

from cc2dkit.cli import main


def test_train_then_predict_and_evaluate_from_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--preset", "smoke", "--out", str(out), "--no-progress", "--set", "train.epochs=1",
            "--set", "train.steps_per_epoch=2"]
    assert main(["run", *args]) == 0
    printed = capsys.readouterr().out
    assert "MRE_mm" in printed and "all" in printed
    for name in ("config.json", "checkpoint.pt", "model.pt", "metrics.csv", "predictions_test.csv",
                 "evaluation_test.csv", "errors_test.csv", "predictions_test.png"):
        assert (out / name).exists(), name
    table = pd.read_csv(out / "evaluation_test.csv", index_col=0)
    errors = pd.read_csv(out / "errors_test.csv")
    assert table.loc["all", "MRE_mm"] == pytest.approx(errors["error_mm"].mean())
    preds = pd.read_csv(out / "predictions_test.csv")
    assert list(preds.columns) == ["image", "landmark", "x", "y"] and len(preds) == 6 * 5
    # predict / evaluate reuse the run folder's config.json and model.pt
    (out / "predictions_test.csv").unlink()
    assert main(["predict", "--run", str(out), "--no-progress"]) == 0
    assert pd.read_csv(out / "predictions_test.csv").equals(preds)
    assert main(["evaluate", "--run", str(out), "--no-progress"]) == 0
    assert pd.read_csv(out / "evaluation_test.csv", index_col=0).equals(table)
    # another split's results go to their own files
    before = {f.name: f.read_bytes() for f in out.glob("*_test.*")}
    assert main(["evaluate", "--run", str(out), "--split", "train", "--no-progress"]) == 0
    assert (out / "evaluation_train.csv").exists() and (out / "predictions_train.csv").exists()
    # the training split is its unlabelled images: the template (train_000, landmarks given) is not scored
    scored = pd.read_csv(out / "errors_train.csv")
    assert scored.image.nunique() == 11 and not scored.image.str.contains("train_000").any()
    assert pd.read_csv(out / "predictions_train.csv").image.nunique() == 11
    train_table = pd.read_csv(out / "evaluation_train.csv", index_col=0)
    assert train_table.loc["all", "MRE_mm"] == pytest.approx(scored["error_mm"].mean())
    assert {f.name: f.read_bytes() for f in out.glob("*_test.*")} == before


def test_bad_set_and_unknown_template(tmp_path, capsys):
    assert main(["show-config", "--set", "train.epochs"]) == 2  # usage (more in test_bad_inputs.py)
    assert main(["train", "--preset", "smoke", "--out", str(tmp_path), "--set", "data.template=nope",
                 "--no-progress"]) == 1
    assert "image id 'nope' is not in this dataset" in capsys.readouterr().err


def test_train_method_writes_run_folder_and_resumes(tmp_path, capsys):
    out = tmp_path / "atd"
    args = ["--preset", "smoke", "--out", str(out), "--no-progress", "--method", "atd",
            "--set", "train.steps_per_epoch=1", "--set", "method.atd_copies=4", "--set", "method.landmarks=[1,3]"]
    assert main(["train", *args, "--set", "train.epochs=1"]) == 0
    assert "MRE_mm" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["method"]["name"] == "atd"
    for name in ("metrics.csv", "pl_history.csv", "predictions_test.csv", "evaluation_test.csv", "model.pt"):
        assert (out / name).exists(), name
    # evaluate rebuilds the K models from the run folder and gives the run's own numbers
    trained = pd.read_csv(out / "evaluation_test.csv", index_col=0)
    (out / "evaluation_test.csv").unlink()
    assert main(["evaluate", "--run", str(out), "--no-progress"]) == 0
    assert np.allclose(pd.read_csv(out / "evaluation_test.csv", index_col=0).values, trained.values)
    multi = tmp_path / "multi"
    margs = ["--preset", "smoke", "--out", str(multi), "--no-progress", "--method", "multi",
             "--set", "train.steps_per_epoch=1"]
    assert main(["train", *margs, "--set", "train.epochs=1"]) == 0
    assert main(["train", *margs, "--set", "train.epochs=2", "--resume"]) == 0
    assert sorted(set(pd.read_csv(multi / "metrics.csv")["epoch"])) == [1, 2]
    trained = pd.read_csv(multi / "predictions_test.csv")
    assert main(["predict", "--run", str(multi), "--no-progress"]) == 0
    assert pd.read_csv(multi / "predictions_test.csv").equals(trained)

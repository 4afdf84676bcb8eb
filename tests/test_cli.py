import json

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

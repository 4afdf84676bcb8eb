"""benchmarks/ensemble_check.py: runs' coarse maps joined into one cascade product, refined or not."""
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import ensemble_check  # noqa: E402
from cc2dkit.methods import load_predictor, run_method  # noqa: E402

from .conftest import phantom_grids, tiny_cfg  # noqa: E402


def test_an_ensemble_multiplies_its_members_maps_and_a_run_twice_answers_as_alone(tmp_path, monkeypatch, capsys):
    cfg = tiny_cfg(**{"train.epochs": 1, "method.name": "multi", "refine.enabled": True, "refine.scale": 2,
                      "refine.crop": 64, "refine.steps_per_epoch": 2})
    data = phantom_grids(cfg)
    run_method(cfg, tmp_path / "a", data, progress=False)
    run_method(cfg.replace(**{"train.epochs": 2}), tmp_path / "b", data, progress=False)  # the same phantom
    shutil.copytree(tmp_path / "a", tmp_path / "a_again")
    a, b = (load_predictor(tmp_path / n).coarse_stage for n in ("a", "b"))
    images, keys = data[1].images[:2], data[1].keys[:2]
    both = ensemble_check.Ensemble([a, b])
    joined = both.matcher()(images, keys)
    assert joined.shape[0] == 2 * len(a.strides) and both.strides == a.strides + b.strides
    torch.testing.assert_close(joined, torch.cat([a.matcher()(images, keys), b.matcher()(images, keys)]))
    assert not np.array_equal(both.predict_grid(data[1]), a.predict_grid(data[1]))
    # the same model twice squares its product: the argmax stays where it was alone
    np.testing.assert_array_equal(ensemble_check.Ensemble([a, a]).predict_grid(data[1]), a.predict_grid(data[1]))

    def table(*argv):
        monkeypatch.setattr(sys, "argv", ["ensemble_check.py", *argv])
        ensemble_check.main()
        return capsys.readouterr().out

    out = table(str(tmp_path / "a"), str(tmp_path / "a_again"))  # coarse answers
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:5]}
    assert set(rows) == {"a", "a_again", "ensemble"} and rows["a"] == rows["ensemble"] == rows["a_again"]
    out = table(str(tmp_path / "a"), str(tmp_path / "b"), "--refine", "--split", "train")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:5]}
    assert "(train)" in out and set(rows) == {"a", "b", "ensemble"} and rows["a"] != rows["b"]

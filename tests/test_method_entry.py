"""run_method dispatch, the wide default, and resumable method runs."""
import numpy as np
import pytest

from cc2dkit.config import preset
from cc2dkit.methods import METHODS, method_config, run_method
from cc2dkit.methods.runfolder import CHECKPOINT
from cc2dkit.network.accounting import trainable_parameter_count
from cc2dkit.network import CC2D

from .conftest import phantom_grids, tiny_cfg

TINY = {"data.phantom_train": 5, "train.epochs": 2, "method.landmarks": (0, 2)}


@pytest.fixture(scope="module")
def cfg():
    return tiny_cfg(**TINY)


@pytest.fixture(scope="module")
def data(cfg):
    return phantom_grids(cfg)


def test_unknown_method_is_named(cfg):
    with pytest.raises(ValueError, match="'nope'"):
        method_config(cfg.replace(**{"method.name": "nope"}))


def test_wide_defaults_to_16_extra_channels(cfg):
    assert method_config(cfg.replace(**{"method.name": "wide"})).net.extra_channels == 16
    assert method_config(cfg.replace(**{"method.name": "wide", "net.extra_channels": 304})).net.extra_channels == 304
    assert method_config(cfg.replace(**{"method.name": "multi"})).net.extra_channels == 0
    wide = method_config(cfg.replace(**{"method.name": "wide"}))
    assert trainable_parameter_count(CC2D(wide.net, wide.backbone)) > trainable_parameter_count(CC2D(cfg.net, cfg.backbone))


@pytest.mark.parametrize("name", METHODS)
def test_every_method_writes_its_run_folder(cfg, data, tmp_path, name):
    c = cfg.replace(**{"method.name": name, "train.epochs": 1})
    result = run_method(c, tmp_path, data, progress=False)
    for f in ("config.json", "metrics.csv", "predictions_test.csv", "evaluation_test.csv", "model.pt"):
        assert (tmp_path / f).exists(), f
    assert (tmp_path / "pl_history.csv").exists() == (name != "cc2d")
    assert list(result.table.index) == [data[0].landmark_names[0], data[0].landmark_names[2], "all"]
    assert result.metrics["test_mre_mm"].notna().all()


@pytest.mark.parametrize("name", ["cc2d", "multi", "adapter", "sla", "atd", "atd-batched"])
def test_resumed_run_equals_uninterrupted_run(cfg, data, tmp_path, name, one_thread):
    name, _, batched = name.partition("-")
    # one thread: with two, a CPU conv's reduction order may change from run to run (1e-7 apart)
    c = cfg.replace(**{"method.name": name, "train.epochs": 3, "method.batched": bool(batched) or None,
                       "num_threads": 1})
    full = run_method(c, tmp_path / "full", data, progress=False)
    run_method(c.replace(**{"train.epochs": 2}), tmp_path / "cut", data, progress=False)
    assert (tmp_path / "cut" / CHECKPOINT).exists()
    resumed = run_method(c, tmp_path / "cut", data, progress=False, resume=True)
    assert np.array_equal(full.predictions, resumed.predictions, equal_nan=True)
    timing = ["seconds", "train_seconds"]
    a, b = full.metrics.drop(columns=timing), resumed.metrics.drop(columns=timing)
    assert a[["epoch", "landmark"]].equals(b[["epoch", "landmark"]])
    # the feature cache computes each image alone: a refilled cache holds the same bits, and the
    # resumed run's losses are the uninterrupted run's, exactly
    assert np.array_equal(a.select_dtypes("number").to_numpy(), b.select_dtypes("number").to_numpy(), equal_nan=True)
    if full.pl_state is not None:
        for a, b in zip(full.pl_state.history, resumed.pl_state.history, strict=True):
            assert np.array_equal(a["pls"], b["pls"])


def test_resume_refuses_another_sla_layout(cfg, data, tmp_path):
    c = cfg.replace(**{"method.name": "sla", "train.epochs": 2, "method.batched": False})
    run_method(c.replace(**{"train.epochs": 1}), tmp_path, data, progress=False)
    with pytest.raises(ValueError, match="method.batched"):
        run_method(c.replace(**{"method.batched": True}), tmp_path, data, progress=False, resume=True)


def test_resume_without_state_names_the_folder(cfg, data, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        run_method(cfg.replace(**{"method.name": "multi"}), tmp_path, data, progress=False, resume=True)


def test_landmarks_by_name_or_index_with_clear_errors():
    from cc2dkit.data.landmarks import resolve_landmarks
    names = ["Sella", "Nasion", "Orbitale"]
    assert resolve_landmarks(None, names) == [0, 1, 2]
    assert resolve_landmarks(("nasion", 2, "0"), names) == [1, 2, 0]
    with pytest.raises(ValueError, match="'Pogonion'"):
        resolve_landmarks(("Pogonion",), names)
    with pytest.raises(ValueError, match="out of range"):
        resolve_landmarks((3,), names)
    with pytest.raises(ValueError, match="distinct"):
        resolve_landmarks((1, "Nasion"), names)
    cfg = preset("smoke").replace(**{"method.landmarks": "Sella,2"})
    assert cfg.method.landmarks == ("Sella", 2)


@pytest.mark.parametrize("name", ["adapter", "wide", "sla"])
def test_load_predictor_reproduces_the_run(cfg, data, tmp_path, name):
    from cc2dkit.methods import load_predictor
    result = run_method(cfg.replace(**{"method.name": name, "train.epochs": 1}), tmp_path, data, progress=False)
    again = load_predictor(tmp_path).predict(data[1])
    assert np.array_equal(again, result.predictions, equal_nan=True)

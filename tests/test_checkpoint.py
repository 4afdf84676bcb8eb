"""The run folder's files: the trained model, resumable checkpoints, checked loads."""
import numpy as np
import pytest
import torch

from cc2dkit.inference import Predictor
from cc2dkit.methods import load_predictor, run_method
from cc2dkit.methods.checkpoint import load_checkpoint
from cc2dkit.inference.shape import ShapeSettings
from cc2dkit.methods.runfolder import CHECKPOINT, CHECKPOINT_FORMAT, MODEL, load_saved, save_atomic

from .conftest import phantom_grids, tiny_cfg


def test_model_file_gives_identical_predictions_without_the_training_data(tmp_path):
    cfg = tiny_cfg(**{"train.epochs": 1, "train.steps_per_epoch": 2})
    data = phantom_grids(cfg)
    result = run_method(cfg, tmp_path, data, progress=False)
    state = torch.load(tmp_path / MODEL, weights_only=False)
    assert not any(k.startswith("backbone") for sd in state["models"] for k in sd)
    assert state["config"] == cfg.to_dict() and state["epochs"] == 1
    loaded = load_predictor(tmp_path)  # the template comes from model.pt
    assert np.array_equal(loaded.predict(data[1]), result.predictions, equal_nan=True)
    assert torch.equal(loaded.template.image, result.predictor.template.image)


@pytest.mark.parametrize("cache", [False, True])
def test_resume_continues_exactly(tmp_path, cache, one_thread):
    cfg = tiny_cfg(**{"train.epochs": 2, "train.steps_per_epoch": 2, "backbone.cache_features": cache, "num_threads": 1})
    data = phantom_grids(cfg)
    straight = run_method(cfg, tmp_path / "a", data, progress=False)
    run_method(cfg.replace(**{"train.epochs": 1}), tmp_path / "b", data, progress=False)
    assert load_checkpoint(tmp_path / "b")["epoch"] == 1
    resumed = run_method(cfg, tmp_path / "b", data, progress=False, resume=True)
    assert list(resumed.metrics["epoch"].unique()) == [1, 2]
    # weights, optimizer and every generator restored; the feature cache computes each image alone,
    # so a refilled cache holds the same bits: the resumed run is the straight run, bit for bit
    assert resumed.metrics["loss_ssl"].iloc[-1] == straight.metrics["loss_ssl"].iloc[-1]
    for a, b in zip(straight.predictor.model.trainable_parameters(), resumed.predictor.model.trainable_parameters()):
        assert torch.equal(a, b)


def test_saved_files_give_errors_naming_the_file(tmp_path):
    path = save_atomic({"format": CHECKPOINT_FORMAT, "x": 1}, tmp_path / "ok.pt")
    assert load_saved(path, CHECKPOINT_FORMAT, "cc2dkit checkpoint")["x"] == 1 and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_saved(tmp_path / "missing.pt", CHECKPOINT_FORMAT, "cc2dkit checkpoint")
    torch.save({"format": "something-else"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="foreign.pt is not a cc2dkit checkpoint.*'something-else'"):
        load_saved(tmp_path / "foreign.pt", CHECKPOINT_FORMAT, "cc2dkit checkpoint")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:20])  # a truncated save
    with pytest.raises(ValueError, match="cannot read .*cut.pt"):
        load_saved(tmp_path / "cut.pt", CHECKPOINT_FORMAT, "cc2dkit checkpoint")
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(FileNotFoundError, match=f"no {CHECKPOINT} in"):
        load_checkpoint(run)
    torch.save({"format": "cc2dkit-method-state-1"}, run / "method_state.pt")
    with pytest.raises(ValueError, match="method_state.pt was saved by cc2dkit 0.1"):
        load_checkpoint(run)
    torch.save({"format": "cc2dkit-checkpoint-1"}, run / CHECKPOINT)
    with pytest.raises(ValueError, match="cannot resume .*format 'cc2dkit-checkpoint-1'"):
        load_checkpoint(run)
    (run / "config.json").write_text(tiny_cfg().to_json())
    (run / CHECKPOINT).unlink()
    with pytest.raises(FileNotFoundError, match=f"no {MODEL} in .*has not finished"):
        load_predictor(run)


def test_a_save_killed_mid_write_leaves_nothing_behind_after_the_next(tmp_path):
    (tmp_path / "checkpoint.pt.tmp").write_bytes(b"")  # what a kill during torch.save leaves
    save_atomic({"format": CHECKPOINT_FORMAT}, tmp_path / "checkpoint.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_resume_keeps_the_precision_the_run_trained_in(tmp_path):
    """train.amp may change on resume only in spelling: "auto" resolves by device, and a run moved to
    another machine (or saved before "auto" meant bf16 on a CPU) must not switch precision silently."""
    from cc2dkit.runtime import native_bf16
    cfg = tiny_cfg(**{"train.epochs": 1, "train.steps_per_epoch": 1, "train.amp": "off"})
    data = phantom_grids(cfg)
    run_method(cfg, tmp_path, data, progress=False)
    assert load_checkpoint(tmp_path)["train_bf16"] is False
    longer = cfg.replace(**{"train.epochs": 2})
    with pytest.raises(ValueError, match="cannot resume .*trained in float32.*--set train.amp=off"):
        run_method(longer.replace(**{"train.amp": "bf16"}), tmp_path, data, progress=False, resume=True)
    auto = longer.replace(**{"train.amp": "auto"})
    native = native_bf16(torch.device("cpu"))
    if native:  # this CPU resolves "auto" to bf16: refused
        with pytest.raises(ValueError, match="train.amp='auto' means bfloat16 on cpu"):
            run_method(auto, tmp_path, data, progress=False, resume=True)
    # a checkpoint saved before the record, when "auto" meant float32 on a CPU: "auto" is ambiguous,
    # an explicit choice is taken
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    del state["train_bf16"]
    state["config"]["train"]["amp"] = "auto"
    save_atomic(state, tmp_path / CHECKPOINT)
    if native:
        with pytest.raises(ValueError, match="does not record the precision.*now means bfloat16 on cpu"):
            run_method(auto, tmp_path, data, progress=False, resume=True)
    resumed = run_method(longer, tmp_path, data, progress=False, resume=True)  # explicit "off"
    assert list(resumed.metrics["epoch"].unique()) == [1, 2]
    assert load_checkpoint(tmp_path)["train_bf16"] is False


def _record_training_predictors(monkeypatch) -> list:
    """The predictors a run's epochs get (Infer-PL and tracking), recorded as the run starts them."""
    import cc2dkit.methods.run as run_module
    seen, real = [], run_module.run_epochs

    def recording(ctx, stages, trainees, predictor, *rest):
        seen.append(predictor)
        return real(ctx, stages, trainees, predictor, *rest)

    monkeypatch.setattr(run_module, "run_epochs", recording)
    return seen


def test_a_run_with_the_shape_check_fits_saves_and_loads_it(tmp_path, monkeypatch):
    seen = _record_training_predictors(monkeypatch)
    cfg = tiny_cfg(**{"method.name": "multi", "eval.shape_reach": 3.0})
    data = phantom_grids(cfg)
    result = run_method(cfg, tmp_path / "a", data, progress=False)
    assert seen[0].shape is None  # Infer-PL and tracking: unchecked
    check = result.predictor.shape
    assert check is not None and check.settings.reach == 3.0 and check.model.neighbours in (4, None)  # 5 landmarks
    saved = torch.load(tmp_path / "a" / MODEL, weights_only=False)["shape"]
    assert saved["neighbours"] == check.model.neighbours and np.allclose(saved["sigma"], check.model.sigma)
    loaded = load_predictor(tmp_path / "a")
    assert np.array_equal(loaded.shape.model.mean, check.model.mean)
    np.testing.assert_allclose(loaded.predict(data[1]), result.predictions, equal_nan=True)
    off = load_predictor(tmp_path / "a", cfg=cfg.replace(**{"eval.shape_reach": None}))
    assert off.shape is None
    assert loaded.shape.settings.prior is None  # the prior is the config's, as the reach is: the saved check takes it
    soft = load_predictor(tmp_path / "a", cfg=cfg.replace(**{"eval.shape_prior": 2.0}))
    assert soft.shape.settings.prior == 2.0 and np.array_equal(soft.shape.model.sigma, check.model.sigma)
    # a run trained without it: the check is fitted when a config asks for it (its training images rebuilt)
    plain = cfg.replace(**{"eval.shape_reach": None})
    run_method(plain, tmp_path / "b", data, progress=False)
    assert torch.load(tmp_path / "b" / MODEL, weights_only=False)["shape"] is None
    fitted = load_predictor(tmp_path / "b", cfg=cfg.replace(**{"eval.shape_prior": 1.5}))
    assert fitted.shape is not None and fitted.shape.settings == ShapeSettings(3.0, 1.5)
    # a config asking for the other kind of check than the saved one: fitted afresh, of that kind
    regressed = load_predictor(tmp_path / "a", cfg=cfg.replace(**{"eval.shape_regression": True}))
    assert loaded.shape.model.coef is None and regressed.shape.model.coef is not None
    assert np.array_equal(regressed.shape.model.mean, check.model.mean)  # the same answers, the same mean shape


def test_a_run_with_a_template_pool_fits_it_last_saves_and_loads_it(tmp_path, monkeypatch):
    seen = _record_training_predictors(monkeypatch)
    cfg = tiny_cfg(**{"method.name": "multi", "eval.shape_reach": 3.0, "eval.template_pool": 3})
    data = phantom_grids(cfg)
    result = run_method(cfg, tmp_path / "a", data, progress=False)
    assert seen[0].pool is None  # Infer-PL and tracking: the template alone
    pool = result.predictor.pool
    assert pool is not None and pool.images == 3  # the first 3 unlabelled training images
    # fitted last: from the answers of the checked predictor on those images
    checked = result.predictor.with_pool(None)
    assert checked.shape is not None
    expected = checked.pool_at(data[0], [1, 2, 3], checked.predict_grid(data[0], [1, 2, 3]))
    assert all(torch.allclose(a, b) for a, b in zip(pool.sums, expected.sums))
    saved = torch.load(tmp_path / "a" / MODEL, weights_only=False)["pool"]
    assert saved["images"] == 3 and saved["asked"] == 3
    loaded = load_predictor(tmp_path / "a")
    assert all(torch.equal(a, b) for a, b in zip(loaded.pool.sums, pool.sums))
    np.testing.assert_allclose(loaded.predict(data[1]), result.predictions, equal_nan=True)
    assert load_predictor(tmp_path / "a", cfg=cfg.replace(**{"eval.template_pool": 0})).pool is None
    assert load_predictor(tmp_path / "a", cfg=cfg.replace(**{"eval.template_pool": 2})).pool.images == 2  # refitted
    # fitted under the saved check: a config asking for another check (or none) refits it too
    fits, real = [], Predictor.pooled

    def counting(self, *args, **kwargs):
        fits.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "pooled", counting)
    load_predictor(tmp_path / "a", cfg=cfg.replace(**{"eval.shape_prior": 2.0}))
    assert fits == []  # the same check model under another prior (a read-time setting): the saved pool
    for other in ({"eval.shape_regression": True}, {"eval.shape_reach": None}):
        assert load_predictor(tmp_path / "a", cfg=cfg.replace(**other)).pool.images == 3
    assert len(fits) == 2
    # a run trained without one: the pool is fitted when a config asks for it (its training images rebuilt)
    run_method(cfg.replace(**{"eval.template_pool": 0}), tmp_path / "b", data, progress=False)
    assert torch.load(tmp_path / "b" / MODEL, weights_only=False)["pool"] is None
    assert load_predictor(tmp_path / "b", cfg=cfg).pool.images == 3


def test_a_template_pool_without_unlabelled_images_is_refused_before_training(tmp_path):
    from cc2dkit.data.base import SubsetDataset
    from cc2dkit.data.grid import GridImages

    cfg = tiny_cfg(**{"eval.template_pool": 5})
    train, test = phantom_grids(cfg)
    alone = GridImages(SubsetDataset(train.dataset, [cfg.data.template]), cfg.data.grid, "train", progress=False)
    with pytest.raises(ValueError, match="eval.template_pool=5 needs unlabelled training images"):
        run_method(cfg, tmp_path / "run", (alone, test), progress=False)
    assert not (tmp_path / "run").exists()


def test_the_shape_check_refuses_too_few_landmarks_before_training(tmp_path):
    cfg = tiny_cfg(**{"eval.shape_reach": 3.0, "method.landmarks": (1, 3)})
    with pytest.raises(ValueError, match="eval.shape_reach needs at least 3 landmarks"):
        run_method(cfg, tmp_path / "run", phantom_grids(cfg), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_pl_shape_run_resumes_onto_the_same_pls(tmp_path, one_thread):
    # the check of the next Infer-PL is fitted to the last one's unchecked answers: the checkpoint keeps them
    cfg = tiny_cfg(**{"method.name": "multi", "method.landmarks": (0, 1, 2, 4), "method.pl_shape": True,
                      "eval.shape_reach": 2.0, "eval.shape_prior": 1.0, "eval.track_every": 0, "train.epochs": 3,
                      "train.steps_per_epoch": 2, "num_threads": 1})
    data = phantom_grids(cfg)
    straight = run_method(cfg, tmp_path / "a", data, progress=False).pl_state
    run_method(cfg.replace(**{"train.epochs": 2}), tmp_path / "b", data, progress=False)
    resumed = run_method(cfg, tmp_path / "b", data, progress=False, resume=True).pl_state
    for a, b in zip(straight.history, resumed.history):
        np.testing.assert_array_equal(a["pls"], b["pls"])
        assert (a.get("unchecked") is None) == (b.get("unchecked") is None)

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from cc2dkit.inference import ModelSetPredictor
from cc2dkit.methods import load_predictor, run_method
from cc2dkit.methods.context import prepare_context
from cc2dkit.methods.registry import MethodSpec
from cc2dkit.network import check_landmark_ids
from cc2dkit.training import stage_steps

from .conftest import phantom_grids, tiny_cfg


@pytest.fixture(scope="module")
def cfg():
    return tiny_cfg()


@pytest.fixture(scope="module")
def data(cfg):
    return phantom_grids(cfg)


@pytest.fixture(scope="module")
def sla_run(cfg, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("sla")
    c = cfg.replace(**{"train.epochs": 3, "train.steps_per_epoch": 2, "method.landmarks": (1, 3)})
    return c, run_method(c.replace(**{"method.name": "sla"}), out, data, progress=False), out


def test_stage_steps_default_is_one_pass(cfg):
    assert stage_steps(cfg, 100) == 1
    free = cfg.replace(**{"train.steps_per_epoch": None})
    assert stage_steps(free, 9) == 3 and stage_steps(free, 8) == 2 and stage_steps(free, 1) == 1


def test_sla_pseudo_labels_converge_towards_the_landmarks(sla_run):
    _, result, _ = sla_run
    frame = result.pl_state.history_frame()
    err = frame.groupby("epoch")["pl_error_mm"].mean()
    assert list(err.index) == [0, 1, 2, 3]
    assert err[3] < 0.5 * err[0], err.tolist()  # random start vs after 3 epochs
    assert frame[frame.epoch > 0]["movement_mm"].notna().all()


def test_sla_run_folder_and_save_load_round_trip(sla_run, data):
    c, result, out = sla_run
    for name in ("config.json", "pl_history.csv", "metrics.csv", "predictions_test.csv", "evaluation_test.csv",
                 "errors_test.csv", "model.pt", "checkpoint.pt"):
        assert (out / name).exists(), name
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 3 * 2 and metrics["test_mre_mm"].notna().all()
    assert set(metrics["landmark_index"]) == {1, 3}
    table = pd.read_csv(out / "evaluation_test.csv", index_col=0)
    assert list(table.index) == [data[0].landmark_names[1], data[0].landmark_names[3], "all"]
    assert isinstance(result.predictor, ModelSetPredictor) and len(result.predictor.models) == 2
    pred = result.predictor.predict(data[1])
    assert pred.shape == (len(data[1]), 5, 2)
    assert np.isnan(pred[:, [0, 2, 4]]).all() and np.isfinite(pred[:, [1, 3]]).all()
    assert np.array_equal(pred, result.predictions, equal_nan=True)
    loaded = load_predictor(out)
    assert isinstance(loaded, ModelSetPredictor) and loaded.landmark_indices == [1, 3]
    assert np.array_equal(loaded.predict(data[1]), pred, equal_nan=True)


def _garble(data, template_index, how):
    """A copy whose non-template ground truth is NaN or garbage (training must not read it)."""
    d = copy.deepcopy(data)
    rows = [i for i in range(len(d)) if i != template_index]
    rng = np.random.default_rng(0)
    for arr in (d.landmarks, d.original_landmarks):
        arr[rows] = np.nan if how == "nan" else rng.uniform(-50, 500, arr[rows].shape)
    return d


@pytest.mark.parametrize("method", ["atd", "multi"])
def test_training_never_reads_unlabelled_ground_truth(cfg, data, method):
    c = cfg.replace(**{"train.epochs": 2, "method.landmarks": (0, 2), "method.name": method})
    t = data[0].index(c.data.template)
    results = [run_method(c, None, (d, data[1]), progress=False)
               for d in (data[0], _garble(data[0], t, "nan"), _garble(data[0], t, "garbage"))]
    ref = results[0]
    for other in results[1:]:
        for a, b in zip(ref.pl_state.history, other.pl_state.history):
            assert np.array_equal(a["pls"], b["pls"])
        assert np.array_equal(ref.predictions, other.predictions, equal_nan=True)
        assert ref.metrics["loss_pl"].tolist() == other.metrics["loss_pl"].tolist()
    assert np.isnan(results[1].pl_state.history_frame()["pl_error_mm"]).all()


def test_multi_reports_per_landmark_errors_each_epoch(cfg, data, tmp_path):
    c = cfg.replace(**{"train.epochs": 2, "method.landmarks": (0, 4), "method.name": "multi"})
    result = run_method(c, tmp_path, data, progress=False)
    assert list(result.metrics["epoch"]) == [1, 1, 2, 2]
    assert result.metrics["test_mre_mm"].notna().all()
    assert (tmp_path / "model.pt").exists() and (tmp_path / "pl_history.csv").exists()
    assert result.table is not None and list(result.table.index)[-1] == "all"


def test_adapter_schedule_passes_landmark_ids(cfg, data, tmp_path, monkeypatch):
    c = cfg.replace(**{"train.steps_per_epoch": None, "method.landmarks": (4, 1), "method.name": "adapter",
                       "method.adapter_channels": 2})
    built, seen, real_build = [], [], MethodSpec.build_model

    def build(self, cfg_, n, shared=None):  # the real model, its decoder passes recorded
        built.append(n)
        model = real_build(self, cfg_, n, shared)
        forward = model.decoder.forward

        def recording(taps, ids=None, crops=None):
            seen.append((model.training, check_landmark_ids(ids, taps[0].shape[0], n).tolist()))
            return forward(taps, ids, crops)

        model.decoder.forward = recording
        return model

    monkeypatch.setattr(MethodSpec, "build_model", build)
    result = run_method(c, tmp_path, data, progress=False)
    assert built == [2]
    train_ids = [i for training, ids in seen if training for i in ids]
    # template stage: ceil(3 copies x 2 landmarks / 4) = 2 steps; PL stage: ceil(5 x 2 / 4) = 3 steps;
    # each step runs the model on images and on patches
    assert len(train_ids) == 2 * 4 * (2 + 3) and set(train_ids) == {0, 1}
    eval_ids = [ids for training, ids in seen if not training]
    assert {tuple(sorted(set(ids))) for ids in eval_ids} == {(0,), (1,)}
    assert list(result.metrics.columns[:5]) == ["epoch", "landmark", "landmark_index", "loss_template", "loss_pl"]
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "evaluation_test.csv").exists()
    assert np.isfinite(result.predictions[:, [4, 1]]).all() and np.isnan(result.predictions[:, [0, 2, 3]]).all()


def _short_adapter(cfg):
    """A C-Adapter of 2 landmarks, one epoch of 2 steps per stage, no tracking."""
    return cfg.replace(**{"method.landmarks": (4, 1), "method.name": "adapter", "method.adapter_channels": 2,
                          "train.epochs": 1, "train.steps_per_epoch": 2, "eval.track_every": 0})


def test_pl_cross_reaches_the_pl_stage_of_an_adapter_run(cfg, data):
    c = _short_adapter(cfg)
    plain = run_method(c, None, data, progress=False)
    cross = run_method(c.replace(**{"method.pl_cross": 0.5}), None, data, progress=False)
    # the template stage runs first and draws the same batches; the PL stage's patches differ
    assert plain.metrics["loss_template"].tolist() == cross.metrics["loss_template"].tolist()
    assert plain.metrics["loss_pl"].tolist() != cross.metrics["loss_pl"].tolist()
    with pytest.raises(ValueError, match="pl_cross"):
        c.replace(**{"method.name": "multi", "method.pl_cross": 0.5})


def test_pl_walk_adds_the_round_trip_to_the_pl_stage_of_an_adapter_run(cfg, data):
    c = _short_adapter(cfg)
    plain = run_method(c, None, data, progress=False)
    walk = run_method(c.replace(**{"method.pl_walk": 1.0}), None, data, progress=False)
    # the template stage is the same; the PL stage's loss gains the round trip (positive: -log of a probability)
    assert plain.metrics["loss_template"].tolist() == walk.metrics["loss_template"].tolist()
    assert (walk.metrics["loss_pl"].to_numpy() > plain.metrics["loss_pl"].to_numpy()).all()
    with pytest.raises(ValueError, match="pl_walk"):
        c.replace(**{"method.name": "sla", "method.pl_walk": 1.0})


def test_pl_images_limits_the_pseudo_labelled_images(cfg, data):
    c = cfg.replace(**{"method.pl_images": 3, "method.landmarks": (0,), "method.name": "multi"})
    ctx = prepare_context(c, None, data, progress=False)
    assert ctx.unlabelled == [i for i in range(len(data[0])) if i != ctx.template_index][:3]
    result = run_method(c, None, data, progress=False)
    assert result.pl_state.pls.shape == (3, 1, 2)
    with pytest.raises(ValueError, match="pl_images"):
        prepare_context(cfg.replace(**{"method.pl_images": 0}), None, data, progress=False)


def test_pseudo_labels_use_the_plain_argmax_and_the_answer_the_eval_settings(cfg, data):
    """Infer-PL and tracking match at the grid argmax against the template alone, whatever
    ``eval.*`` says; the trained model's final answers use ``eval.subpixel`` / ``template_copies``."""
    base = cfg.replace(**{"method.name": "adapter", "method.adapter_channels": 2, "train.epochs": 1,
                          "train.steps_per_epoch": 2, "method.landmarks": (0, 2), "method.pl_images": 4,
                          "eval.track_every": 0})
    plain = run_method(base, None, data, progress=False)
    refined = run_method(base.replace(**{"eval.subpixel": True, "eval.template_copies": 2}), None, data,
                         progress=False)
    np.testing.assert_array_equal(plain.pl_state.pls, refined.pl_state.pls)
    assert (plain.predictor.subpixel, plain.predictor.template_copies) == (False, 0)
    assert (refined.predictor.subpixel, refined.predictor.template_copies) == (True, 2)
    assert not np.array_equal(plain.predictions, refined.predictions)
    again = refined.predictor.plain()
    assert (again.subpixel, again.template_copies) == (False, 0) and again.model is refined.predictor.model
    np.testing.assert_allclose(again.predict_grid(data[1], [0, 1]), plain.predictor.predict_grid(data[1], [0, 1]))


def test_pl_max_move_caps_the_pl_updates_after_the_first(cfg, data):
    base = cfg.replace(**{"method.name": "multi", "train.epochs": 3, "train.steps_per_epoch": 2,
                          "method.landmarks": (0, 2), "method.pl_images": 6, "eval.track_every": 0})
    free = run_method(base, None, data, progress=False).pl_state
    capped = run_method(base.replace(**{"method.pl_max_move": 1.0}), None, data, progress=False).pl_state

    def moves(pl, epoch):  # (N, K) grid px each PL moved in that epoch's Infer-PL
        return np.linalg.norm(pl.history[epoch]["pls"] - pl.history[epoch - 1]["pls"], axis=-1)

    np.testing.assert_array_equal(free.history[1]["pls"], capped.history[1]["pls"])  # the first update is free
    assert moves(capped, 1).max() > 1.0
    assert max(moves(free, e).max() for e in (2, 3)) > 1.0  # uncapped, later answers still jump
    for e in (2, 3):
        assert moves(capped, e).max() <= 1.0 + 1e-9
    frame = capped.history_frame()
    assert frame[frame.epoch >= 2]["pl_capped"].sum() > 0 and frame[frame.epoch < 2]["pl_capped"].sum() == 0
    assert free.history_frame()["pl_capped"].sum() == 0
    with pytest.raises(ValueError, match="pl_max_move"):
        cfg.replace(**{"method.pl_max_move": 0.0})


def test_pl_agree_waives_the_cap_only_for_answers_that_agree(cfg, data):
    run = cfg.replace(**{"method.name": "multi", "train.epochs": 4, "train.steps_per_epoch": 2,
                         "method.landmarks": (0, 2), "method.pl_images": 6, "eval.track_every": 0,
                         "method.pl_max_move": 1.0, "method.pl_agree": True})
    pl = run_method(run, None, data, progress=False).pl_state
    released = 0
    for e in (2, 3, 4):
        h, prev = pl.history[e], pl.history[e - 1]
        moved = np.linalg.norm(h["pls"] - prev["pls"], axis=-1)
        agreed = np.linalg.norm(h["answers"] - prev["answers"], axis=-1) <= 1.0
        assert (moved[~agreed] <= 1.0 + 1e-9).all()  # the cap holds where the answer jumped
        np.testing.assert_array_equal(h["pls"][agreed], h["answers"][agreed])  # and is waived where it agreed
        released += int((agreed & (moved > 1.0)).sum())
    assert released > 0  # some PL followed two agreeing answers further than the cap would let it


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_infer_pl_runs_in_the_training_steps_precision(cfg, data, monkeypatch, amp):
    """Infer-PL and tracking are part of training: their network passes follow ``train.amp``, while
    the trained model's own answers keep ``eval.amp``."""
    import cc2dkit.methods.run as run_module
    seen, real = [], run_module.run_epochs

    def recording(ctx, stages, trainees, predictor, *rest):
        seen.append(predictor)
        return real(ctx, stages, trainees, predictor, *rest)

    monkeypatch.setattr(run_module, "run_epochs", recording)
    c = cfg.replace(**{"train.epochs": 1, "train.steps_per_epoch": 1, "method.name": "multi",
                       "train.amp": amp, "eval.amp": "off"})
    run_method(c, None, data, progress=False)
    (predictor,) = seen
    assert predictor.bf16 == (amp == "bf16")
    assert (predictor.subpixel, predictor.template_copies, predictor.centroid) == (False, 0, None)


def test_pl_shape_reads_infer_pl_through_a_check_fitted_to_the_pls(cfg, data):
    from cc2dkit.methods.loop import pl_reader
    base = cfg.replace(**{"method.name": "multi", "train.epochs": 3, "train.steps_per_epoch": 2,
                          "method.landmarks": (0, 1, 2, 4), "eval.track_every": 0, "eval.shape_reach": 2.0,
                          "eval.shape_prior": 1.0})
    plain = run_method(base, None, data, progress=False)
    shaped = run_method(base.replace(**{"method.pl_shape": True}), None, data, progress=False)
    np.testing.assert_array_equal(plain.pl_state.history[1]["pls"], shaped.pl_state.history[1]["pls"])  # from random
    assert any(not np.array_equal(plain.pl_state.history[e]["pls"], shaped.pl_state.history[e]["pls"]) for e in (2, 3))
    history = shaped.pl_state.history
    np.testing.assert_array_equal(history[1]["unchecked"], history[1]["answers"])  # the first read without a check
    assert any(not np.array_equal(history[e]["unchecked"], history[e]["answers"]) for e in (2, 3))
    assert "unchecked" not in plain.pl_state.history[1]
    reread = shaped.pl_state.history_frame()
    assert reread[reread.epoch >= 2]["pl_reread"].sum() > 0 and reread[reread.epoch < 2]["pl_reread"].sum() == 0
    ctx = prepare_context(base.replace(**{"method.pl_shape": True}), None, data, progress=False)
    reader = pl_reader(ctx, shaped.predictor.plain(), shaped.pl_state)
    assert reader.shape is not None and (reader.shape.settings.reach, reader.shape.settings.prior) == (2.0, 1.0)
    from cc2dkit.inference.shape import ShapeCheck, ShapeSettings
    fitted = ShapeCheck.fit(history[-1]["unchecked"], shaped.predictor.template.points[[0, 1, 2, 4]],
                            ShapeSettings(2.0)).model
    np.testing.assert_array_equal(reader.shape.model.mean, fitted.mean)  # fitted to the answers read without it
    assert not np.array_equal(history[-1]["unchecked"], history[-1]["pls"])
    assert reader.subpixel is False and reader.template_copies == 0  # otherwise Infer-PL's own reading
    assert pl_reader(prepare_context(base, None, data, progress=False), shaped.predictor.plain(),
                     shaped.pl_state).shape is None
    with pytest.raises(ValueError, match="pl_shape=True needs eval.shape_reach"):
        cfg.replace(**{"method.name": "multi", "method.pl_shape": True})
    with pytest.raises(ValueError, match="method.pl_shape needs at least 5 unlabelled"):  # PLs on 4 images
        run_method(base.replace(**{"method.pl_shape": True, "method.pl_images": 4}), None, data, progress=False)

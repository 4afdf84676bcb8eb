"""Batched SLA: K models as one StackedModels must behave exactly as K separate CC2D models."""
import dataclasses

import numpy as np
import pytest
import torch

from cc2dkit.inference import ModelPredictor, ModelSetPredictor, Template
from cc2dkit.methods import METHODS, batched_training, load_predictor, run_method
from cc2dkit.network import StackedModels
from cc2dkit.network.stacked import repeat_taps, stack_taps
from cc2dkit.training import RandomPatchSource, make_optimizer, ssl_step

from .conftest import phantom_grids, tiny_cfg

K = 3
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cfg():
    return tiny_cfg(**{"train.epochs": 2})


@pytest.fixture(scope="module")
def data(cfg):
    return phantom_grids(cfg)


def _models(cfg, k=K, seed=0):
    torch.manual_seed(seed)
    return METHODS["sla"].build_models(cfg, k)  # K plain CC2D sharing one frozen backbone


def _batches(cfg, data, k=K, seed=1):
    gen = torch.Generator().manual_seed(seed)
    src = RandomPatchSource(data[0], cfg.train)
    return [src.sample(cfg.train.batch_size, gen) for _ in range(k)]


def _assert_close(a, b, tol=1e-4):
    """Equal up to float error relative to the tensor's scale (grouped vs plain convs sum differently)."""
    a, b = a.detach().double(), b.detach().double()
    assert a.shape == b.shape
    assert float((a - b).abs().max()) <= tol * max(float(b.abs().max()), 1e-6), float((a - b).abs().max())


@pytest.mark.parametrize("training", [True, False])
def test_stacked_forward_equals_separate_decoders(cfg, data, training):
    models = _models(cfg)
    stack = StackedModels(models).train(training)
    images = data[0].images[:2 * K].reshape(K, 2, 1, 64, 64)  # model k gets its own 2 images
    taps = [models[0].backbone(images[k]) for k in range(K)]  # K x [(2, C, h, w)]
    stacked_in = stack_taps([torch.cat(level) for level in zip(*taps)], K)  # [(2, K*C, h, w)]
    out = stack.decoder(stacked_in)
    for k, m in enumerate(models):
        m.decoder.train(training)
        ref = m.decoder(taps[k])
        for got, want in zip(out, ref):
            assert got.shape == (K,) + tuple(want.shape)
            _assert_close(got[k], want)
    if training:  # running stats were updated from each model's own batch
        for k, m in enumerate(models):
            for name, want in m.decoder.state_dict().items():
                _assert_close(stack.model_state_dict(k)[name], want)


def test_weights_move_exactly_both_ways(cfg):
    models = _models(cfg)
    stack = StackedModels(models)
    fresh = _models(cfg, seed=7)
    stack.to_models(fresh)  # exactly the originals
    for k, m in enumerate(models):
        for name, want in m.decoder.state_dict().items():
            assert torch.equal(fresh[k].decoder.state_dict()[name], want), name
    with torch.no_grad():
        for p in stack.parameters():
            p.add_(torch.randn_like(p))
    stack.to_models(fresh)  # in place
    again = StackedModels(fresh)
    for name, t in stack.decoder.state_dict().items():
        assert torch.equal(again.decoder.state_dict()[name], t), name
    with pytest.raises(ValueError):
        stack.to_models(fresh[:2])
    with pytest.raises(TypeError, match="plain CC2D"):
        StackedModels([METHODS["adapter"].build_model(cfg.replace(**{"method.adapter_channels": 2}), 3)])


def test_stacking_keeps_the_global_rng(cfg):
    models = _models(cfg)
    state = torch.get_rng_state()
    StackedModels(models)
    assert torch.equal(torch.get_rng_state(), state)


def test_stacked_step_equals_separate_steps_and_adams(cfg, data):
    """Networks in float64 (float32 noise would flip near-zero gradients, and Adam's first steps are
    ~ lr * sign(grad)); the loss itself is float32 in both steps. One stacked step == K ssl_steps."""
    c = cfg.replace(**{"backbone.cache_features": False, "train.batch_size": 2})  # float64 convs are slow
    models = [m.double() for m in _models(c)]
    stack = StackedModels(models)
    assert next(stack.parameters()).dtype == torch.float64
    stack_opt = make_optimizer(stack, c)
    opts = [make_optimizer(m, c) for m in models]
    for step in range(2):  # the second step exercises Adam's moments
        batches = [dataclasses.replace(b, images=b.images.double(), patches=b.patches.double())
                   for b in _batches(c, data, seed=step)]
        ref = [ssl_step(m, [b], o, c.train, CPU)[0] for m, b, o in zip(models, batches, opts)]
        got = ssl_step(stack, batches, stack_opt, c.train, CPU)
        np.testing.assert_allclose(got, ref, rtol=1e-6)
        for name, p in stack.decoder.named_parameters():
            for k, m in enumerate(models):
                _assert_close(p.grad.chunk(K)[k], m.decoder.get_parameter(name).grad, tol=1e-6)
        for k, m in enumerate(models):
            for name, want in m.decoder.state_dict().items():  # weights after Adam and BN running stats
                torch.testing.assert_close(stack.model_state_dict(k)[name], want, atol=1e-8, rtol=1e-8)


def test_stacked_step_rejects_mismatched_batches(cfg, data):
    models = _models(cfg)
    stack = StackedModels(models)
    batches = _batches(cfg, data)
    with pytest.raises(ValueError, match="2 batches for 3 model"):
        ssl_step(stack, batches[:2], make_optimizer(stack, cfg), cfg.train, CPU)
    uneven = batches[:2] + [RandomPatchSource(data[0], cfg.train).sample(1, torch.Generator().manual_seed(0))]
    with pytest.raises(ValueError, match="same size"):
        ssl_step(stack, uneven, make_optimizer(stack, cfg), cfg.train, CPU)


def test_batched_inference_equals_per_model_inference(cfg, data):
    models = _models(cfg)
    stack = StackedModels(models)
    ssl_step(stack, _batches(cfg, data), make_optimizer(stack, cfg), cfg.train, CPU)
    stack.to_models(models)  # BN running stats are no longer trivial
    train, test = data
    landmarks = [0, 2, 4]
    template = Template.from_data(train, cfg.data.template)
    embs = StackedModels(models).eval()(test.images, test.keys)  # the same images through every model
    for k, m in enumerate(models):
        m.eval()
        with torch.no_grad():
            ref = m(test.images, keys=test.keys)
        for got, want in zip(embs, ref):
            _assert_close(got[k], want)
    assert [e.shape for e in repeat_taps([torch.zeros(2, 5, 4, 4)], K)] == [(2, 5 * K, 4, 4)]

    # cascade predictions: stacked (one call per image batch, in stacks of 3 or 2) vs the K models one by one
    def one_by_one(d, rows=None):
        return np.stack([ModelPredictor(m, template, [l], CPU, 3).predict_grid(d, rows)[:, 0]
                         for m, l in zip(models, landmarks)], axis=1)

    for stack_size in (None, 2):
        stacked = ModelSetPredictor(models, template, landmarks, CPU, 3, stack_size)
        for d in (train, test):
            np.testing.assert_array_equal(stacked.predict_grid(d), one_by_one(d))
        np.testing.assert_array_equal(stacked.predict_grid(train, [1, 3]), one_by_one(train, [1, 3]))


@pytest.mark.parametrize("batched", [True, False])
def test_sla_run_batched_and_sequential_save_and_load(cfg, data, tmp_path, batched):
    c = cfg.replace(**{"method.name": "sla", "method.batched": batched, "method.landmarks": (0, 2)})
    result = run_method(c, tmp_path, data, progress=False)
    assert isinstance(result.predictor, ModelSetPredictor) and result.predictor.landmark_indices == [0, 2]
    assert list(result.metrics["epoch"]) == [1, 1, 2, 2] and result.metrics["loss_pl"].notna().all()
    assert [h["epoch"] for h in result.pl_state.history] == [0, 1, 2]
    assert np.isfinite(result.pl_state.pls).all()
    loaded = load_predictor(tmp_path)
    pred = loaded.predict(data[1])
    assert np.array_equal(pred, result.predictions, equal_nan=True)
    assert np.isfinite(pred[:, [0, 2]]).all() and np.isnan(pred[:, [1, 3, 4]]).all()
    for m, n in zip(result.predictor.models, loaded.models):
        for name, t in m.trainable_state_dict().items():
            assert torch.equal(n.trainable_state_dict()[name].cpu(), t.cpu()), name


def test_batched_atd_runs_template_and_pl_stages(cfg, data):
    c = cfg.replace(**{"method.name": "atd", "method.landmarks": (1, 3), "train.epochs": 1, "method.batched": True})
    result = run_method(c, None, data, progress=False)
    assert list(result.metrics.columns[:5]) == ["epoch", "landmark", "landmark_index", "loss_template", "loss_pl"]
    assert result.metrics[["loss_template", "loss_pl"]].notna().all().all()
    assert np.isfinite(result.predictions[:, [1, 3]]).all() and np.isnan(result.predictions[:, [0, 2, 4]]).all()


def test_stack_size_splits_the_landmarks_into_stacks(cfg, data):
    c = cfg.replace(**{"method.name": "sla", "method.landmarks": (0, 2, 4), "train.epochs": 1,
                       "method.batched": True})
    chunked = run_method(c.replace(**{"method.stack_size": 2}), None, data, progress=False)
    assert chunked.pl_state.pls.shape[1] == 3 and np.isfinite(chunked.predictions[:, [0, 2, 4]]).all()
    # stacks of one draw the random numbers in the sequential loop's order: same losses up to float error
    one = run_method(c.replace(**{"method.stack_size": 1}), None, data, progress=False)
    seq = run_method(c.replace(**{"method.batched": False}), None, data, progress=False)
    np.testing.assert_allclose(one.metrics["loss_pl"], seq.metrics["loss_pl"], rtol=1e-3)
    for batched in (True, False):  # refused before any training
        with pytest.raises(ValueError, match="stack_size"):
            run_method(c.replace(**{"method.stack_size": 0, "method.batched": batched}), None, data, progress=False)


def test_batched_training_defaults_to_cuda_only(cfg):
    assert cfg.method.batched is None
    assert not batched_training(cfg, torch.device("cpu")) and batched_training(cfg, torch.device("cuda"))
    assert batched_training(cfg.replace(**{"method.batched": "on"}), torch.device("cpu"))
    assert not batched_training(cfg.replace(**{"method.batched": "false"}), torch.device("cuda"))
    # a crop of the finest stages needs one model per step: CUDA's default turns sequential
    assert not batched_training(cfg.replace(**{"train.crop_below": 4}), torch.device("cuda"))


def test_stacked_step_with_channels_last_equals_the_nchw_step(cfg, data):
    """The grouped convs of the stack laid out NHWC (train.channels_last) give the NCHW step's result."""
    c = cfg.replace(**{"backbone.cache_features": False, "train.batch_size": 2})
    out = {}
    for on in (False, True):
        cl = c.replace(**{"train.channels_last": on})
        models = [m.double() for m in _models(cl)]
        stack = StackedModels(models)
        opt = make_optimizer(stack, cl)
        batches = [dataclasses.replace(b, images=b.images.double(), patches=b.patches.double())
                   for b in _batches(cl, data)]
        losses = [ssl_step(stack, batches, opt, cl.train, CPU) for _ in range(2)]
        assert any(not p.is_contiguous() for p in stack.parameters() if p.dim() == 4) == on
        out[on] = losses, [p.detach().clone() for p in stack.parameters()]
    np.testing.assert_allclose(out[True][0], out[False][0], rtol=1e-6)  # the loss is float32
    # Adam moves every weight by ~lr per step, so a layout bug shows as differences of ~lr nearly
    # everywhere. Where a gradient is ~0, the float32 loss's rounding can still tilt Adam's update
    # (measured: 1 weight of 27648 by 0.006 lr): allow a handful, none past a sign flip's 2 lr a step.
    lr = c.train.lr
    diffs = torch.cat([(a - b).abs().flatten() for a, b in zip(out[True][1], out[False][1], strict=True)])
    assert (diffs > 1e-3 * lr).double().mean() <= 1e-3
    assert diffs.max() <= 2 * len(out[True][0]) * lr

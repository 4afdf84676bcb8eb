"""train.ema: a moving average of the trained weights answers Infer-PL, tracking and the final model."""
import pytest
import torch

from cc2dkit.config import BackboneConfig, NetConfig
from cc2dkit.methods import run_method
from cc2dkit.methods import loop as loop_module
from cc2dkit.methods.checkpoint import load_checkpoint
from cc2dkit.methods.loop import Trainee, adopt_averages, attach_averages, averaged
from cc2dkit.methods.runfolder import MODEL
from cc2dkit.network import CC2D, StackedModels
from cc2dkit.training import WeightAverage

from .conftest import phantom_grids, tiny_cfg

NET = NetConfig(embed_dim=8, decoder_widths=(8, 8, 8, 8, 8))
BB = BackboneConfig(arch="vgg16", weights="none")


def _decoder(net) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.decoder.state_dict().items()}


def _perturb(net, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.decoder.parameters():
            p.add_(torch.randn(p.shape, generator=g))
        for name, b in net.decoder.named_buffers():
            if name.endswith("running_mean"):
                b.add_(1.0)


def test_an_update_moves_the_average_by_its_ramped_rate_and_a_swap_is_its_own_inverse():
    net = CC2D(NET, BB)
    avg = WeightAverage(net, 0.9)
    start = _decoder(net)
    assert avg.rate() == pytest.approx(min(0.9, 2 / 11))  # the ramp: update 1 keeps 2/11 of the average
    _perturb(net, 0)
    moved = _decoder(net)
    avg.update(net)
    for k, v in avg.shadow.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, start[k] * 2 / 11 + moved[k] * 9 / 11)
        else:  # batch norm's counter follows the network
            assert torch.equal(v, moved[k])
    for _ in range(200):
        avg.update(net)
    assert avg.rate() == 0.9  # the cap, once the ramp passes it
    shadow = {k: v.clone() for k, v in avg.shadow.items()}
    avg.swap(net)
    assert all(torch.equal(v, shadow[k]) for k, v in net.decoder.state_dict().items())
    avg.swap(net)
    assert all(torch.equal(v, moved[k]) for k, v in net.decoder.state_dict().items())
    assert all(torch.equal(v, shadow[k]) for k, v in avg.shadow.items())


def test_a_saved_average_loads_only_into_the_same_network():
    net = CC2D(NET, BB)
    avg = WeightAverage(net, 0.5)
    _perturb(net, 1)
    avg.update(net)
    again = WeightAverage(CC2D(NET, BB), 0.5)
    again.load_state_dict(avg.state_dict())
    assert again.updates == 1 and all(torch.equal(v, avg.shadow[k]) for k, v in again.shadow.items())
    other = CC2D(NetConfig(embed_dim=8, decoder_widths=(8, 8, 8, 8, 8), use_rfb=False), BB)
    with pytest.raises(ValueError, match="another network"):
        WeightAverage(other, 0.5).load_state_dict(avg.state_dict())
    with pytest.raises(ValueError, match="another network"):
        avg.update(other)


def test_a_stack_hands_its_average_to_its_models_and_takes_the_raw_weights_back():
    models = [CC2D(NET, BB), CC2D(NET, BB)]
    stack = StackedModels(models)
    t = Trainee(stack, torch.optim.Adam(stack.decoder.parameters()), models, [0, 1], {})
    t.average = WeightAverage(stack, 0.5)
    _perturb(stack, 2)
    t.sync()
    raw = [_decoder(m) for m in models]
    with averaged([t]):
        for k, m in enumerate(models):  # the average never moved: the stack's weights when it was built
            held = _decoder(m)
            assert any(not torch.equal(held[n], raw[k][n]) for n in held)
            assert all(torch.equal(v, stack.model_state_dict(k)[n]) for n, v in held.items())
    for k, m in enumerate(models):
        assert all(torch.equal(v, raw[k][n]) for n, v in m.decoder.state_dict().items())


def test_config_and_torchrun_refuse_what_the_average_cannot_do():
    with pytest.raises(ValueError, match="train.ema"):
        tiny_cfg(**{"train.ema": 1.0})
    with pytest.raises(ValueError, match="train.ema"):
        tiny_cfg(**{"train.ema": 0.0})

    class Ctx:
        cfg = tiny_cfg(**{"train.ema": 0.9})

    t = Trainee(CC2D(NET, BB), None, [], [0], {}, owner=0)  # a trainee shared out to rank 0
    with pytest.raises(ValueError, match="train.ema .* torchrun"):
        attach_averages(Ctx(), [t])


def test_infer_pl_and_the_final_model_answer_with_the_average(tmp_path, monkeypatch):
    cfg = tiny_cfg(**{"method.name": "multi", "method.landmarks": (0, 1), "train.ema": 0.5, "train.epochs": 1,
                      "train.steps_per_epoch": 3, "eval.track_every": 0})
    seen = []
    real = loop_module.predict_rows

    def recording(ctx, predictor, *args, **kwargs):
        seen.append(_decoder(predictor.model))
        return real(ctx, predictor, *args, **kwargs)

    monkeypatch.setattr(loop_module, "predict_rows", recording)
    result = run_method(cfg, tmp_path, phantom_grids(cfg), progress=False)
    state = load_checkpoint(tmp_path)
    shadow, raw = state["averages"][0]["shadow"], state["models"][0]
    assert state["averages"][0]["updates"] == 3  # the PL stage's steps
    assert len(seen) == 1 and all(torch.equal(v, shadow[k]) for k, v in seen[0].items())  # Infer-PL: the average
    assert any(not torch.equal(raw[k], shadow[k]) for k in raw)  # the checkpoint trains on from the raw weights
    final = torch.load(tmp_path / MODEL, weights_only=False)["models"][0]
    assert all(torch.equal(v, shadow[k]) for k, v in final.items())  # the final model: the average
    assert all(torch.equal(v, shadow[k]) for k, v in _decoder(result.predictor.model).items())


def test_a_run_with_the_average_resumes_exactly(tmp_path, one_thread):
    cfg = tiny_cfg(**{"method.name": "multi", "method.landmarks": (0, 1), "train.ema": 0.5, "train.epochs": 2,
                      "train.steps_per_epoch": 2, "eval.track_every": 0, "num_threads": 1})
    data = phantom_grids(cfg)
    straight = run_method(cfg, tmp_path / "a", data, progress=False)
    run_method(cfg.replace(**{"train.epochs": 1}), tmp_path / "b", data, progress=False)
    resumed = run_method(cfg, tmp_path / "b", data, progress=False, resume=True)
    for a, b in zip(straight.pl_state.history, resumed.pl_state.history):
        assert (a["pls"] == b["pls"]).all()
    for a, b in zip(_decoder(straight.predictor.model).values(), _decoder(resumed.predictor.model).values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="train.ema"):  # the average may not change at a resume
        run_method(cfg.replace(**{"train.ema": None, "train.epochs": 3}), tmp_path / "b", data, progress=False,
                   resume=True)

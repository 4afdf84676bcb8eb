import dataclasses

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torchvision.models import vgg as vgg_module

from cc2dkit.backbone import FEATURE_INFO
from cc2dkit.config import BackboneConfig, MethodConfig, NetConfig, preset
from cc2dkit.methods import METHODS, method_spec
from cc2dkit.network import CC2D, AdapterBlocks, Decoder, PlainBlocks
from cc2dkit.network.accounting import (backbone_parameter_count, count_parameters, parameter_counts,
                                        parameter_table, trainable_parameter_count, training_memory_mb)
from cc2dkit.network.blocks import LandmarkBatchNorm2d, LandmarkConv2d
from cc2dkit.network.decoder import N_RFB
from cc2dkit.network import check_landmark_ids

BB = BackboneConfig(arch="vgg16", weights="none")
NET = NetConfig(embed_dim=8, decoder_widths=(16, 16, 16, 16, 16))
TAPS = FEATURE_INFO["vgg16"]
TAP_CHANNELS = (64, 128, 256, 512, 512)  # vgg16, fine -> coarse
TAP_STRIDES = (2, 4, 8, 16, 32)
GRID = 64


def AdapterCC2D(net, bb, n_landmarks, adapter_channels):
    return CC2D(net, bb, AdapterBlocks(n_landmarks=n_landmarks, extra=adapter_channels))


def AdapterDecoder(net, k, a):
    return Decoder(net, TAPS, AdapterBlocks(n_landmarks=k, extra=a))


# -- the closed form, an oracle independent of the module code ----------------------------------
# conv weights (decoder convs have no bias), BN affine parameters, 1x1 heads' weights and biases.

def _conv_bn(c_in: int, c_out: int, kh: int, kw: int) -> int:
    return c_in * c_out * kh * kw + 2 * c_out


def _rfb(c_in: int, c_out: int) -> int:
    c_b = max(c_out // 4, 1)
    n = _conv_bn(c_in, c_b, 1, 1)
    for k in (1, 2, 3):
        s = 2 * k + 1
        n += _conv_bn(c_in, c_b, 1, 1) + _conv_bn(c_b, c_b, 1, s) + _conv_bn(c_b, c_b, s, 1) + _conv_bn(c_b, c_b, 3, 3)
    return n + _conv_bn(4 * c_b, c_out, 3, 3) + _conv_bn(c_in, c_out, 1, 1)


def decoder_parameter_breakdown(net: NetConfig, tap_channels, k: int, a: int) -> dict[str, int]:
    chans = tuple(reversed(tap_channels))
    widths = tuple(w + net.extra_channels for w in net.decoder_widths)
    shared = adapters = 0
    lateral_out = []
    for i, c in enumerate(chans):
        if i < N_RFB:
            if net.use_rfb:
                shared += _rfb(c, widths[i])
                adapters += k * _rfb(c, a) if a else 0
            else:
                shared += _conv_bn(c, widths[i], 3, 3)
                adapters += k * _conv_bn(c, a, 3, 3)
            lateral_out.append(widths[i] + a)
        else:
            lateral_out.append(c)
    for i in range(1, len(chans)):
        c_in = widths[i - 1] + a + lateral_out[i]
        shared += _conv_bn(c_in, widths[i], 3, 3) + _conv_bn(widths[i] + a, widths[i], 3, 3)
        adapters += k * (_conv_bn(c_in, a, 3, 3) + _conv_bn(widths[i] + a, a, 3, 3))
    shared += sum((w + a) * net.embed_dim + net.embed_dim for w in widths)
    return {"shared": shared, "adapters": adapters}


def decoder_parameter_formula(net, tap_channels, k, a) -> int:
    return sum(decoder_parameter_breakdown(net, tap_channels, k, a).values())


def backbone_parameter_formula(arch: str) -> int:
    n, c_in = 0, 3
    for v in vgg_module.cfgs[{"vgg16": "D", "vgg19": "E"}[arch]]:
        if v != "M":
            n, c_in = n + c_in * v * 9 + v, v
    return n


def _taps(batch: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, c, GRID // s, GRID // s, generator=g) for c, s in zip(TAP_CHANNELS, TAP_STRIDES)]


def _decoder(k=3, a=4, net=NET, seed=0) -> Decoder:
    torch.manual_seed(seed)
    return AdapterDecoder(net, k, a)


def _landmark_modules(module):
    return [m for m in module.modules() if isinstance(m, (LandmarkConv2d, LandmarkBatchNorm2d))]


# -- primitives --------------------------------------------------------------------------------

def test_landmark_conv_equals_per_sample_conv():
    torch.manual_seed(0)
    conv = LandmarkConv2d(3, 5, 4, (1, 5), dilation=1)
    conv3 = LandmarkConv2d(3, 5, 4, 3, dilation=3)
    x, ids = torch.rand(4, 5, 7, 6), torch.tensor([2, 0, 2, 1])
    for c in (conv, conv3):
        y = c(x, ids)
        assert y.shape == (4, 4, 7, 6)
        for b in range(4):
            ref = F.conv2d(x[b:b + 1], c.weight[ids[b]], padding=c.padding, dilation=c.dilation)
            torch.testing.assert_close(y[b:b + 1], ref, rtol=1e-5, atol=1e-5)


def test_landmark_conv_paths_give_per_sample_values_and_gradients():
    """Training (the grouped conv, NHWC on the CPU) and one landmark for the batch in eval (a plain
    conv): the values and both gradients of a conv per sample."""
    torch.manual_seed(0)
    for ids, train in ((torch.tensor([2, 0, 2, 1]), True), (torch.tensor([1, 1, 1, 1]), True),
                       (torch.tensor([1, 1, 1, 1]), False), (torch.tensor([2]), False)):
        conv = LandmarkConv2d(3, 5, 4, 3, dilation=2).train(train)
        x = torch.rand(len(ids), 5, 9, 8, requires_grad=True)
        up = torch.rand(len(ids), 4, 9, 8)  # a fixed upstream gradient
        (conv(x, ids) * up).sum().backward()
        xr = x.detach().clone().requires_grad_()
        wr = conv.weight.detach().clone().requires_grad_()
        ref = torch.cat([F.conv2d(xr[b:b + 1], wr[ids[b]], padding=conv.padding, dilation=2) for b in range(len(ids))])
        (ref * up).sum().backward()
        torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(conv.weight.grad, wr.grad, rtol=1e-5, atol=1e-5)
        absent = [k for k in range(3) if k not in ids.tolist()]
        assert all(torch.equal(conv.weight.grad[k], torch.zeros_like(conv.weight.grad[k])) for k in absent)


def test_landmark_conv_in_training_is_bitwise_the_same_whatever_the_batch_split():
    """Data parallel: ranks with half the batch each must compute per sample what one process
    computes on all of it, bitwise, or the rounding grows over the steps (tests/test_distributed.py).
    A batch of 4 and its halves (each half one landmark, which in eval would take the plain conv):
    the outputs, a per-sample reduction over them, the input gradients, the summed weight gradients."""
    torch.manual_seed(0)
    conv = LandmarkConv2d(2, 32, 4, 3)
    x, ids, up = torch.randn(4, 32, 12, 12), torch.tensor([0, 0, 1, 1]), torch.randn(4, 4, 12, 12)

    def run(rows):
        xi = x[rows].clone().requires_grad_()
        conv.weight.grad = None
        y = conv(xi, ids[rows])
        (y * up[rows]).sum().backward()
        return y.detach(), y.detach().sum((2, 3)), xi.grad, conv.weight.grad.clone()

    whole, halves = run(slice(0, 4)), [run(slice(0, 2)), run(slice(2, 4))]
    for i in range(3):
        assert torch.equal(whole[i], torch.cat([h[i] for h in halves])), i
    assert torch.equal(whole[3], halves[0][3] + halves[1][3])


def test_landmark_batchnorm_equals_batchnorm_of_each_landmark_subbatch():
    torch.manual_seed(0)
    bn = LandmarkBatchNorm2d(4, 3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    x, ids = torch.randn(6, 3, 5, 5) * 3 + 1, torch.tensor([1, 3, 1, 1, 3, 0])
    y = bn(x, ids)
    for k in (0, 1, 3):
        ref_bn = nn.BatchNorm2d(3)
        with torch.no_grad():
            ref_bn.weight.copy_(bn.weight[k])
            ref_bn.bias.copy_(bn.bias[k])
        sel = ids == k
        torch.testing.assert_close(y[sel], ref_bn(x[sel]), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn.running_mean[k], ref_bn.running_mean)
        torch.testing.assert_close(bn.running_var[k], ref_bn.running_var)
    # landmark 2 is absent: its running statistics are untouched
    assert torch.equal(bn.running_mean[2], torch.zeros(3)) and torch.equal(bn.running_var[2], torch.ones(3))
    assert bn.num_batches_tracked.tolist() == [1, 1, 0, 1]
    bn.eval()
    y_eval = bn(x, ids)
    ref = (x - bn.running_mean[ids][..., None, None]) / torch.sqrt(bn.running_var[ids][..., None, None] + bn.eps)
    ref = ref * bn.weight[ids][..., None, None] + bn.bias[ids][..., None, None]
    torch.testing.assert_close(y_eval, ref)


# -- the model ---------------------------------------------------------------------------------

def test_mixed_landmark_batch_shapes():
    model = AdapterCC2D(NET, BB, n_landmarks=3, adapter_channels=4)
    assert model.n_landmarks == 3 and model.strides == (32, 16, 8, 4, 2)
    out = model(torch.rand(4, 1, GRID, GRID), landmark_ids=torch.tensor([0, 2, 1, 2]))
    assert [tuple(o.shape) for o in out] == [(4, 8, GRID // s, GRID // s) for s in (32, 16, 8, 4, 2)]
    # one int is used for the whole batch
    assert model(torch.rand(2, 1, GRID, GRID), landmark_ids=1)[0].shape == (2, 8, 2, 2)
    # every layer emits w + C_A channels: the heads read 16 + 4
    assert all(h.in_channels == 20 for h in model.decoder.heads)


@pytest.mark.parametrize("use_rfb", [True, False])
def test_absent_adapter_gets_exactly_zero_gradient(use_rfb):
    dec = _decoder(k=3, a=4, net=dataclasses.replace(NET, use_rfb=use_rfb))
    out = dec(_taps(3), torch.tensor([1, 1, 1]))
    sum(o.square().mean() for o in out).backward()
    mods = _landmark_modules(dec)
    assert len(mods) == (2 * 15 if use_rfb else 2) * 3 + 2 * 2 * 4  # conv+bn per layer
    for m in mods:
        for name in ("weight",) + (("bias",) if isinstance(m, LandmarkBatchNorm2d) else ()):
            grad = getattr(m, name).grad
            assert grad is not None
            assert torch.count_nonzero(grad[0]) == 0 and torch.count_nonzero(grad[2]) == 0, (m, name)
    assert any(torch.count_nonzero(m.weight.grad[1]) > 0 for m in mods)
    # the shared layers learn too
    assert dec.heads[0].weight.grad.abs().sum() > 0


def test_sample_output_does_not_depend_on_other_landmarks_in_eval():
    dec = _decoder(k=3, a=4)
    taps, ids = _taps(4), torch.tensor([2, 0, 2, 1])
    dec.train()
    with torch.no_grad():  # make the running statistics differ between landmarks
        for seed in (1, 2):
            dec(_taps(6, seed), torch.tensor([0, 0, 1, 1, 2, 2]))
    dec.eval()
    with torch.no_grad():
        mixed = dec(taps, ids)
        only2 = dec([t[[0, 2]] for t in taps], torch.tensor([2, 2]))
        alone1 = dec([t[[3]] for t in taps], torch.tensor([1]))
        as0 = dec([t[[3]] for t in taps], torch.tensor([0]))
    for m, o2, o1, z in zip(mixed, only2, alone1, as0):
        torch.testing.assert_close(m[[0, 2]], o2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m[[3]], o1, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(alone1[-1], as0[-1])  # the adapter does change the output


def test_zero_adapter_channels_is_the_shared_decoder():
    torch.manual_seed(0)
    ref = Decoder(NET, TAPS)
    dec = _decoder(k=19, a=0, seed=1)
    assert dec.blocks.extra == 0
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in dec.state_dict().items()} == ref_shapes
    assert [n for n, _ in dec.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert count_parameters(dec) == count_parameters(ref)
    dec.load_state_dict(ref.state_dict())
    taps = _taps(2)
    for mode in (True, False):
        ref.train(mode)
        dec.train(mode)
        for a, b in zip(dec([t.clone() for t in taps], None), ref([t.clone() for t in taps])):
            assert torch.equal(a, b)
    model = AdapterCC2D(NET, BB, n_landmarks=5, adapter_channels=0)
    assert model.n_landmarks == 0
    assert model(torch.rand(1, 1, GRID, GRID))[0].shape == (1, 8, 2, 2)  # landmark_ids optional


@pytest.mark.parametrize("k,a,widths,use_rfb,extra", [
    (3, 4, (16, 16, 16, 16, 16), True, 0),
    (19, 8, (16, 16, 16, 16, 16), True, 0),
    (2, 1, (24, 16, 12, 8, 8), True, 0),
    (5, 16, (16, 16, 8, 8, 8), False, 0),
    (4, 3, (8, 8, 8, 8, 8), True, 5),
    (7, 0, (16, 16, 16, 16, 16), True, 16),
])
def test_parameter_count_matches_closed_form(k, a, widths, use_rfb, extra):
    net = NetConfig(embed_dim=8, decoder_widths=widths, use_rfb=use_rfb, extra_channels=extra)
    dec = AdapterDecoder(net, k, a)
    assert count_parameters(dec) == decoder_parameter_formula(net, TAP_CHANNELS, k, a)
    parts = decoder_parameter_breakdown(net, TAP_CHANNELS, k, a)
    assert parts["adapters"] == sum(p.numel() for m in _landmark_modules(dec) for p in m.parameters())
    counted = parameter_counts(net, "vgg16", AdapterBlocks(n_landmarks=k, extra=a))  # built on the meta device
    assert (counted["shared"], counted["adapters"]) == (parts["shared"], parts["adapters"])
    if a == 0:
        assert parts["adapters"] == 0
        assert count_parameters(Decoder(net, TAPS)) == parts["shared"] == parameter_counts(net, "vgg16")["total"]


def test_model_trainable_count_and_backbone_formula():
    model = AdapterCC2D(NET, BB, n_landmarks=3, adapter_channels=4)
    assert trainable_parameter_count(model) == decoder_parameter_formula(NET, model.backbone.channels, 3, 4)
    assert count_parameters(model.backbone) == backbone_parameter_formula("vgg16") == backbone_parameter_count("vgg16")
    assert count_parameters(model.backbone, trainable_only=True) == 0
    assert trainable_parameter_count(CC2D(NET, BB)) == decoder_parameter_formula(NET, TAP_CHANNELS, 3, 0)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    a = AdapterCC2D(NET, BB, n_landmarks=3, adapter_channels=4)
    torch.manual_seed(0)
    b = AdapterCC2D(NET, BB, n_landmarks=3, adapter_channels=4)  # same backbone and init as a
    opt = torch.optim.SGD(a.trainable_parameters(), lr=0.1)
    images, ids = torch.rand(3, 1, GRID, GRID), torch.tensor([0, 2, 2])
    for _ in range(1):
        opt.zero_grad()
        sum(o.square().mean() for o in a(images, landmark_ids=ids)).backward()
        opt.step()
    state = a.trainable_state_dict()
    assert not any(k.startswith("backbone") for k in state)
    assert "lateral.0.adapter.shortcut.bn.running_mean" in state
    torch.save(state, tmp_path / "ckpt.pt")
    a.eval()
    b.eval()
    with torch.no_grad():
        before = b(images, landmark_ids=ids)
        want = a(images, landmark_ids=ids)
        assert not torch.allclose(before[-1], want[-1])
        b.load_trainable_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True))
        got = b(images, landmark_ids=ids)
    for x, y in zip(got, want):
        assert torch.equal(x, y)


def test_landmark_ids_missing_or_out_of_range():
    model = AdapterCC2D(NET, BB, n_landmarks=3, adapter_channels=4)
    images = torch.rand(2, 1, GRID, GRID)
    with pytest.raises(ValueError, match="landmark_ids is required.*None"):
        model(images)
    with pytest.raises(ValueError, match=r"\[0, 3\).*landmark id 7"):
        model(images, landmark_ids=torch.tensor([1, 7]))
    with pytest.raises(ValueError, match="landmark id -1"):
        model(images, landmark_ids=[-1, 0])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        model(images, landmark_ids=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integers"):
        check_landmark_ids(torch.tensor([0.0, 1.0]), 2, 3)
    dec = _decoder(k=3, a=4)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        dec(_taps(2), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="landmark id 3"):
        dec(_taps(2), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="adapter_channels"):
        AdapterDecoder(NET, 3, -1)


def test_build_model_dispatch():
    cfg = preset("smoke").replace(**{"net.decoder_widths": (16, 16, 16, 16, 16), "net.embed_dim": 8})
    for name in ("cc2d", "multi", "sla", "atd", "wide"):
        m = METHODS[name].build_model(cfg.replace(**{"method.name": name}), 5)
        assert type(m.decoder.blocks) is PlainBlocks and m.n_landmarks == 0
    m = METHODS["adapter"].build_model(cfg.replace(**{"method.name": "adapter", "method.adapter_channels": 2}), 5)
    assert m.n_landmarks == 5 and m.decoder.blocks.extra == 2
    with pytest.raises(ValueError, match="method.name='nope'"):  # refused when the config is built
        method_spec(dataclasses.replace(cfg, method=MethodConfig(name="nope")))


# -- accounting ----------------------------------------------------------------------------------

def test_parameter_table():
    cfg = preset("paper")
    df = parameter_table(cfg, 19)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns[:4]) == ["method", "models", "trainable_params", "backbone_params"]
    assert len(df) == 8
    cc2d = df.trainable_params[0]
    assert cc2d == decoder_parameter_formula(cfg.net, TAP_CHANNELS, 19, 0)
    assert df.trainable_params[1] == 19 * cc2d and df.models[1] == 19
    adapters = df[df.method.str.startswith("C-Adapter")].trainable_params.tolist()
    assert len(adapters) == 4 and adapters == sorted(adapters) and adapters[0] > cc2d
    assert adapters[-1] < 19 * cc2d
    assert (df.backbone_params == backbone_parameter_formula("vgg19")).all()
    wide = df[df.method.str.startswith("Wide")]
    assert wide.method.tolist() == ["Wide (extra_channels=16)", "Wide (extra_channels=304)"]


def test_training_memory_is_measured():
    torch.manual_seed(0)
    shared = AdapterCC2D(NET, BB, n_landmarks=3, adapter_channels=0)
    adapter = AdapterCC2D(NET, BB, n_landmarks=3, adapter_channels=8)
    m0 = training_memory_mb(shared, GRID, batch_size=2)
    m1 = training_memory_mb(adapter, GRID, batch_size=2)
    assert 0 < m0 < m1
    assert training_memory_mb(shared, GRID, batch_size=4) > 1.5 * m0  # activations grow with the batch
    assert all(p.grad is None for p in adapter.trainable_parameters())

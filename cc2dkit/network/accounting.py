"""Parameter and memory accounting for CC2D, SLA, the C-Adapter and the widened ablations.

- ``count_parameters`` / ``trainable_parameter_count``: counts of a built module.
- ``decoder_parameter_formula``: the trainable parameter count of the (adapter) decoder in closed
  form from the layer sizes, independent of the module code (the tests check both agree). It
  counts conv weights (decoder convs have no bias), BN affine parameters (weight and bias; running
  statistics are buffers, not parameters) and the 1x1 heads' weights and biases.
- ``parameter_table``: CC2D vs 19 SLA models vs C-Adapter (C_A 4, 8, 16, 32) vs the widened
  decoders, without building any model.
- ``peak_memory_mb``: measured peak extra memory of one forward + backward.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pandas as pd
import torch
import torch.nn as nn
from torchvision.models import vgg as vgg_module

from ..backbone import FEATURE_INFO
from ..config import Config, NetConfig
from .adapter import check_landmark_ids
from .decoder import N_RFB

ADAPTER_CHANNELS_TABLE = (4, 8, 16, 32)
_VGG_LAYOUT = {"vgg16": "D", "vgg19": "E"}  # torchvision's names of the VGG layer layouts


# -- counting built modules ------------------------------------------------------------------

def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``module`` (only those requiring grad if ``trainable_only``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def trainable_parameter_count(model: nn.Module) -> int:
    """Elements of what the optimizer trains: ``model.trainable_parameters()`` if it has it."""
    params: Iterable[torch.Tensor]
    params = model.trainable_parameters() if hasattr(model, "trainable_parameters") else model.parameters()
    return sum(p.numel() for p in params if p.requires_grad)


# -- closed form -----------------------------------------------------------------------------

def _conv_bn(c_in: int, c_out: int, kh: int, kw: int) -> int:
    """conv weight (no bias) + BN weight and bias."""
    return c_in * c_out * kh * kw + 2 * c_out


def _rfb(c_in: int, c_out: int) -> int:
    c_b = max(c_out // 4, 1)
    n = _conv_bn(c_in, c_b, 1, 1)  # branch 0
    for k in (1, 2, 3):
        s = 2 * k + 1
        n += _conv_bn(c_in, c_b, 1, 1) + _conv_bn(c_b, c_b, 1, s) + _conv_bn(c_b, c_b, s, 1) + _conv_bn(c_b, c_b, 3, 3)
    n += _conv_bn(4 * c_b, c_out, 3, 3)  # fuse
    n += _conv_bn(c_in, c_out, 1, 1)  # shortcut
    return n


def decoder_parameter_breakdown(net: NetConfig, tap_channels: tuple[int, ...], n_landmarks: int,
                                adapter_channels: int) -> dict[str, int]:
    """Trainable parameters of the decoder split into ``shared`` (incl. heads) and ``adapters``.

    ``tap_channels``: the backbone taps fine -> coarse (as ``FrozenVGG.channels``). With
    ``adapter_channels == 0`` this is the plain ``CC2DDecoder``.
    """
    a, k = adapter_channels, n_landmarks
    chans = tuple(reversed(tap_channels))  # coarse -> fine
    widths = tuple(w + net.extra_channels for w in net.decoder_widths)
    if len(widths) != len(chans):
        raise ValueError(f"net.decoder_widths has {len(widths)} entries, the backbone has {len(chans)} taps")
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
    shared += sum((w + a) * net.embed_dim + net.embed_dim for w in widths)  # 1x1 heads
    return {"shared": shared, "adapters": adapters}


def decoder_parameter_formula(net: NetConfig, tap_channels: tuple[int, ...], n_landmarks: int,
                              adapter_channels: int) -> int:
    """Closed-form trainable parameter count of the CC2D decoder (C_A = 0) or the adapter decoder."""
    b = decoder_parameter_breakdown(net, tap_channels, n_landmarks, adapter_channels)
    return b["shared"] + b["adapters"]


def backbone_parameter_formula(arch: str) -> int:
    """Parameters of the frozen VGG ``features`` (3x3 convs with bias) up to its last tap."""
    if arch not in _VGG_LAYOUT:
        raise ValueError(f"unknown backbone arch {arch!r}; choose one of {sorted(_VGG_LAYOUT)}")
    n, c_in = 0, 3
    for v in vgg_module.cfgs[_VGG_LAYOUT[arch]]:
        if v == "M":
            continue
        n += c_in * v * 9 + v
        c_in = v
    return n


def parameter_table(cfg: Config, n_landmarks: int) -> pd.DataFrame:
    """Compare the methods' trainable parameters (closed form; nothing is built).

    Rows: CC2D (1 model); SLA (``n_landmarks`` CC2D decoders); C-Adapter with C_A 4, 8, 16, 32
    (1 model); the widened ablation decoders with extra_channels 16 and 16 x ``n_landmarks``.
    ``cfg.net.extra_channels`` is ignored (each row sets its own). The frozen backbone is shared by
    all models of a method and counted once (``backbone_params``).
    """
    taps = tuple(t.channels for t in FEATURE_INFO[cfg.backbone.arch])
    base = dataclasses.replace(cfg.net, extra_channels=0)
    cc2d = decoder_parameter_formula(base, taps, n_landmarks, 0)
    rows = [("CC2D", 1, cc2d), (f"SLA ({n_landmarks} models)", n_landmarks, n_landmarks * cc2d)]
    for a in ADAPTER_CHANNELS_TABLE:
        rows.append((f"C-Adapter (C_A={a})", 1, decoder_parameter_formula(base, taps, n_landmarks, a)))
    for extra in (16, 16 * n_landmarks):
        wide = dataclasses.replace(base, extra_channels=extra)
        rows.append((f"Wide (extra_channels={extra})", 1, decoder_parameter_formula(wide, taps, n_landmarks, 0)))
    backbone = backbone_parameter_formula(cfg.backbone.arch)
    df = pd.DataFrame(rows, columns=["method", "models", "trainable_params"])
    df["backbone_params"] = backbone
    df["relative_to_cc2d"] = df["trainable_params"] / cc2d
    return df


# -- memory ----------------------------------------------------------------------------------

def peak_memory_mb(model: nn.Module, grid: int, batch_size: int = 1, landmark_ids=None,
                   include_backbone: bool = False, device: str | torch.device = "cpu") -> float:
    """Peak extra memory (MiB) of one forward + backward of ``model`` at ``grid`` x ``grid``.

    What it measures: the highest value, during one forward pass and the backward of a scalar
    loss (the sum of the squared embeddings' means), of the bytes allocated by PyTorch's allocator
    minus the bytes freed since the start of the measurement. Parameters, the input and any
    tensor alive before the start are excluded; activations saved for backward, temporaries and
    the parameter gradients created by the backward are included. With ``include_backbone=False``
    (default) the frozen backbone's features are computed before the measurement so only the
    trainable decoder is measured (the backbone runs under ``no_grad`` and is the same for all
    methods); with ``True`` the whole ``model(images)`` call is measured.

    On CUDA this is ``torch.cuda.max_memory_allocated`` minus the allocation at the start. On the
    CPU it is the running sum of the allocation/free events recorded by ``torch.profiler`` with
    ``profile_memory=True`` (exact allocator bytes, no caching allocator on the CPU). The model is
    put in training mode and its gradients are cleared (set to None) before and after.
    """
    device = torch.device(device)
    model = model.to(device)
    model.train()
    model.zero_grad(set_to_none=True)
    images = torch.rand(batch_size, 1, grid, grid, device=device)
    n_adapters = getattr(model, "n_adapters", 0)
    ids = None
    if n_adapters:  # default: landmarks 0, 1, ... cycled over the batch
        if landmark_ids is None:
            landmark_ids = torch.arange(batch_size, device=device) % n_adapters
        ids = check_landmark_ids(landmark_ids, batch_size, n_adapters, device)
    extra = (ids,) if n_adapters else ()
    taps = None if include_backbone else [t.detach() for t in model.backbone(images)]

    def step() -> None:
        if include_backbone:
            out = model(images, landmark_ids=ids) if n_adapters else model(images)
        else:
            out = model.decoder(taps, *extra)
        loss = sum(o.square().mean() for o in out)
        loss.backward()

    try:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            step()
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) - start
        else:
            peak = _cpu_peak_bytes(step)
    finally:
        model.zero_grad(set_to_none=True)
    return peak / 2**20


def _cpu_peak_bytes(fn) -> int:
    """Peak of the running sum of CPU allocations minus frees recorded while ``fn()`` runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return peak

"""Parameter and memory accounting of the methods' networks, counted from the modules themselves.

- :func:`parameter_counts`: trainable parameters of a decoder of any block kind, split into
  shared and landmark-specific (adapter) parts, counted on a decoder built on the ``meta`` device
  (no memory, no weights).
- :func:`parameter_table`: CC2D vs K SLA models vs C-Adapter (C_A 4, 8, 16, 32) vs the widened
  decoders.
- :func:`training_memory_mb`: memory one training forward + backward holds.
"""
from __future__ import annotations

import dataclasses

import pandas as pd
import torch
import torch.nn as nn

from ..backbone import FEATURE_INFO, vgg_layers
from ..config import Config, NetConfig
from .blocks import AdapterBlocks, LandmarkBatchNorm2d, LandmarkConv2d, PlainBlocks
from .decoder import Decoder
from .model import CC2D

ADAPTER_CHANNELS_TABLE = (4, 8, 16, 32)
META = torch.device("meta")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``module`` (only those requiring grad if ``trainable_only``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def trainable_parameter_count(model: CC2D) -> int:
    """Elements of what the optimizer trains (the decoder; the backbone is frozen)."""
    return sum(p.numel() for p in model.trainable_parameters() if p.requires_grad)


def parameter_counts(net: NetConfig, arch: str, blocks: PlainBlocks = PlainBlocks()) -> dict[str, int]:
    """Trainable parameters of a decoder: ``shared`` (heads included), ``adapters`` and ``total``."""
    with META:
        decoder = Decoder(net, FEATURE_INFO[arch], blocks)
    adapters = sum(p.numel() for m in decoder.modules() if isinstance(m, (LandmarkConv2d, LandmarkBatchNorm2d))
                   for p in m.parameters(recurse=False))
    total = count_parameters(decoder)
    return {"shared": total - adapters, "adapters": adapters, "total": total}


def backbone_parameter_count(arch: str) -> int:
    """Parameters of the frozen VGG ``features`` up to its last tap."""
    from torchvision.models import vgg as vgg_module

    with META:
        return count_parameters(vgg_module.make_layers(vgg_layers(arch)))


def parameter_table(cfg: Config, n_landmarks: int) -> pd.DataFrame:
    """Trainable parameters of the methods' networks at ``cfg``'s widths (nothing is trained).

    Rows: CC2D (1 model); SLA (``n_landmarks`` CC2D models); C-Adapter with C_A 4, 8, 16, 32 (1
    model); the widened decoders with extra_channels 16 and 16 x ``n_landmarks``.
    ``cfg.net.extra_channels`` is ignored (each row sets its own). The frozen backbone is shared by
    all models of a method and counted once (``backbone_params``).
    """
    arch, base = cfg.backbone.arch, dataclasses.replace(cfg.net, extra_channels=0)
    cc2d = parameter_counts(base, arch)["total"]
    rows = [("CC2D", 1, cc2d), (f"SLA ({n_landmarks} models)", n_landmarks, n_landmarks * cc2d)]
    for a in ADAPTER_CHANNELS_TABLE:
        rows.append((f"C-Adapter (C_A={a})", 1, parameter_counts(base, arch, AdapterBlocks(n_landmarks=n_landmarks, extra=a))["total"]))
    for extra in (16, 16 * n_landmarks):
        wide = dataclasses.replace(base, extra_channels=extra)
        rows.append((f"Wide (extra_channels={extra})", 1, parameter_counts(wide, arch)["total"]))
    df = pd.DataFrame(rows, columns=["method", "models", "trainable_params"])
    df["backbone_params"] = backbone_parameter_count(arch)
    df["relative_to_cc2d"] = df["trainable_params"] / cc2d
    return df


def training_memory_mb(model: CC2D, grid: int, batch_size: int = 1, include_backbone: bool = False,
                       device: str | torch.device = "cpu") -> float:
    """Memory (MiB) one training forward + backward of ``model`` at ``grid`` x ``grid`` holds.

    On CUDA: the allocator's peak (``torch.cuda.max_memory_allocated``) minus what was allocated
    before. Elsewhere (no allocator statistics): the tensors autograd saves for the backward
    (unique storages, counted through ``torch.autograd.graph.saved_tensors_hooks``) plus the
    parameter gradients, the two things that grow with the network and the batch. The loss is the
    sum of the embeddings' mean squares; landmark-specific models get landmarks 0, 1, ... cycled
    over the batch. ``include_backbone=False``: the frozen features are computed before and only
    the decoder is measured (the backbone runs without gradients, the same for every method).
    """
    device = torch.device(device)
    model = model.to(device).train()
    model.zero_grad(set_to_none=True)
    images = torch.rand(batch_size, 1, grid, grid, device=device)
    ids = torch.arange(batch_size, device=device) % model.n_landmarks if model.n_landmarks else None
    taps = None if include_backbone else [t.detach() for t in model.backbone(images)]
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    def step() -> None:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(images, landmark_ids=ids) if include_backbone else model.decoder(taps, ids)
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
            step()
            grads = sum(p.grad.numel() * p.grad.element_size() for p in model.trainable_parameters()
                        if p.grad is not None)
            peak = sum(saved.values()) + grads
    finally:
        model.zero_grad(set_to_none=True)
    return peak / 2**20

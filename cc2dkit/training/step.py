"""One self-supervised CC2D optimisation step on a :class:`PatchBatch`.

Mixed precision (``train.amp``): the forward passes run under ``torch.autocast`` in bfloat16
(no loss scaling needed); the loss is computed in float32 from the embeddings.

Channels-last (``train.channels_last``): the network's 4-D weights and the step's inputs are laid out
NHWC, the layout tensor-core convolutions prefer on CUDA. Only the memory layout changes, not the
values: a step gives the same result either way, to float tolerance.
"""
from __future__ import annotations

import contextlib

import torch

from ..config import TrainConfig
from ..network import CC2D
from .loss import cc2d_loss
from .patches import PatchBatch


AMP_MODES = ("auto", "bf16", "off")


def autocast(cfg: TrainConfig, device: torch.device):
    """The autocast context of ``cfg.amp`` on ``device`` ("auto": bf16 on CUDA, off elsewhere)."""
    if cfg.amp not in AMP_MODES:
        raise ValueError(f"train.amp must be one of {AMP_MODES}, got {cfg.amp!r}")
    mode = ("bf16" if device.type == "cuda" else "off") if cfg.amp == "auto" else cfg.amp
    if mode == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def memory_format(cfg: TrainConfig, device: torch.device) -> torch.memory_format:
    """The layout of ``cfg.channels_last`` on ``device`` (None: channels-last on CUDA, NCHW elsewhere)."""
    on = device.type == "cuda" if cfg.channels_last is None else bool(cfg.channels_last)
    return torch.channels_last if on else torch.contiguous_format


def use_memory_format(module: torch.nn.Module, fmt: torch.memory_format) -> None:
    """Lay out ``module``'s 4-D parameters in ``fmt``, in place (those already in it are left alone)."""
    for p in module.parameters():
        if p.dim() == 4 and not p.is_contiguous(memory_format=fmt):
            p.data = p.data.contiguous(memory_format=fmt)


def ssl_step(model: CC2D, batch: PatchBatch, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
             device: torch.device) -> tuple[float, list[float]]:
    """Image and augmented patch through the same network; the loss of ``loss.py``; one update."""
    model.train()
    fmt = memory_format(cfg, device)
    use_memory_format(model, fmt)
    images = batch.images.to(device, memory_format=fmt)
    patches = batch.patches.to(device, memory_format=fmt)
    ids = None if batch.landmark_ids is None else batch.landmark_ids.to(device)
    with autocast(cfg, device):
        img_embs = model(images, keys=batch.keys, landmark_ids=ids)  # [(B, D, G/s, G/s)]
        patch_embs = model(patches, landmark_ids=ids)  # [(B, D, P/s, P/s)]
    img_embs, patch_embs = [e.float() for e in img_embs], [e.float() for e in patch_embs]
    loss, parts = cc2d_loss(img_embs, patch_embs, batch.image_points.to(device), batch.patch_points.to(device),
                            model.strides, patches.shape[-1], cfg.temperature, cfg.window)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), parts

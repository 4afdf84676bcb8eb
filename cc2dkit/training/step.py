"""One self-supervised CC2D optimisation step on a :class:`PatchBatch`.

Mixed precision (``train.amp``): the forward passes run under ``torch.autocast`` in bfloat16
(no loss scaling needed); the loss is computed in float32 from the embeddings.
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


def ssl_step(model: CC2D, batch: PatchBatch, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
             device: torch.device) -> tuple[float, list[float]]:
    """Image and augmented patch through the same network; the loss of ``loss.py``; one update."""
    model.train()
    images = batch.images.to(device)
    patches = batch.patches.to(device)
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

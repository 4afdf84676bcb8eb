"""One self-supervised CC2D optimisation step on a :class:`PatchBatch`."""
from __future__ import annotations

import torch

from ..config import TrainConfig
from ..network import CC2D
from .loss import cc2d_loss
from .patches import PatchBatch


def ssl_step(model: CC2D, batch: PatchBatch, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
             device: torch.device) -> tuple[float, list[float]]:
    """Image and augmented patch through the same network; the loss of ``loss.py``; one update."""
    model.train()
    images = batch.images.to(device)
    patches = batch.patches.to(device)
    ids = None if batch.landmark_ids is None else batch.landmark_ids.to(device)
    img_embs = model(images, keys=batch.keys, landmark_ids=ids)  # [(B, D, G/s, G/s)]
    patch_embs = model(patches, landmark_ids=ids)  # [(B, D, P/s, P/s)]
    loss, parts = cc2d_loss(img_embs, patch_embs, batch.image_points.to(device), batch.patch_points.to(device),
                            model.strides, patches.shape[-1], cfg.temperature, cfg.window)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), parts

"""One self-supervised optimisation step, of one model or of K models stacked.

The network is anything with ``embed_groups(images, keys, landmark_ids) -> [(K, B, D, h, w)]``
(batch k of K*B model-major images through model k), ``n_models`` (K), ``n_landmarks``,
``decoder``, ``backbone`` and ``strides``: a :class:`~cc2dkit.network.CC2D` (K = 1) or a
:class:`~cc2dkit.network.StackedModels` (K models). Image and augmented patch go through the same
network; each model's loss is CC2D's (``loss.py``); one backward of their sum trains every model
(they share no parameter, and Adam is element-wise, so one Adam over a stack is K Adams).

Mixed precision (``train.amp``): the forward passes run under ``torch.autocast`` in bfloat16 (no
loss scaling needed); the loss is computed in float32 from the embeddings. Channels-last
(``train.channels_last``): the network's 4-D weights and the step's inputs are laid out NHWC, the
layout tensor-core convolutions prefer on CUDA; only the layout changes, not the values. Crops
(``train.crop_below``): the finest decoder stages run only on the cells the loss reads and a margin
(``network.sampling.crop_plan``): the image's windows around each point, the patch's neighbours of
its point.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..config import TrainConfig
from ..distributed import current, sum_over_ranks
from ..network.sampling import crop_plan
from ..runtime import bf16_autocast, use_bf16
from .loss import Walk, cc2d_loss, walk_loss
from .parallel import DataParallel
from .patches import PatchBatch


def autocast(cfg: TrainConfig, device: torch.device):
    """The autocast context of ``cfg.amp`` on ``device``: "auto" is bf16 where the device computes it
    natively (a recent GPU; a CPU with AVX512-BF16 or AMX: two `cpu` preset runs trained so answered
    as their float32 runs, in 0.84x the training-step minutes; RESULTS, twelfth session), float32 elsewhere."""
    return bf16_autocast(use_bf16(cfg.amp, device), device)


def memory_format(cfg: TrainConfig, device: torch.device) -> torch.memory_format:
    """The layout of ``cfg.channels_last`` on ``device`` (None: channels-last on CUDA, NCHW elsewhere)."""
    on = device.type == "cuda" if cfg.channels_last is None else bool(cfg.channels_last)
    return torch.channels_last if on else torch.contiguous_format


def use_memory_format(module: torch.nn.Module, fmt: torch.memory_format) -> None:
    """Lay out ``module``'s 4-D parameters in ``fmt``, in place (those already in it are left alone)."""
    for p in module.parameters():
        if p.dim() == 4 and not p.is_contiguous(memory_format=fmt):
            p.data = p.data.contiguous(memory_format=fmt)


def ssl_step(net, batches: Sequence[PatchBatch], optimizer: torch.optim.Optimizer, cfg: TrainConfig,
             device: torch.device, dp: DataParallel | None = None, walk: Walk | None = None) -> list[float]:
    """One update of ``net`` on ``batches`` (batch k trains model k; one batch for one model).

    Returns the K losses. The batches must have the same size. Their ``landmark_ids`` reach the
    network only when it has landmark-specific weights (the C-Adapter). ``dp``: data-parallel
    training; this rank trains its share of the global ``batches`` and the losses returned are
    those of the global batch. ``walk``: batches that carry partners (``method.pl_walk``) add the
    round trip between each partner and its image (``loss.walk_loss``) to their loss.
    """
    if len(batches) != net.n_models:
        raise ValueError(f"{len(batches)} batches for {net.n_models} model(s): one batch per model")
    if len({len(b.images) for b in batches}) != 1:
        raise ValueError("the stacked models' batches must have the same size")
    mated = {b.partners is not None for b in batches}
    if len(mated) != 1 or (True in mated) != (walk is not None):
        raise ValueError("the round trip (method.pl_walk) needs partners in every batch and its weight, or neither")
    if dp is not None:
        share = dp.share(len(batches[0].images))
        batches = [b.part(share) for b in batches]
    net.train()
    fmt = memory_format(cfg, device)
    use_memory_format(net.decoder, fmt)
    use_memory_format(net.backbone, fmt)
    images = torch.cat([b.images for b in batches]).to(device, memory_format=fmt)  # (K*B, 1, G, G)
    patches = torch.cat([b.patches for b in batches]).to(device, memory_format=fmt)  # (K*B, 1, P, P)
    keys = None if any(b.keys is None for b in batches) else [key for b in batches for key in b.keys]
    ids = torch.cat([b.landmark_ids for b in batches]).to(device) if net.n_landmarks else None
    partners = partner_keys = mate_embs = None
    if walk is not None:
        partners = torch.cat([b.partners for b in batches]).to(device, memory_format=fmt)  # (K*B, 1, G, G)
        partner_keys = None if any(b.partner_keys is None for b in batches) else \
            [key for b in batches for key in b.partner_keys]
    # train.crop_below: the finest stages on the cells the loss reads ({} when None): the image's
    # windows, the patch's bilinear read at its point
    crops = crop_plan(torch.cat([b.image_points for b in batches]).to(device), net.strides, images.shape[-1],
                      cfg.window, cfg.crop_below)
    patch_crops = crop_plan(torch.cat([b.patch_points for b in batches]).to(device), net.strides, patches.shape[-1],
                            1, cfg.crop_below)
    with autocast(cfg, device):
        if dp is not None:  # through DDP: its backward sums the ranks' gradients
            img_embs, patch_embs, mate_embs = dp.module(images, patches, keys, ids, partners, partner_keys, crops,
                                                        patch_crops)
        else:
            img_embs = net.embed_groups(images, keys, ids, crops)  # [(K, B, D, G/s, G/s)]; a crop's (K, B, D, c, c)
            patch_embs = net.embed_groups(patches, None, ids, patch_crops)  # [(K, B, D, P/s, P/s)]
            if partners is not None:
                mate_embs = net.embed_groups(partners, partner_keys, ids)  # [(K, B, D, G/s, G/s)]
    img_embs, patch_embs = [e.float() for e in img_embs], [e.float() for e in patch_embs]
    total, losses = 0.0, []
    for k, b in enumerate(batches):
        loss, _ = cc2d_loss([e[k] for e in img_embs], [e[k] for e in patch_embs], b.image_points.to(device),
                            b.patch_points.to(device), net.strides, patches.shape[-1], cfg.temperature, cfg.window,
                            crops, images.shape[-1], patch_crops)  # crops: one model (a stack refuses them)
        if walk is not None:
            loss = loss + walk_loss([e[k].float() for e in mate_embs], [e[k] for e in img_embs],
                                    b.partner_points.to(device), net.strides, images.shape[-1], cfg.temperature, walk)
        total = total + loss
        losses.append(float(loss.detach()))
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    if dp is not None:  # each rank's loss is the mean over its share: their mean is the global batch's
        return list(sum_over_ranks(np.asarray(losses), current()) / dp.world)
    return losses

"""Batched SLA: training and inference of K single-landmark models through one :class:`StackedDecoder`.

The K models share the frozen backbone (and its feature cache), so one backbone pass serves all of
them: the K batches (one per model, B samples each) go through the backbone as K*B images, and
their taps are laid out per model along the channels, ``(B, K*C, h, w)`` (:func:`stack_taps`).
The CC2D loss (``loss.py``) is computed per model and summed; the K models share no parameter,
so one backward gives every model its own gradient, and since Adam is element-wise one Adam over
the stacked parameters is K separate Adams. For inference all K models embed the *same* query
images: the taps are repeated K times along the channels (:func:`repeat_taps`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backbone import FeatureCache
from ..config import Config, TrainConfig
from ..data.grid import GridImages
from ..inference.cascade import cascade_argmax, similarity_maps, template_vectors
from ..network.stacked import StackedDecoder
from .loss import cc2d_loss
from .patches import PatchBatch
from .step import autocast, memory_format, use_memory_format


def stack_taps(taps: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Taps of K*B images, model-major, [(K*B, C, h, w)] -> [(B, K*C, h, w)] (model k in block k)."""
    out = []
    for t in taps:
        kb, c, h, w = t.shape
        out.append(t.reshape(k, kb // k, c, h, w).transpose(0, 1).reshape(kb // k, k * c, h, w))
    return out


def repeat_taps(taps: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """The same images for every model: [(B, C, h, w)] -> [(B, K*C, h, w)]."""
    return [t.repeat(1, k, 1, 1) for t in taps]


def stacked_ssl_step(cache: FeatureCache, decoder: StackedDecoder, batches: Sequence[PatchBatch],
                     optimizer: torch.optim.Optimizer, cfg: TrainConfig, device: torch.device) -> list[float]:
    """``ssl_step`` of K models at once: ``batches[k]`` trains model k. Returns the K losses.

    ``cache`` gives the frozen features (its ``backbone`` embeds the patches); all batches must
    have the same size. ``landmark_ids`` of the batches are ignored (plain CC2D models). Mixed
    precision (``cfg.amp``) and memory layout (``cfg.channels_last``) as in ``ssl_step``.
    """
    k = decoder.k
    if len(batches) != k:
        raise ValueError(f"{len(batches)} batches for {k} stacked models")
    if len({len(b.keys) for b in batches}) != 1:
        raise ValueError("the stacked models' batches must have the same size")
    decoder.train()
    fmt = memory_format(cfg, device)
    use_memory_format(decoder, fmt)
    use_memory_format(cache.backbone, fmt)
    images = torch.cat([b.images for b in batches]).to(device, memory_format=fmt)  # (K*B, 1, G, G)
    patches = torch.cat([b.patches for b in batches]).to(device, memory_format=fmt)  # (K*B, 1, P, P)
    keys = [key for b in batches for key in b.keys]
    with autocast(cfg, device):  # train.amp, as ssl_step
        img_embs = decoder(stack_taps(cache.features(keys, images), k))  # [(K, B, D, G/s, G/s)]
        patch_embs = decoder(stack_taps(cache.backbone(patches), k))  # [(K, B, D, P/s, P/s)]
    img_embs, patch_embs = [e.float() for e in img_embs], [e.float() for e in patch_embs]
    total, losses = 0.0, []
    for j, b in enumerate(batches):
        loss, _ = cc2d_loss([e[j] for e in img_embs], [e[j] for e in patch_embs], b.image_points.to(device),
                            b.patch_points.to(device), decoder.strides, patches.shape[-1], cfg.temperature,
                            cfg.window)
        total = total + loss
        losses.append(float(loss.detach()))
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return losses


@torch.no_grad()
def stacked_embeddings(cache: FeatureCache, decoder: StackedDecoder, images: torch.Tensor,
                       keys: list | None = None) -> list[torch.Tensor]:
    """The K models' embeddings of the same images (B, 1, G, G) -> [(K, B, D, G/s, G/s)] (eval mode).

    With ``keys`` the frozen features come from the cache, as ``CC2D.forward``.
    """
    decoder.eval()
    taps = cache.features(keys, images) if keys is not None else cache.backbone(images)
    return decoder(repeat_taps(taps, decoder.k))


@torch.no_grad()
def stacked_template_vectors(cache: FeatureCache, decoder: StackedDecoder, image: torch.Tensor,
                             points: np.ndarray, device: torch.device) -> list[torch.Tensor]:
    """Model k's template vector of its landmark ``points[k]`` (K, 2 grid px) -> [(K, D)] per scale.

    Equals ``LandmarkTemplate(model_k, image, points[[k]]).vectors`` stacked over k.
    """
    points = np.asarray(points, dtype=np.float64).reshape(decoder.k, 2)
    if np.isnan(points).any():
        raise ValueError("the template image has no (or incomplete) landmark annotation")
    embs = stacked_embeddings(cache, decoder, image[None].to(device))  # [(K, 1, D, h, w)]
    pts = torch.as_tensor(points, dtype=torch.float32, device=device)
    per_model = [template_vectors([e[j] for e in embs], pts[j:j + 1], image.shape[-1]) for j in range(decoder.k)]
    return [torch.cat(scale) for scale in zip(*per_model)]  # [(K, D)]


@torch.no_grad()
def stacked_infer(cache: FeatureCache, decoder: StackedDecoder, vectors: list[torch.Tensor], data: GridImages,
                  device: torch.device, batch_size: int, image_indices: Sequence[int] | None = None,
                  progress: bool = False) -> np.ndarray:
    """Cascade inference of model k's landmark for every k -> (N, K, 2) grid coordinates.

    ``vectors``: :func:`stacked_template_vectors`. One decoder call per image batch serves the K
    models; equals ``infer_pseudo_labels`` of each model with its single-landmark template.
    """
    rows = list(range(len(data))) if image_indices is None else [int(i) for i in image_indices]
    out, grid = np.zeros((len(rows), decoder.k, 2)), data.images.shape[-1]
    for start in tqdm(range(0, len(rows), batch_size), desc="infer PL", disable=not progress, leave=False):
        chunk = rows[start:start + batch_size]
        embs = stacked_embeddings(cache, decoder, data.images[chunk].to(device), [data.keys[i] for i in chunk])
        for j in range(decoder.k):  # one model at a time: the (S, b, 1, G, G) maps stay small
            maps = similarity_maps([e[j] for e in embs], [v[j:j + 1] for v in vectors], grid)
            out[start:start + len(chunk), j] = cascade_argmax(maps)[:, 0].cpu().double().numpy()  # (b, 2)
    return out


class StackedPredictor:
    """The K stacked models + the template, as a predictor (``predict_grid``, like ``SLASet``)."""

    def __init__(self, cache: FeatureCache, decoder: StackedDecoder, template_image: torch.Tensor,
                 template_points: np.ndarray, device: torch.device, batch_size: int):
        self.cache, self.decoder, self.device, self.batch_size = cache, decoder, device, batch_size
        self.template_image = template_image
        self.template_points = np.asarray(template_points, dtype=np.float64)  # (K, 2) landmark k of model k

    def predict_grid(self, data: GridImages, image_indices: Sequence[int] | None = None,
                     progress: bool = False) -> np.ndarray:
        """(N, K, 2) grid coordinates, model k's landmark in column k."""
        vectors = stacked_template_vectors(self.cache, self.decoder, self.template_image, self.template_points,
                                           self.device)
        return stacked_infer(self.cache, self.decoder, vectors, data, self.device, self.batch_size, image_indices,
                             progress)


def stacked_optimizer(decoder: StackedDecoder, cfg: Config) -> torch.optim.Optimizer:
    """``make_optimizer`` for the K stacked models (Adam is element-wise: K separate Adams)."""
    return torch.optim.Adam(decoder.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)

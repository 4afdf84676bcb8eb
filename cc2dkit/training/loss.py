"""CC2D's multi-scale contrastive loss.

At every scale ``s`` the patch embedding at the point is compared (cosine similarity times a
temperature) with the image embedding at every location; softmax cross-entropy asks for the cell
that contains the same point in the image. At stride 32 the softmax runs over the whole map; at
finer strides over a (2w+1)^2-cell window around the true cell (clipped to the map), as CC2D.

The round trip (``method.pl_walk``, :func:`walk_loss`) compares two *different* images: from an
augmented template's landmark to every cell of an unlabelled image and back, it asks the walk to
come home (a cycle-consistency loss in the manner of a contrastive random walk). No point of the
unlabelled image enters it, so a wrong pseudo-label cannot teach it the wrong place.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.coords import cell_index
from ..network.sampling import Crop, sample_at, sample_in, window_bounds


def scale_loss(img_emb: torch.Tensor, vec: torch.Tensor, image_points: torch.Tensor, stride: int,
               temperature: float, window: int | None, crop: Crop | None = None, size: int | None = None
               ) -> torch.Tensor:
    """Cross-entropy of one scale. img_emb (B, D, h, w); vec (B, D) patch embedding at the point.

    ``crop``: img_emb holds only each sample's square of the full map of a size x size image (the
    decoder's cropped pass, ``train.crop_below``), which contains the window; the same loss."""
    b, d, h, w = img_emb.shape
    full_h, full_w = (h, w) if crop is None else (size // stride, size // stride)
    cells = cell_index(image_points, stride)  # (B, 2) (col, row)
    cells = torch.stack([cells[:, 0].clamp(0, full_w - 1), cells[:, 1].clamp(0, full_h - 1)], dim=1)
    img = F.normalize(img_emb, dim=1)
    vec = F.normalize(vec, dim=1)
    if window is None:
        if crop is not None:
            raise ValueError("the softmax over the whole map cannot read a crop of it")
        logits = torch.einsum("bd,bdn->bn", vec, img.flatten(2))  # (B, h*w)
        target = cells[:, 1] * w + cells[:, 0]
    else:
        sw, sh = min(2 * window + 1, full_w), min(2 * window + 1, full_h)
        x0 = window_bounds(cells[:, 0], window, full_w)
        y0 = window_bounds(cells[:, 1], window, full_h)
        ox, oy = (0, 0) if crop is None else (crop.origins[:, 0], crop.origins[:, 1])
        rows = (y0 - oy)[:, None] + torch.arange(sh, device=img.device)[None]  # (B, sh) rows of img_emb
        cols = (x0 - ox)[:, None] + torch.arange(sw, device=img.device)[None]  # (B, sw)
        flat = (rows[:, :, None] * w + cols[:, None, :]).flatten(1)  # (B, sh*sw)
        win = torch.gather(img.flatten(2), 2, flat[:, None, :].expand(b, d, -1))  # (B, D, sh*sw)
        logits = torch.einsum("bd,bdn->bn", vec, win)
        target = (cells[:, 1] - y0) * sw + (cells[:, 0] - x0)
    return F.cross_entropy(logits * temperature, target)


def cc2d_loss(img_embs: list[torch.Tensor], patch_embs: list[torch.Tensor], image_points: torch.Tensor,
              patch_points: torch.Tensor, strides: tuple[int, ...], patch_size: int, temperature: float,
              window: int, crops: dict[int, Crop] | None = None, image_size: int | None = None,
              patch_crops: dict[int, Crop] | None = None) -> tuple[torch.Tensor, list[float]]:
    """Sum over scales (coarse to fine). Returns the loss and each scale's value. ``crops`` /
    ``patch_crops``: the image / patch embeddings of these strides are crops
    (``network.sampling.crop_plan``) of image_size / patch_size inputs."""
    total, parts, crops, patch_crops = 0.0, [], crops or {}, patch_crops or {}
    for img_emb, patch_emb, stride in zip(img_embs, patch_embs, strides):
        vec = sample_in(patch_emb, patch_points, patch_size, patch_crops.get(stride), stride)  # (B, D)
        win = None if stride == max(strides) else window
        loss = scale_loss(img_emb, vec, image_points, stride, temperature, win, crops.get(stride), image_size)
        total = total + loss
        parts.append(float(loss.detach()))
    return total, parts


@dataclass(frozen=True)
class Walk:
    """The round trip's weight beside the CC2D loss and the finest stride it reads (``method.pl_walk``,
    ``method.pl_walk_stride``)."""

    weight: float
    min_stride: int


def walk_scale_loss(tmpl_emb: torch.Tensor, img_emb: torch.Tensor, tmpl_points: torch.Tensor, stride: int,
                    size: int, temperature: float) -> torch.Tensor:
    """-log P(home) of one scale. tmpl_emb, img_emb (B, D, h, w) of two size x size images; tmpl_points (B, 2).

    P(home) = sum_i P(point -> cell i of the image) P(cell i -> the point's cell of the template), each
    step a softmax of temperature x cosine over the other image's cells."""
    b, d, h, w = tmpl_emb.shape
    tmpl = F.normalize(tmpl_emb, dim=1).flatten(2)  # (B, D, hw)
    img = F.normalize(img_emb, dim=1).flatten(2)  # (B, D, hw)
    vec = F.normalize(sample_at(tmpl_emb, tmpl_points, size), dim=1)  # (B, D)
    there = torch.log_softmax(temperature * torch.einsum("bd,bdn->bn", vec, img), dim=1)  # (B, hw)
    cells = cell_index(tmpl_points, stride)
    home = cells[:, 1].clamp(0, h - 1) * w + cells[:, 0].clamp(0, w - 1)  # (B,)
    back = torch.log_softmax(temperature * torch.einsum("bdn,bdm->bnm", img, tmpl), dim=2)  # (B, hw image, hw template)
    back_home = back.gather(2, home.view(b, 1, 1).expand(b, h * w, 1)).squeeze(2)  # (B, hw image)
    return -torch.logsumexp(there + back_home, dim=1).mean()


def walk_loss(tmpl_embs: list[torch.Tensor], img_embs: list[torch.Tensor], tmpl_points: torch.Tensor,
              strides: tuple[int, ...], size: int, temperature: float, walk: Walk) -> torch.Tensor:
    """``walk.weight`` x the sum of :func:`walk_scale_loss` over the strides >= ``walk.min_stride``
    (the coarse maps, where a landmark is told from its look-alikes; a finer map is (G/s)^4 cells wide)."""
    scales = [(t, i, s) for t, i, s in zip(tmpl_embs, img_embs, strides) if s >= walk.min_stride]
    if not scales:
        raise ValueError(f"method.pl_walk_stride={walk.min_stride} leaves none of the strides {strides}")
    return walk.weight * sum(walk_scale_loss(t, i, tmpl_points, s, size, temperature) for t, i, s in scales)

"""CC2D's multi-scale contrastive loss.

At every scale ``s`` the patch embedding at the point is compared (cosine similarity times a
temperature) with the image embedding at every location; softmax cross-entropy asks for the cell
that contains the same point in the image. At stride 32 the softmax runs over the whole map; at
finer strides over a (2w+1)^2-cell window around the true cell (clipped to the map), as CC2D.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.coords import cell_index
from ..network.sampling import sample_at


def window_bounds(cells: torch.Tensor, half: int, length: int) -> torch.Tensor:
    """Start of a (2*half+1)-long window around ``cells`` clipped to [0, length)."""
    span = min(2 * half + 1, length)
    return (cells - half).clamp(0, length - span)


def scale_loss(img_emb: torch.Tensor, vec: torch.Tensor, image_points: torch.Tensor, stride: int,
               temperature: float, window: int | None) -> torch.Tensor:
    """Cross-entropy of one scale. img_emb (B, D, h, w); vec (B, D) patch embedding at the point."""
    b, d, h, w = img_emb.shape
    cells = cell_index(image_points, stride)  # (B, 2) (col, row)
    cells = torch.stack([cells[:, 0].clamp(0, w - 1), cells[:, 1].clamp(0, h - 1)], dim=1)
    img = F.normalize(img_emb, dim=1)
    vec = F.normalize(vec, dim=1)
    if window is None:
        logits = torch.einsum("bd,bdn->bn", vec, img.flatten(2))  # (B, h*w)
        target = cells[:, 1] * w + cells[:, 0]
    else:
        sw, sh = min(2 * window + 1, w), min(2 * window + 1, h)
        x0 = window_bounds(cells[:, 0], window, w)
        y0 = window_bounds(cells[:, 1], window, h)
        rows = (y0[:, None] + torch.arange(sh, device=img.device)[None])  # (B, sh)
        cols = (x0[:, None] + torch.arange(sw, device=img.device)[None])  # (B, sw)
        flat = (rows[:, :, None] * w + cols[:, None, :]).flatten(1)  # (B, sh*sw)
        win = torch.gather(img.flatten(2), 2, flat[:, None, :].expand(b, d, -1))  # (B, D, sh*sw)
        logits = torch.einsum("bd,bdn->bn", vec, win)
        target = (cells[:, 1] - y0) * sw + (cells[:, 0] - x0)
    return F.cross_entropy(logits * temperature, target)


def cc2d_loss(img_embs: list[torch.Tensor], patch_embs: list[torch.Tensor], image_points: torch.Tensor,
              patch_points: torch.Tensor, strides: tuple[int, ...], patch_size: int, temperature: float,
              window: int) -> tuple[torch.Tensor, list[float]]:
    """Sum over scales (coarse to fine). Returns the loss and each scale's value."""
    total, parts = 0.0, []
    for img_emb, patch_emb, stride in zip(img_embs, patch_embs, strides):
        vec = sample_at(patch_emb, patch_points, patch_size)  # (B, D)
        win = None if stride == max(strides) else window
        loss = scale_loss(img_emb, vec, image_points, stride, temperature, win)
        total = total + loss
        parts.append(float(loss.detach()))
    return total, parts

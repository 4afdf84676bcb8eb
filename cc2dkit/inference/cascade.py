"""Cascade matching: template embeddings vs every query location, 5 scales multiplied, argmax.

For landmark ``l`` the template's embedding at its location is taken at every scale; on a query
image, each scale's cosine map is clamped at 0, upsampled to the grid and the maps are multiplied,
so a coarse scale gates the finer ones. The product's argmax is the prediction (grid pixels).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..training.loss import sample_at


def template_vectors(embs: list[torch.Tensor], points: torch.Tensor, grid: int) -> list[torch.Tensor]:
    """Template embeddings [(1, D, h, w)] and landmarks (L, 2) grid px -> [(L, D)] unit vectors."""
    out = []
    for emb in embs:
        vec = sample_at(emb.expand(points.shape[0], -1, -1, -1), points, grid)  # (L, D)
        out.append(F.normalize(vec, dim=1))
    return out


def similarity_maps(embs: list[torch.Tensor], vectors: list[torch.Tensor], grid: int) -> torch.Tensor:
    """Query embeddings [(B, D, h, w)] x template vectors [(L, D)] -> (S, B, L, G, G) clamped cosines."""
    maps = []
    for emb, vec in zip(embs, vectors):
        cos = torch.einsum("bdhw,ld->blhw", F.normalize(emb, dim=1), vec).clamp_(min=0)  # (B, L, h, w)
        maps.append(F.interpolate(cos, size=(grid, grid), mode="bilinear", align_corners=False))
    return torch.stack(maps)


def cascade_argmax(maps: torch.Tensor) -> torch.Tensor:
    """(S, B, L, G, G) per-scale maps -> (B, L, 2) grid (x, y) of the product's maximum."""
    prod = maps.prod(dim=0)  # (B, L, G, G)
    g = prod.shape[-1]
    flat = prod.flatten(2).argmax(dim=2)  # (B, L)
    return torch.stack([flat % g, flat // g], dim=-1).float()

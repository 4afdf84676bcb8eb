"""Cascade matching: template embeddings vs every query location, 5 scales multiplied, argmax.

For landmark ``l`` the template's embedding at its location is taken at every scale; on a query
image, each scale's cosine map is clamped at 0, upsampled to the grid and the maps are multiplied,
so a coarse scale gates the finer ones. The product's argmax is the prediction (grid pixels).

Where the gates close everywhere (every location has some scale with cosine <= 0, so the product
is 0 over the whole map) a plain argmax would return the corner pixel (0, 0). For those
(image, landmark) pairs only, the clamped maps are floored at ``CLOSED_GATE_FLOOR`` before
multiplying: the location where the most scales agree, and agree most, wins.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..network.sampling import sample_at

CLOSED_GATE_FLOOR = 1e-4  # stands in for a closed gate (cosine <= 0) when no location passes all scales


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
    """(S, B, L, G, G) per-scale maps -> (B, L, 2) grid (x, y) of the product's maximum.

    Pairs whose product is 0 everywhere use the floored product instead (see the module doc).
    """
    prod = maps.prod(dim=0)  # (B, L, G, G)
    closed = prod.flatten(2).amax(dim=2) <= 0  # (B, L): no location passes every scale
    if closed.any():
        floored = maps.clamp(min=CLOSED_GATE_FLOOR).prod(dim=0)  # (B, L, G, G)
        prod = torch.where(closed[..., None, None], floored, prod)
    g = prod.shape[-1]
    flat = prod.flatten(2).argmax(dim=2)  # (B, L)
    return torch.stack([flat % g, flat // g], dim=-1).float()

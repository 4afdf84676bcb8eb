"""Cascade matching: template embeddings vs every query location, 5 scales multiplied, argmax.

For landmark ``l`` the template's embedding at its location is taken at every scale; on a query
image, each scale's cosine map is clamped at 0, upsampled to the grid and the maps are multiplied,
so a coarse scale gates the finer ones. The product's argmax is the prediction (grid pixels).

Sub-pixel (``subpixel=True``): the argmax pixel is moved by the vertex of a parabola through the
log-product at it and its two neighbours, per axis (a Gaussian peak fit; at most half a pixel; no
move at the border or where the peak is flat). A grid pixel of ISBI at grid 192 is 1-1.25 mm.

Top centroid (``centroid=a``, e.g. 0.5): the answer is the centroid of the product's pixels above
``a`` x its maximum, each weighted by its excess over that level (:func:`top_centroid`), instead of
the argmax. Where the product is flat along a ridge (a landmark on a long edge, such as the
mandible's angle) the argmax falls anywhere on it and the centroid at its middle; where two places
match almost equally well it answers between them; a clean peak gives its own centre.

Where the gates close everywhere (every location has some scale with cosine <= 0, so the product
is 0 over the whole map) a plain argmax would return the corner pixel (0, 0). For those
(image, landmark) pairs only, the clamped maps are floored at ``CLOSED_GATE_FLOOR`` before
multiplying: the location where the most scales agree, and agree most, wins.

Template poses (``eval.pose_scales`` x ``eval.pose_rotations_deg``): the template is also matched
scaled and rotated (heads differ in size and tilt); :func:`best_pose` keeps, per query image, the
maps of the pose whose K product peaks are highest (their geometric mean, read at a quarter of the
grid; only the chosen pose's maps are upsampled to the grid): a label-free choice made from the
image's own similarities, one pose for all its landmarks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..network.sampling import sample_at

CLOSED_GATE_FLOOR = 1e-4  # stands in for a closed gate (cosine <= 0) when no location passes all scales
POSE_SCORE_STRIDE = 4  # template poses are scored at a quarter of the grid: 16 times cheaper than at the grid


def template_vectors(embs: list[torch.Tensor], points: torch.Tensor, grid: int) -> list[torch.Tensor]:
    """Template embeddings [(1, D, h, w)] and landmarks (L, 2) grid px -> [(L, D)] unit vectors."""
    out = []
    for emb in embs:
        vec = sample_at(emb.expand(points.shape[0], -1, -1, -1), points, grid)  # (L, D)
        out.append(F.normalize(vec, dim=1))
    return out


def cosine_maps(embs: list[torch.Tensor], vectors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Query embeddings [(B, D, h, w)] x template vectors [(L, D)] -> [(B, L, h, w)] clamped cosines,
    each scale at its own resolution."""
    return [torch.einsum("bdhw,ld->blhw", F.normalize(emb, dim=1), vec).clamp_(min=0) for emb, vec in zip(embs, vectors)]


def upsampled(maps: list[torch.Tensor], size: int) -> torch.Tensor:
    """[(B, L, h, w)] per-scale maps -> (S, B, L, size, size), bilinear."""
    return torch.stack([F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False) for m in maps])


def similarity_maps(embs: list[torch.Tensor], vectors: list[torch.Tensor], grid: int) -> torch.Tensor:
    """Query embeddings [(B, D, h, w)] x template vectors [(L, D)] -> (S, B, L, G, G) clamped cosines."""
    return upsampled(cosine_maps(embs, vectors), grid)


def pose_peaks(maps: list[torch.Tensor], grid: int) -> torch.Tensor:
    """[(B, L, h, w)] per-scale maps of one pose -> (B, L) maxima of their product, read at
    ``grid // POSE_SCORE_STRIDE`` (the choice needs the peaks' heights, not their exact places)."""
    return upsampled(maps, max(grid // POSE_SCORE_STRIDE, 1)).prod(dim=0).flatten(2).amax(dim=2)


def pose_choice(per_pose: list[list[torch.Tensor]], grid: int) -> torch.Tensor:
    """P poses' per-scale maps [(B, L, h, w)] -> (B,) index of each image's pose: the highest mean
    log product peak over its L landmarks."""
    peaks = torch.stack([pose_peaks(m, grid) for m in per_pose])  # (P, B, L)
    return peaks.clamp(min=1e-30).log().mean(dim=2).argmax(dim=0)


def best_pose(per_pose: list[list[torch.Tensor]], grid: int) -> torch.Tensor:
    """P poses' per-scale maps [(B, L, h, w)] -> (S, B, L, G, G): each image's maps in its
    :func:`pose_choice` pose, upsampled to the grid (only that pose's)."""
    if len(per_pose) == 1:
        return upsampled(per_pose[0], grid)
    chosen = pose_choice(per_pose, grid).tolist()
    return torch.cat([upsampled([m[b:b + 1] for m in per_pose[p]], grid) for b, p in enumerate(chosen)], dim=1)


def cascade_argmax(maps: torch.Tensor, subpixel: bool = False, allowed: torch.Tensor | None = None,
                   centroid: float | None = None) -> torch.Tensor:
    """(S, B, L, G, G) per-scale maps -> (B, L, 2) grid (x, y) of the product's maximum; with
    ``allowed`` (a bool mask broadcasting to (B, L, G, G)), the maximum over its True pixels; with
    ``centroid``, the :func:`top_centroid` of the product at that level instead (``subpixel`` unused).

    Pairs whose product is 0 everywhere (allowed) use the floored product instead (see the module doc).
    """
    keep = (lambda p: p) if allowed is None else (lambda p: p * allowed)
    prod = keep(maps.prod(dim=0))  # (B, L, G, G)
    closed = prod.flatten(2).amax(dim=2) <= 0  # (B, L): no location passes every scale
    if closed.any():
        floored = keep(maps.clamp(min=CLOSED_GATE_FLOOR).prod(dim=0))  # (B, L, G, G)
        prod = torch.where(closed[..., None, None], floored, prod)
    if centroid is not None:
        return top_centroid(prod, centroid)
    g = prod.shape[-1]
    flat = prod.flatten(2).argmax(dim=2)  # (B, L)
    xy = torch.stack([flat % g, flat // g], dim=-1)  # (B, L, 2) long
    if not subpixel:
        return xy.float()
    return xy.float() + peak_offset(prod, xy)


def check_centroid(level: float | None) -> float | None:
    """A top-centroid level in (0, 1) (``eval.centroid``), or None (the argmax)."""
    if level is not None and not 0 < level < 1:
        raise ValueError(f"the centroid level (eval.centroid) must lie in (0, 1) or be None, got {level}")
    return None if level is None else float(level)


def to_peak(prod: torch.Tensor) -> torch.Tensor:
    """(..., H, W) non-negative maps -> the same scaled to a maximum of 1 (a map that is 0 everywhere
    stays 0). A product of six maps below 1 can peak at 1e-33 and must read as a product peaking at 1:
    readings of it against absolute floors (1e-30) would be wrong."""
    peak = prod.flatten(-2).amax(dim=-1)[..., None, None]
    return prod / torch.where(peak > 0, peak, torch.ones_like(peak))


def top_centroid(prod: torch.Tensor, level: float) -> torch.Tensor:
    """(B, L, H, W) non-negative maps -> (B, L, 2) (x, y): the centroid of the pixels above ``level``
    x the map's maximum, weighted by their excess over it (0 < level < 1; the maximum alone at 1).
    A map that is 0 everywhere answers (0, 0) (``cascade_argmax`` floors such products first)."""
    level = check_centroid(level)
    if level is None:
        raise ValueError("top_centroid needs a level in (0, 1), got None")
    h, w = prod.shape[-2:]
    weight = (to_peak(prod) - level).clamp_(min=0)  # (B, L, H, W); the peak's weight is 1 - level > 0
    total = weight.sum(dim=(2, 3)).clamp(min=1e-30)  # (B, L)
    xs = torch.arange(w, dtype=prod.dtype, device=prod.device)
    ys = torch.arange(h, dtype=prod.dtype, device=prod.device)
    x = (weight.sum(dim=2) * xs).sum(dim=2) / total  # column sums (B, L, W) weighted by x
    y = (weight.sum(dim=3) * ys).sum(dim=2) / total
    return torch.stack([x, y], dim=-1)


def peak_offset(prod: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """(B, L, H, W) maps, (B, L, 2) integer peaks -> (B, L, 2) sub-pixel offsets in [-0.5, 0.5]."""
    h, w = prod.shape[-2:]
    # (B, L, H*W), scaled to its peak first: the fit ignores scale, the floor does not
    logp = to_peak(prod).clamp(min=1e-30).log().flatten(2)

    def at(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:  # (B, L) values at integer (x, y)
        return logp.gather(2, (py * w + px)[..., None]).squeeze(-1)

    x, y = xy[..., 0], xy[..., 1]
    c, out = at(x, y), []
    for pos, size, neighbours in ((x, w, lambda d: at((x + d).clamp(0, w - 1), y)),
                                  (y, h, lambda d: at(x, (y + d).clamp(0, h - 1)))):
        left, right = neighbours(-1), neighbours(1)
        curvature = left - 2 * c + right
        inside = (pos > 0) & (pos < size - 1) & (curvature < 0)
        offset = (left - right) / (2 * curvature.clamp(max=-1e-12))
        out.append(torch.where(inside, offset, torch.zeros_like(c)).clamp(-0.5, 0.5))
    return torch.stack(out, dim=-1)

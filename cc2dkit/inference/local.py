"""The decoder's finest stages only where an answer can lie: the whole maps' answers for less work.

A C-Adapter runs its decoder once per landmark, and at grid 192 the two finest stages (strides 4
and 2, whose lateral input is the raw tap) cost about two thirds of a pass. Every map of the
cascade is a clamped cosine, at most 1, so the product of the coarse scales alone, ``c``, bounds
the full product from above everywhere. For landmark k on an image the coarse stages run on the
whole map; the finest run only on a window around ``c``'s peak (:func:`plan_crops`: ``LOCAL_HALF``
grid px each side, plus the cells the convolutions and upsamplings need), and their maps are kept
on the grid pixels where they equal the whole pass's (:func:`exact_mask`), 0 elsewhere.

Such maps answer as the whole maps do where the reading looks only inside that region, verified
per image and landmark by :func:`unsettled`: the product's peak there times the reading's level
(1 for the argmax, ``eval.centroid`` for the top centroid) lies above ``c`` times any further
factor (the shape check's) everywhere outside, so no pixel outside can reach the argmax or the
centroid's support; and the answer's ``need`` grid px around it (the sub-pixel peak's neighbours,
a fine stage's gate) lie inside. The predictor computes the pairs that fail again on the whole
map (``Predictor.matcher(local=True)``). No label is read, and the answers are the whole maps'
up to float rounding.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..network.sampling import Crop
from .cascade import cosine_maps, upsampled

LOCAL_HALF = 32  # grid px each side of the coarse peak kept exact (32-40 mm on ISBI at 192; RESULTS: its choice)
CONV_REACH = 2  # a stage's two 3x3 convs: an output cell reads input cells up to 2 away
SLACK = 1  # one cell more than the reach, as the training step's CROP_MARGIN


def crop_halves(strides: Sequence[int], half: int) -> dict[int, int]:
    """Cropped strides (coarse to fine) -> each crop's half side in cells: its own maps' sources
    around the window (bilinear: + 1) and, for a coarser stride, the finer crop's upsampling
    sources (+ 1 for the crop's own upsampled edge), plus the convs' reach and a slack cell."""
    halves, below = {}, None
    for s in sorted(strides):  # fine to coarse
        need = math.ceil(half / s) + 1
        if below is not None:
            need = max(need, math.ceil(below / 2) + 2)
        halves[s] = need + CONV_REACH + SLACK
        below = halves[s]
    return halves


def plan_crops(centres: torch.Tensor, strides: Sequence[int], grid: int, half: int = LOCAL_HALF) -> dict[int, Crop]:
    """(B, 2) grid px (x, y) -> the crops of the cropped ``strides`` (the decoder's ``croppable``)
    around them, one side per stride for the batch, shifted inside the map at its edges."""
    crops = {}
    for s, h in crop_halves(strides, half).items():
        n = grid // s
        side = min(2 * h + 1, n)
        cells = torch.div(centres.round().long().clamp(0, grid - 1), s, rounding_mode="floor")
        crops[s] = Crop((cells - h).clamp(0, n - side), side)
    return crops


def _exact_axis(origins: dict[int, torch.Tensor], crops: dict[int, Crop], grid: int) -> torch.Tensor:
    """One axis: the crops' origins along it (B,) per stride -> (B, grid) bool, the grid pixels whose
    bilinear sources at every cropped stride are cells the cropped pass computes as the whole one."""
    exact_above, above = None, None  # the next coarser cropped stride's exact cells (B, n) and its stride
    masks = {}
    for s in sorted(crops, reverse=True):  # coarse to fine
        n, side, o = grid // s, crops[s].size, origins[s][:, None]  # o: (B, 1)
        idx = torch.arange(n, device=o.device)[None]  # (1, n)
        inside = (idx >= o) & (idx < o + side)
        # zero padding at a crop edge is wrong unless that edge is the map's
        far_lo = (o == 0) | (idx >= o + CONV_REACH)
        far_hi = (o + side == n) | (idx < o + side - CONV_REACH)
        ok = inside & far_lo & far_hi
        if exact_above is not None:  # the upsampled coarser crop must be exact at cells j - 2 ... j + 2
            up = _upsampled_exact(exact_above, origins[above][:, None], crops[above].size, grid // above, n)
            padded = torch.nn.functional.pad(up.float(), (CONV_REACH, CONV_REACH), value=1.0)  # beyond the map: fine
            window = padded.unfold(1, 2 * CONV_REACH + 1, 1).amin(dim=2) > 0  # (B, n)
            ok = ok & window
        masks[s], exact_above, above = ok, ok, s
    x = torch.arange(grid, device=next(iter(origins.values())).device)
    out = torch.ones(len(next(iter(origins.values()))), grid, dtype=torch.bool, device=x.device)
    for s, ok in masks.items():  # each cropped map's bilinear sources at grid pixel x
        lo, hi = _sources(x, s, grid // s)
        out &= ok[:, lo] & ok[:, hi]
    return out


def _sources(x: torch.Tensor, factor: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two source cells of a bilinear x ``factor`` upsampling (align_corners=False) of an n-cell axis."""
    src = ((x.float() + 0.5) / factor - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=n - 1)
    return lo, (lo + 1).clamp(max=n - 1)


def _upsampled_exact(exact: torch.Tensor, origin: torch.Tensor, side: int, n: int, n_up: int) -> torch.Tensor:
    """(B, n) exact cells of a cropped map -> (B, n_up) cells of its x2 upsampling (of the crop, as the
    decoder does) that equal the whole map's: exact sources, and not at the crop's clamped edges."""
    u = torch.arange(n_up, device=exact.device)[None]
    lo, hi = _sources(u[0], 2, n)
    ok = exact[:, lo] & exact[:, hi]
    edge_lo = (u == 2 * origin) & (origin > 0)
    edge_hi = (u == 2 * (origin + side) - 1) & (origin + side < n)
    return ok & ~edge_lo & ~edge_hi


def exact_mask(crops: dict[int, Crop], grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The crops of one pass -> (B, G) x and (B, G) y bool masks: grid pixel (x, y) of sample b is
    exact where ``xs[b, x] & ys[b, y]`` (a rectangle)."""
    return tuple(_exact_axis({s: c.origins[:, axis] for s, c in crops.items()}, crops, grid) for axis in (0, 1))


def placed(cropped: torch.Tensor, crop: Crop, n: int) -> torch.Tensor:
    """(B, L, side, side) maps of the crops -> (B, L, n, n), zero outside each sample's crop."""
    out = cropped.new_zeros(*cropped.shape[:2], n, n)
    for b, (c, r) in enumerate(crop.origins.tolist()):
        out[b, :, r:r + crop.size, c:c + crop.size] = cropped[b]
    return out


def inside(exact: torch.Tensor, points: torch.Tensor, need: int) -> torch.Tensor:
    """(B, K, G, G) exact masks, (B, K, 2) answers -> (B, K) bool: the (2 need + 1)^2 pixels around
    each answer's nearest pixel (clipped to the map) are all exact."""
    g = exact.shape[-1]
    centre = points.round().long().clamp(0, g - 1)
    steps = torch.arange(-need, need + 1, device=exact.device)
    xs = (centre[..., 0:1] + steps).clamp(0, g - 1)  # (B, K, 2n + 1)
    ys = (centre[..., 1:2] + steps).clamp(0, g - 1)
    rows = exact.gather(2, ys[..., :, None].expand(*ys.shape, g))  # (B, K, 2n + 1, G)
    return rows.gather(3, xs[..., None, :].expand(*ys.shape, xs.shape[-1])).flatten(2).all(dim=2)


def unsettled(maps: torch.Tensor, exact: torch.Tensor, coarse: int, scales: int, level: float,
              answers: torch.Tensor, need: int) -> torch.Tensor:
    """(S [+ F], B, K, G, G) maps whose scales from ``coarse`` to ``scales`` are local (0 outside
    ``exact``, (B, K, G, G)), any further maps factors; the reading's (B, K, 2) answers -> (B, K)
    bool: the pairs whose reading the local maps may not give (see the module docstring)."""
    prod = maps.prod(dim=0)
    bound = maps[:coarse].prod(dim=0)
    if maps.shape[0] > scales:
        bound = bound * maps[scales:].prod(dim=0)
    peak = prod.masked_fill(~exact, 0).flatten(2).amax(dim=2)  # (B, K)
    beyond = bound.masked_fill(exact, 0).flatten(2).amax(dim=2)
    # a margin for float rounding: the finest cosines may exceed 1 by an ulp
    unsure = (peak <= 0) | (beyond * (1 + 1e-4) >= level * peak) | ~inside(exact, answers, need)
    return unsure & ~exact.flatten(2).all(dim=2)  # a pair computed on the whole map is settled


class LocalPasses:
    """A landmark-specific model's passes for ``Predictor.local_matcher``, one decoder pass per
    landmark: ``taps(images, keys)`` the backbone's features (once per batch), ``decode(taps, k,
    crops)`` landmark k's embeddings coarse to fine [(B, D, h, w)] (``crops``: as ``Decoder.forward``
    takes them); ``strides`` all of the decoder's, ``cropped`` its ``croppable`` ones; ``grid`` the
    model grid."""

    def __init__(self, taps: Callable, decode: Callable, strides: Sequence[int], cropped: Sequence[int], grid: int,
                 half: int = LOCAL_HALF):
        self.taps, self.decode, self.grid, self.half = taps, decode, grid, half
        self.strides, self.cropped = tuple(strides), tuple(cropped)
        self.pairs = self.redone = 0  # (image, landmark) pairs passed, and those redone on the whole map
        if self.strides[-len(self.cropped):] != self.cropped:
            raise ValueError(f"the cropped strides {self.cropped} must be the finest of {self.strides}")

    def __call__(self, images: torch.Tensor, keys: list | None, vectors: list[list[torch.Tensor]]):
        """(B, 1, G, G) images, per landmark k the template's vectors [(1, D)] per scale -> (S, B, K,
        G, G) maps (the cropped scales 0 outside the exact region), (B, K, G, G) bool exact masks and
        ``redo(maps, exact, pairs)``, which computes the (B, K) bool ``pairs`` on the whole map in place."""
        taps, grid, coarse = self.taps(images, keys), self.grid, len(self.strides) - len(self.cropped)
        per_k, exact = [], []
        for k, vec in enumerate(vectors):
            made = {}

            def plan(coarse_embs, vec=vec, made=made):  # the window: around the coarse scales' peak
                if len(coarse_embs) < coarse:
                    return {}
                with torch.autocast(coarse_embs[0].device.type, enabled=False):
                    c = upsampled(cosine_maps([e.float() for e in coarse_embs], vec[:coarse]), grid).prod(dim=0)
                flat = c[:, 0].flatten(1).argmax(dim=1)  # (B,)
                made["crops"] = plan_crops(torch.stack([flat % grid, flat // grid], dim=1), self.cropped, grid,
                                           self.half)
                return made["crops"]
            cos = cosine_maps(self.decode(taps, k, plan), vec)  # S x (B, 1, h, w), the cropped ones on their crops
            crops = made["crops"]
            full = [placed(m, crops[s], grid // s) if s in crops else m for m, s in zip(cos, self.strides)]
            xs, ys = exact_mask(crops, grid)
            mask = ys[:, :, None] & xs[:, None, :]  # (B, G, G): rows y, columns x
            maps = upsampled(full, grid)  # (S, B, 1, G, G)
            maps[coarse:] *= mask[None, :, None]
            per_k.append(maps)
            exact.append(mask)

        self.pairs += len(images) * len(vectors)

        def redo(maps: torch.Tensor, exact: torch.Tensor, pairs: torch.Tensor) -> None:
            self.redone += int(pairs.sum())
            for k in pairs.any(dim=0).nonzero().flatten().tolist():
                rows = pairs[:, k].nonzero().flatten()
                embs = self.decode([t[rows] for t in taps], k, None)
                maps[:, rows, k] = upsampled(cosine_maps(embs, vectors[k]), grid)[:, :, 0]
                exact[rows, k] = True
        return torch.cat(per_k, dim=2), torch.stack(exact, dim=1), redo

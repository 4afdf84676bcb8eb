"""Reading embeddings at grid points, and which cells the training loss reads: used by the training
loss, the decoder's cropped training pass and the template matcher."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.coords import cell_index, to_normalized

CROP_MARGIN = 3  # cells around a loss window: two 3x3 convs (2) and the bilinear x2 upsampling (1)


def sample_at(emb: torch.Tensor, points: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear embedding at grid points. emb (B, D, h, w) of a size x size input, points (B, 2) -> (B, D)."""
    norm = to_normalized(points, size).view(-1, 1, 1, 2).to(emb.dtype)  # (B, 1, 1, 2)
    return F.grid_sample(emb, norm, mode="bilinear", align_corners=False).flatten(1)


def window_bounds(cells: torch.Tensor, half: int, length: int) -> torch.Tensor:
    """Start of a (2*half+1)-long window around ``cells`` clipped to [0, length)."""
    span = min(2 * half + 1, length)
    return (cells - half).clamp(0, length - span)


def loss_cells(points: torch.Tensor, stride: int, size: int) -> torch.Tensor:
    """(B, 2) (col, row) cells of grid ``points`` on the stride-``stride`` map of a size x size input, in the map."""
    cells = cell_index(points, stride)
    return cells.clamp(0, size // stride - 1)


@dataclass(frozen=True)
class Crop:
    """Where a cropped decoder stage sits on its full map: per sample the (col, row) cell of its
    top-left corner, ``origins`` (B, 2), and the side ``size`` (cells) of every sample's square."""

    origins: torch.Tensor
    size: int

    def of(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """Each sample's square of x (B, C, h, w) -> (B, C, size, size); ``offset`` (B, 2): where x
        itself starts on the full map (x is then a crop too). A square outside x is a bug: raised."""
        at = self.origins if offset is None else self.origins - offset
        if bool((at < 0).any()) or bool((at + self.size > torch.tensor(x.shape[:-3:-1], device=at.device)).any()):
            raise RuntimeError("a decoder crop reaches outside the map it is cut from")
        return torch.stack([x[b, :, r:r + self.size, c:c + self.size] for b, (c, r) in enumerate(at.tolist())])


def sample_in(emb: torch.Tensor, points: torch.Tensor, size: int, crop: Crop | None, stride: int) -> torch.Tensor:
    """:func:`sample_at` where emb may be a crop (each sample's square of the full map of a size x
    size input): the same bilinear value where the point's neighbour cells lie in the square."""
    if crop is None:
        return sample_at(emb, points, size)
    return sample_at(emb, points - crop.origins.to(points.dtype) * stride, crop.size * stride)


def crop_plan(points: torch.Tensor, strides: tuple[int, ...], size: int, half: int, below: int | None
              ) -> dict[int, Crop]:
    """The decoder stages a training step computes on crops only (``train.crop_below``): at every
    stride <= ``below`` (and under the coarsest, whose softmax spans the whole map) the loss reads a
    (2*half+1)-cell window around each image point (:func:`window_bounds`); the stage is computed on
    that window and ``CROP_MARGIN`` cells around it, clipped to the map (where the map's edge is the
    crop's, its zero padding is the full map's). ``points`` (B, 2) grid px of size x size images.
    ``half=1``: the cells a bilinear read at the point needs (the patch's side of the loss)."""
    if below is None:
        return {}
    plan = {}
    for s in strides:
        if s > below or s == max(strides):
            continue
        n = size // s
        cells = loss_cells(points, s, size)
        side = min(min(2 * half + 1, n) + 2 * CROP_MARGIN, n)
        starts = torch.stack([window_bounds(cells[:, i], half, n) for i in (0, 1)], dim=1)
        plan[s] = Crop((starts - CROP_MARGIN).clamp(0, n - side), side)
    return plan

"""Reading embeddings at grid points: used by the training loss and by the template matcher."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.coords import to_normalized


def sample_at(emb: torch.Tensor, points: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear embedding at grid points. emb (B, D, h, w) of a size x size input, points (B, 2) -> (B, D)."""
    norm = to_normalized(points, size).view(-1, 1, 1, 2).to(emb.dtype)  # (B, 1, 1, 2)
    return F.grid_sample(emb, norm, mode="bilinear", align_corners=False).flatten(1)

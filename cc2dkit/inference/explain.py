"""What the cascade sees: the per-scale similarity maps of every landmark on one image."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..network import CC2D
from .cascade import cascade_argmax, similarity_maps
from .predict import Template


@dataclass
class ImageMaps:
    """Similarity maps of all landmarks on one query image (grid resolution)."""

    image: np.ndarray  # (G, G) the query at grid resolution
    maps: np.ndarray  # (S, L, G, G) clamped cosine maps, coarse to fine
    strides: tuple[int, ...]  # stride of each of the S scales
    prediction: np.ndarray  # (L, 2) grid (x, y) of the argmax of the product
    truth: np.ndarray | None  # (L, 2) grid (x, y) ground truth, if known

    @property
    def product(self) -> np.ndarray:
        """(L, G, G) the cascade's product of the S maps."""
        return self.maps.prod(axis=0)


@torch.no_grad()
def image_maps(model: CC2D, template: Template, image: torch.Tensor, device: torch.device,
               truth: np.ndarray | None = None) -> ImageMaps:
    """image (1, G, G) -> the maps of every landmark (one forward pass)."""
    model.eval()
    embs = model(image[None].to(device))
    maps = similarity_maps(embs, template.vectors, template.grid)  # (S, 1, L, G, G)
    pred = cascade_argmax(maps)[0].cpu().numpy()
    return ImageMaps(image[0].cpu().numpy(), maps[:, 0].cpu().numpy(), tuple(model.strides), pred, truth)

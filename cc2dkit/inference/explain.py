"""What the cascade sees: the per-scale similarity maps of some landmarks on one image."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ImageMaps:
    """Similarity maps of K landmarks on one query image (grid resolution); see ``Predictor.image_maps``."""

    image: np.ndarray  # (G, G) the query at grid resolution
    maps: np.ndarray  # (S, K, G, G) clamped cosine maps, coarse to fine
    strides: tuple[int, ...]  # stride of each of the S scales
    prediction: np.ndarray  # (K, 2) grid (x, y) of the predictor's answer (the product's argmax, or as configured)
    truth: np.ndarray | None  # (K, 2) grid (x, y) ground truth, if known

    @property
    def product(self) -> np.ndarray:
        """(K, G, G) the cascade's product of the S maps."""
        return self.maps.prod(axis=0)

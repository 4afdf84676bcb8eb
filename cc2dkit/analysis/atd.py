"""A check that augmented templates carry exact landmarks: warp a dot and its centre with the same map.

:func:`dot_warp_check` draws a dot, warps image and point with
:func:`cc2dkit.data.template_aug.affine_image_and_points` and compares the warped dot's centroid with
the moved point (they agree to a small fraction of a pixel).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.template_aug import affine_image_and_points


@dataclass
class DotCheck:
    image: np.ndarray  # (H, W) the drawn dot
    warped: np.ndarray  # (H, W) after the affine map
    point: np.ndarray  # (2,) the dot's centre (x, y), pixel centres at integers
    moved: np.ndarray  # (2,) the point moved by the map (as the landmarks are)
    centroid: np.ndarray  # (2,) intensity centroid of the warped dot
    params: tuple[float, float, float, float]  # angle, shift x, shift y, scale

    @property
    def error_px(self) -> float:
        """Distance between the moved point and the warped dot's centroid (pixels)."""
        return float(np.hypot(*(self.moved - self.centroid)))


def _centroid(image: np.ndarray) -> np.ndarray:
    ys, xs = np.indices(image.shape)
    w = image / image.sum()
    return np.array([(w * xs).sum(), (w * ys).sum()])


def dot_warp_check(point=(40.3, 25.7), angle: float = 4.0, shift=(3.5, -2.25), scale: float = 1.01,
                   size=(96, 128), sigma: float = 2.0) -> DotCheck:
    """Draw a Gaussian dot at ``point`` on an (H, W) = ``size`` canvas, warp image and point together.

    The warped dot's intensity centroid must land on the moved point: an affine map moves the
    centroid of a mass exactly, so what is left is interpolation error (a small fraction of a pixel).
    """
    h, w = size
    x0, y0 = map(float, point)
    ys, xs = np.indices((h, w), dtype=np.float64)
    dot = np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma ** 2)).astype(np.float32)
    img = torch.from_numpy(dot)[None]
    pts = torch.tensor([[x0, y0]], dtype=torch.float64)
    warped, moved = affine_image_and_points(img, pts, float(angle), (float(shift[0]), float(shift[1])), float(scale))
    warped = warped[0].numpy().astype(np.float64)
    return DotCheck(dot, warped, np.array([x0, y0]), moved[0].numpy().astype(np.float64), _centroid(warped),
                    (float(angle), float(shift[0]), float(shift[1]), float(scale)))

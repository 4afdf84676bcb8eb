"""Augmented templates (ATD, He et al.): random affine copies of the one labelled image.

:func:`augment_template` draws ``method.atd_copies`` affine maps (shift +-``atd_shift`` of the
image size per axis, scale ``1 +- atd_scale``, rotation +-``atd_rotation_deg``, about the image
centre), applies each to the template at its ORIGINAL resolution with
``torchvision.transforms.v2`` (the landmarks moved exactly by the same map as
``tv_tensors.KeyPoints``; torchvision's key points use the pixel-edge convention, hence +0.5 before
and -0.5 after) and resizes the copy to the grid (:func:`~cc2dkit.data.grid.resize_to_grid`,
:func:`~cc2dkit.data.coords.to_grid`). Only the grid-resolution copies are kept
(:class:`TemplateCopies`, N x 1 x G x G), generated once per run from a generator and reused;
their feature-cache keys are ``"atd/0000"``, ... (training draws patches from them with
:class:`~cc2dkit.training.patches.TemplatePatchSource`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from ..config import MethodConfig
from .coords import to_grid
from .grid import resize_to_grid

KEY_PREFIX = "atd"  # feature-cache keys "atd/0000", ...


@dataclass
class TemplateCopies:
    """GridImages-like container of the augmented templates (all labelled)."""

    images: torch.Tensor  # (N, 1, G, G) float32
    landmarks: np.ndarray  # (N, L, 2) grid coordinates
    keys: list  # feature-cache keys
    sizes: np.ndarray  # (N, 2) original (H, W) (all the template's)
    params: np.ndarray  # (N, 4): angle (deg), shift x (px), shift y (px), scale

    @property
    def grid(self) -> int:
        return self.images.shape[-1]

    @property
    def labelled(self) -> np.ndarray:
        return np.ones(len(self), dtype=bool)

    def __len__(self) -> int:
        return len(self.images)


def affine_image_and_points(image: torch.Tensor, points: torch.Tensor, angle: float, shift: tuple[float, float],
                            scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Affine map about the image centre of a (1, H, W) image and its (L, 2) points (pixel centres).

    Returns the warped image (bilinear, zeros outside) and the exactly moved points.
    """
    size = tuple(image.shape[-2:])
    img = tv_tensors.Image(image)
    kp = tv_tensors.KeyPoints(points + 0.5, canvas_size=size)
    kw = dict(angle=angle, translate=[float(shift[0]), float(shift[1])], scale=scale, shear=[0.0, 0.0])
    img = TF.affine(img, interpolation=TF.InterpolationMode.BILINEAR, **kw)
    kp = TF.affine(kp, **kw)
    return img.as_subclass(torch.Tensor), kp.as_subclass(torch.Tensor).reshape(-1, 2) - 0.5


def augment_template(image: np.ndarray, landmarks: np.ndarray, method: MethodConfig, grid: int,
                     generator: torch.Generator, progress: bool = False) -> TemplateCopies:
    """``method.atd_copies`` augmented copies of the template at the grid (see the module docstring).

    ``image`` (H, W) float in [0, 1] and ``landmarks`` (L, 2) original pixels of the template.
    """
    if method.atd_copies < 1:
        raise ValueError(f"method.atd_copies must be >= 1, got {method.atd_copies}")
    image = np.asarray(image, dtype=np.float32)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if image.ndim != 2 or landmarks.ndim != 2 or landmarks.shape[1] != 2 or np.isnan(landmarks).any():
        raise ValueError(f"expected an (H, W) image and complete (L, 2) landmarks, got {image.shape}, {landmarks.shape}")
    h, w = image.shape
    n = method.atd_copies
    src = torch.from_numpy(image)[None]
    pts = torch.from_numpy(landmarks)
    images = torch.empty(n, 1, grid, grid)
    out_lm = np.empty((n, len(landmarks), 2))
    params = np.empty((n, 4))
    for i in tqdm(range(n), desc="augmented templates", disable=not progress, leave=False):
        u = (2 * torch.rand(4, generator=generator, dtype=torch.float64) - 1).tolist()
        angle = u[0] * method.atd_rotation_deg
        shift = (u[1] * method.atd_shift * w, u[2] * method.atd_shift * h)
        scale = 1.0 + u[3] * method.atd_scale
        warped, moved = affine_image_and_points(src, pts, angle, shift, scale)
        images[i] = resize_to_grid(warped[0].numpy(), grid)
        out_lm[i] = to_grid(moved.numpy().astype(np.float64), (h, w), grid)
        params[i] = (angle, shift[0], shift[1], scale)
    keys = [f"{KEY_PREFIX}/{i:04d}" for i in range(n)]
    return TemplateCopies(images, out_lm, keys, np.tile([h, w], (n, 1)), params)


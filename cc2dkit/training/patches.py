"""Where training triples (image, augmented patch, point) come from.

The SSL step (``step.py``) consumes :class:`PatchBatch` objects from a *patch source*: an object
with ``sample(batch_size, generator) -> PatchBatch`` and ``len()`` (its items: one pass over them
is an epoch of the source). :class:`RandomPatchSource` is CC2D's self-supervision (a random patch,
a random point), :class:`CropPatchSource` the same on random windows of high-resolution images
(the fine stage); :class:`CentredPatchSource` centres patches at given points, with two kinds:
:class:`TemplatePatchSource` (the augmented templates' landmarks, ATD) and
:class:`~cc2dkit.training.pseudo_labels.PLPatchSource` (pseudo-labels).

Coordinates are grid pixels, pixel centres at integers. The patch is augmented with
``torchvision.transforms.v2`` (rotation, an optional zoom, brightness, contrast) and the point is moved with it as a
``tv_tensors.KeyPoints``. torchvision treats key points in the pixel-*edge* convention (pixel i
spans [i, i+1)), so points are shifted by +0.5 before the transform and -0.5 after it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from ..config import MethodConfig, TrainConfig
from ..data.grid import GridImages
from ..data.template_aug import TemplateCopies


@dataclass
class PatchBatch:
    keys: list | None  # cache keys of the un-augmented full images (None: not cached)
    images: torch.Tensor  # (B, 1, G, G)
    patches: torch.Tensor  # (B, 1, P, P) augmented
    patch_points: torch.Tensor  # (B, 2) (x, y) of the point inside the augmented patch
    image_points: torch.Tensor  # (B, 2) (x, y) of the same point in the full image
    landmark_ids: torch.Tensor | None = None  # (B,) landmark each sample trains (adapters); None: CC2D
    # the round trip (method.pl_walk): per sample an augmented template, its cache key and its landmark
    partners: torch.Tensor | None = None  # (B, 1, G, G)
    partner_keys: list | None = None
    partner_points: torch.Tensor | None = None  # (B, 2) (x, y) of the sample's landmark in its partner

    def part(self, rows: slice) -> "PatchBatch":
        """The samples ``rows`` of this batch (a rank's share in data-parallel training)."""
        def cut(v):
            return None if v is None else v[rows]
        return PatchBatch(cut(self.keys), self.images[rows], self.patches[rows], self.patch_points[rows],
                          self.image_points[rows], cut(self.landmark_ids), cut(self.partners),
                          cut(self.partner_keys), cut(self.partner_points))


@dataclass(frozen=True)
class Augment:
    angle: float  # degrees, counter-clockwise
    brightness: float  # multiplicative factor
    contrast: float  # multiplicative factor
    scale: float = 1.0  # zoom about the patch centre (> 1: magnified)


def draw_augment(cfg: TrainConfig, gen: torch.Generator) -> Augment:
    u = torch.rand(3, generator=gen).tolist()
    # the zoom's draw only when it is on, so that runs without it keep their random stream
    zoom = 1 + (2 * float(torch.rand(1, generator=gen)) - 1) * cfg.scale if cfg.scale > 0 else 1.0
    return Augment(
        angle=(2 * u[0] - 1) * cfg.rotation_deg,
        brightness=1 + (2 * u[1] - 1) * cfg.brightness,
        contrast=1 + (2 * u[2] - 1) * cfg.contrast,
        scale=zoom,
    )


def augment_patch(patch: torch.Tensor, point: torch.Tensor, aug: Augment) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate / zoom / jitter a (1, P, P) patch; the (2,) point moves exactly with the rotation and zoom."""
    size = tuple(patch.shape[-2:])
    img = tv_tensors.Image(patch)
    kp = tv_tensors.KeyPoints((point + 0.5).view(1, 2), canvas_size=size)
    if aug.scale == 1.0:
        img = TF.rotate(img, aug.angle, interpolation=TF.InterpolationMode.BILINEAR)
        kp = TF.rotate(kp, aug.angle)
    else:  # one affine map about the centre: rotation and zoom together (rotate alone above keeps
        # the numbers of runs without a zoom exactly)
        img = TF.affine(img, aug.angle, [0.0, 0.0], aug.scale, [0.0, 0.0], interpolation=TF.InterpolationMode.BILINEAR)
        kp = TF.affine(kp, aug.angle, [0.0, 0.0], aug.scale, [0.0, 0.0])
    img = TF.adjust_brightness(img, aug.brightness)
    img = TF.adjust_contrast(img, aug.contrast)
    return img.as_subclass(torch.Tensor), kp.as_subclass(torch.Tensor).view(2) - 0.5


def make_patch(image: torch.Tensor, origin: tuple[int, int], point: torch.Tensor, size: int,
               aug: Augment) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``size`` x ``size`` at integer ``origin`` (x0, y0) of a (1, G, G) image and augment it.

    ``point`` is in image grid coordinates; returns (patch, point inside the augmented patch).
    """
    x0, y0 = origin
    g = image.shape[-1]
    if not (0 <= x0 <= g - size and 0 <= y0 <= g - size):
        raise ValueError(f"patch origin {origin} with size {size} leaves the {g}x{g} grid")
    patch = image[:, y0:y0 + size, x0:x0 + size]
    local = point - torch.tensor([x0, y0], dtype=point.dtype)
    return augment_patch(patch, local, aug)


class RandomPatchSource:
    """CC2D self-supervision: a random patch of a random image, a random point in its centre.

    The point is drawn from the patch's central ``point_central`` fraction; an augmentation that
    would rotate it out of the patch is redrawn. ``image_indices`` limits which images are used.
    """

    def __init__(self, data: GridImages, cfg: TrainConfig, image_indices: list[int] | None = None):
        self.data = data
        self.cfg = cfg
        self.size = patch_size(data.grid, cfg.patch_frac)
        self.indices = list(range(len(data))) if image_indices is None else list(image_indices)
        if not self.indices:
            raise ValueError("RandomPatchSource needs at least one image")

    def __len__(self) -> int:
        return len(self.indices)

    def sample(self, batch_size: int, gen: torch.Generator) -> PatchBatch:
        keys, images, patches, pp, ip = [], [], [], [], []
        for _ in range(batch_size):
            idx = self.indices[int(torch.randint(len(self.indices), (1,), generator=gen))]
            patch, moved, point = random_patch(self.data.images[idx], self.size, self.cfg, gen)
            keys.append(self.data.keys[idx])
            images.append(self.data.images[idx])
            patches.append(patch)
            pp.append(moved)
            ip.append(point)
        return PatchBatch(keys, torch.stack(images), torch.stack(patches),
                          torch.stack(pp).float(), torch.stack(ip).float())


def random_patch(image: torch.Tensor, size: int, cfg: TrainConfig, gen: torch.Generator):
    """CC2D's draw on one (1, G, G) image: a random ``size`` patch and a point in its central
    ``point_central`` fraction, augmented. Returns (patch, point in the patch, point in the image)."""
    g = image.shape[-1]
    margin = (1 - cfg.point_central) / 2 * size
    x0, y0 = (int(v) for v in torch.randint(g - size + 1, (2,), generator=gen))
    local = margin + torch.rand(2, generator=gen, dtype=torch.float64) * (size - 2 * margin)
    point = torch.tensor([x0, y0], dtype=torch.float64) + local.round()
    patch, moved = _augment_inside(image, (x0, y0), point, size, cfg, gen)
    return patch, moved, point


class CropPatchSource:
    """CC2D's self-supervision on random ``crop`` x ``crop`` windows of high-resolution images: the
    window is the "image" and a random patch of it the "patch" (the fine stage's network learns to
    match at that scale). ``images`` (N, 1, G_f, G_f); crops are not cached (``keys`` None)."""

    def __init__(self, images: torch.Tensor, crop: int, cfg: TrainConfig):
        if crop % 32 or not 32 <= crop <= images.shape[-1]:
            raise ValueError(f"refine.crop must be a multiple of 32 within the fine grid "
                             f"{images.shape[-1]}, got {crop}")
        self.images, self.crop, self.cfg = images, crop, cfg
        self.size = patch_size(crop, cfg.patch_frac)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, batch_size: int, gen: torch.Generator) -> PatchBatch:
        crops, patches, pp, ip = [], [], [], []
        g, c = self.images.shape[-1], self.crop
        for _ in range(batch_size):
            idx = int(torch.randint(len(self.images), (1,), generator=gen))
            x0, y0 = (int(v) for v in torch.randint(g - c + 1, (2,), generator=gen))
            crop = self.images[idx][:, y0:y0 + c, x0:x0 + c]
            patch, moved, point = random_patch(crop, self.size, self.cfg, gen)
            crops.append(crop)
            patches.append(patch)
            pp.append(moved)
            ip.append(point)
        return PatchBatch(None, torch.stack(crops), torch.stack(patches), torch.stack(pp).float(),
                          torch.stack(ip).float())


class CentredPatchSource:
    """Patches around given target points: the base of the pseudo-label and template sources.

    ``images`` (N, 1, G, G) with cache ``keys``; ``targets()`` returns the current (N, K, 2) grid
    points (re-read at every draw, so pseudo-labels updated in place are seen). Each sample picks an
    (image, landmark) pair uniformly (with replacement), crops a patch of ``patch_size(G,
    cfg.patch_frac)`` whose centre is the target plus a uniform offset of up to ``offset`` x half
    the patch side per axis (:func:`centred_origin`), and augments it as CC2D does
    (:func:`_augment_inside`). ``landmark_ids`` of the batch is the pair's landmark column (0..K-1).
    """

    def __init__(self, images: torch.Tensor, keys: list, targets, cfg: TrainConfig, offset: float):
        if len(images) != len(keys):
            raise ValueError(f"{len(images)} images but {len(keys)} keys")
        if not 0.0 <= offset <= 1.0:
            raise ValueError(f"the patch offset must lie in [0, 1] (fraction of the half patch), got {offset}")
        self.images = images
        self.keys = list(keys)
        self.targets = targets
        self.cfg = cfg
        self.offset = offset
        self.size = patch_size(images.shape[-1], cfg.patch_frac)
        n, k = self._shape()
        if n == 0 or k == 0:
            raise ValueError(f"a centred patch source needs images and landmarks, got {n} x {k}")

    def _shape(self) -> tuple[int, int]:
        t = self.targets()
        if t.ndim != 3 or t.shape[0] != len(self.images) or t.shape[2] != 2:
            raise ValueError(f"targets must have shape ({len(self.images)}, K, 2), got {tuple(t.shape)}")
        return t.shape[0], t.shape[1]

    def __len__(self) -> int:
        """Number of (image, landmark) pairs: one pass over them is an epoch of this source."""
        n, k = self._shape()
        return n * k

    def sample(self, batch_size: int, gen: torch.Generator) -> PatchBatch:
        targets = torch.as_tensor(np.asarray(self.targets(), dtype=np.float64))
        n, k = targets.shape[:2]
        keys, images, patches, pp, ip, ids = [], [], [], [], [], []
        for _ in range(batch_size):
            pair = int(torch.randint(n * k, (1,), generator=gen))
            idx, lm = divmod(pair, k)
            patch, moved, point = self.patch_at(self.images[idx], targets[idx, lm], gen)
            keys.append(self.keys[idx])
            images.append(self.images[idx])
            patches.append(patch)
            pp.append(moved)
            ip.append(point)
            ids.append(lm)
        return PatchBatch(keys, torch.stack(images), torch.stack(patches), torch.stack(pp).float(),
                          torch.stack(ip).float(), torch.tensor(ids, dtype=torch.long))

    def patch_at(self, image: torch.Tensor, point: torch.Tensor, gen: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This source's patch of a (1, G, G) image around ``point`` (clamped into the grid), offset
        and augmented: (patch, point in the patch, the clamped point)."""
        g = image.shape[-1]
        point = point.clamp(0.0, g - 1.0)
        origin = centred_origin(point, self.size, g, self.offset, gen)
        patch, moved = _augment_inside(image, origin, point, self.size, self.cfg, gen)
        return patch, moved, point


class TemplatePatchSource(CentredPatchSource):
    """Patches centred at the augmented templates' landmarks ``landmark_indices`` (K dataset landmarks).

    Same offset (``method.pl_offset``) and augmentation as the PL source; ``landmark_ids`` are the
    columns 0..K-1 of ``landmark_indices``. A landmark moved out of the grid by the augmentation is
    clamped to the border.
    """

    def __init__(self, copies: TemplateCopies, train: TrainConfig, method: MethodConfig,
                 landmark_indices: Sequence[int]):
        self.landmark_indices = [int(l) for l in landmark_indices]
        targets = copies.landmarks[:, self.landmark_indices]
        super().__init__(copies.images, copies.keys, lambda: targets, train, method.pl_offset)


def centred_origin(point: torch.Tensor, size: int, grid: int, offset: float, gen: torch.Generator) -> tuple[int, int]:
    """Integer origin of a ``size`` patch that puts ``point`` (in [0, G-1]) near the patch centre.

    The point's place in the patch is the centre ``(size - 1) / 2`` plus a uniform offset in
    ``[-offset * size / 2, offset * size / 2]`` per axis (kept in [0, size - 1]); the origin is
    then clamped so the patch stays in the grid and the point inside the patch.
    """
    u = torch.rand(2, generator=gen, dtype=torch.float64)
    local = ((size - 1) / 2 + (2 * u - 1) * offset * size / 2).clamp(0.0, size - 1.0)
    point = point.double()
    lo = torch.clamp(torch.ceil(point - (size - 1)), min=0)  # point <= origin + size - 1
    hi = torch.clamp(torch.floor(point), max=grid - size)  # point >= origin
    origin = torch.minimum(torch.maximum(torch.round(point - local), lo), hi)
    return int(origin[0]), int(origin[1])


def _augment_inside(image, origin, point, size, cfg: TrainConfig, gen, tries: int = 10):
    """make_patch with an augmentation that keeps the point inside the patch."""
    for _ in range(tries):
        patch, moved = make_patch(image, origin, point, size, draw_augment(cfg, gen))
        if bool(((moved >= 0) & (moved <= size - 1)).all()):
            return patch, moved
    return make_patch(image, origin, point, size, Augment(0.0, 1.0, 1.0))


def patch_size(grid: int, frac: float) -> int:
    """Patch side: ``frac`` of the grid, rounded down to a multiple of 32 (the VGG stride)."""
    size = int(grid * frac) // 32 * 32
    if size < 32:
        raise ValueError(f"train.patch_frac={frac} gives a patch smaller than 32 px on a {grid} grid")
    return size

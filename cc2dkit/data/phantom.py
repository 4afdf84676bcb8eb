"""A procedural, radiograph-like phantom: the kit's embedded default data (nothing to download).

(One module of ~440 lines on purpose: the anatomy, the warp with its exact inverse and the
photometry define one image together and are only ever changed together.)

One fixed *anatomy* is drawn from an internal seed that depends on nothing but ``n_landmarks`` and
``size``, so every split (train, test) shows the same anatomy: a soft skull-like background
(overlapping soft-edged ellipses, a bright bone band, smooth texture and gradients) and ``N``
landmarks, each the key point of a small distinctive glyph (cross centre, L corner, T junction,
centre of a notched ring, triangle tip, chevron vertex, Y junction, square corner) with its own
orientation and size. Landmarks lie at least ``size / 8`` pixels apart.

Each image applies its own random geometry and photometry to the anatomy, drawn from a numpy
Generator seeded by ``(seed, split_name, index)``:

- geometry: an affine map about the image centre (rotation +-8 deg, scale 0.92-1.08, shift +-6 %
  of the size) and a smooth low-frequency displacement (about 2 % of the size);
- photometry: random gamma, contrast, brightness, a linear exposure gradient, gaussian noise.

The image is produced by *backward* warping (each output pixel samples the canonical anatomy
bilinearly at ``B(p)``) and the landmarks are moved by the exact inverse of ``B``, solved by a
contracting fixed-point iteration to far below 0.01 px. Same (seed, split_name, index) gives the
same image and landmarks bit for bit. Images are float32 ``(size, size)`` in [0, 1]; coordinates
use the kit's convention (pixel centres at integers).
"""
from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DataConfig
from .base import LandmarkDataset, Sample

# -- the phantom's definition (fixed constants, not tunables) ---------------------------------
ANATOMY_SEED = 20150419  # the anatomy is the same for every split and every seed
MIN_SIZE = 64  # glyphs need a few pixels of resolution
LANDMARK_BOX = 0.30  # landmarks lie within centre +- LANDMARK_BOX * size (stay inside when warped)
MIN_DISTANCE_FRAC = 1.0 / 8.0  # minimum landmark distance, as a fraction of the size
ROTATION_DEG = 8.0
SCALE_RANGE = (0.92, 1.08)
SHIFT_FRAC = 0.06
DEFORM_FRAC = 0.02  # summed amplitude of the displacement terms, per axis, as a size fraction
DEFORM_TERMS = 3
DEFORM_CYCLES = (0.5, 1.5)  # spatial frequency of the displacement terms (cycles per image)
GAMMA_RANGE = (0.75, 1.33)
CONTRAST_RANGE = (0.85, 1.15)
BRIGHTNESS = 0.05
EXPOSURE_TILT = 0.05
NOISE_RANGE = (0.01, 0.03)
GLYPH_TYPES = ("cross", "corner", "tee", "ring", "triangle", "chevron", "wye", "square")


# -- geometry ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhantomWarp:
    """One image's geometric map between canonical anatomy and image pixels.

    ``backward(p) = A^-1(p + D(p))`` (image -> canonical, used to sample the image), where
    ``A(q) = c + scale * R(angle) (q - c) + shift`` is the affine part about the centre ``c`` and
    ``D`` a sum of sinusoidal displacement terms. ``forward`` is its exact inverse.
    """

    size: int
    angle_rad: float
    scale: float
    shift: np.ndarray  # (2,) pixels
    freqs: np.ndarray  # (2, K, 2): per output axis, per term, frequency vector in cycles/image
    phases: np.ndarray  # (2, K)
    amps: np.ndarray  # (2, K) pixels

    @property
    def centre(self) -> float:
        return (self.size - 1) / 2.0

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """``D(p)`` for (..., 2) points in image pixels."""
        p = np.asarray(points, dtype=np.float64)
        u = (p + 0.5) * (2.0 * math.pi / self.size)
        out = np.zeros_like(p)
        for c in range(2):
            for k in range(self.freqs.shape[1]):
                fx, fy = self.freqs[c, k]
                out[..., c] += self.amps[c, k] * np.sin(fx * u[..., 0] + fy * u[..., 1]
                                                        + self.phases[c, k])
        return out

    def _affine(self, q: np.ndarray) -> np.ndarray:
        co, si = math.cos(self.angle_rad), math.sin(self.angle_rad)
        d = q - self.centre
        x = self.scale * (co * d[..., 0] - si * d[..., 1])
        y = self.scale * (si * d[..., 0] + co * d[..., 1])
        return np.stack([x, y], axis=-1) + self.centre + self.shift

    def _affine_inverse(self, p: np.ndarray) -> np.ndarray:
        co, si = math.cos(self.angle_rad), math.sin(self.angle_rad)
        d = (p - self.centre - self.shift) / self.scale
        x = co * d[..., 0] + si * d[..., 1]
        y = -si * d[..., 0] + co * d[..., 1]
        return np.stack([x, y], axis=-1) + self.centre

    def backward(self, points: np.ndarray) -> np.ndarray:
        """Image pixels -> canonical pixels (the sampling map)."""
        p = np.asarray(points, dtype=np.float64)
        return self._affine_inverse(p + self.displacement(p))

    def forward(self, points: np.ndarray) -> np.ndarray:
        """Canonical pixels -> image pixels: solves ``backward(p) = q`` by fixed-point iteration.

        ``p = A(q) - D(p)`` contracts (|grad D| < 0.3), so it converges geometrically; it stops
        when a step moves no point by more than 1e-10 px.
        """
        target = self._affine(np.asarray(points, dtype=np.float64))
        p = target.copy()
        for _ in range(200):
            nxt = target - self.displacement(p)
            step = np.max(np.abs(nxt - p)) if nxt.size else 0.0
            p = nxt
            if step < 1e-10:
                break
        return p

    def apply(self, canonical: np.ndarray) -> np.ndarray:
        """Warp a canonical (size, size) image: output pixel ``p`` samples ``canonical`` at
        ``backward(p)`` (bilinear, border replicated). Returns float32."""
        s = self.size
        if canonical.shape != (s, s):
            raise ValueError(f"expected a ({s}, {s}) image, got {canonical.shape}")
        u = (np.arange(s, dtype=np.float64) + 0.5) * (2.0 * math.pi / s)
        dx = np.zeros((s, s))
        dy = np.zeros((s, s))
        for c, out in ((0, dx), (1, dy)):
            for k in range(self.freqs.shape[1]):
                fx, fy = self.freqs[c, k]
                # sin(a + b) = sin a cos b + cos a sin b: separable over rows and columns
                a = fy * u + self.phases[c, k]
                b = fx * u
                amp = self.amps[c, k]
                out += np.outer(amp * np.sin(a), np.cos(b)) + np.outer(amp * np.cos(a), np.sin(b))
        xs = np.arange(s, dtype=np.float64)[None, :] + dx
        ys = np.arange(s, dtype=np.float64)[:, None] + dy
        co, si = math.cos(self.angle_rad), math.sin(self.angle_rad)
        ex = (xs - self.centre - self.shift[0]) / self.scale
        ey = (ys - self.centre - self.shift[1]) / self.scale
        qx = co * ex + si * ey + self.centre
        qy = -si * ex + co * ey + self.centre
        return bilinear_sample(canonical, qx, qy)


def bilinear_sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample a (H, W) image at pixel coordinates (pixel centres at integers), border replicated.

    ``x`` and ``y`` share one shape; returns float32 of that shape. Uses ``grid_sample``
    (bilinear, ``align_corners=False``, border padding), deterministic on the CPU.
    """
    h, w = image.shape
    gx = (np.asarray(x, dtype=np.float64) + 0.5) * (2.0 / w) - 1.0
    gy = (np.asarray(y, dtype=np.float64) + 0.5) * (2.0 / h) - 1.0
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1).astype(np.float32)).reshape(1, -1, 1, 2)
    arr = np.ascontiguousarray(image, dtype=np.float32)
    if not arr.flags.writeable:  # torch wants writable memory (cached images are read-only)
        arr = arr.copy()
    src = torch.from_numpy(arr)[None, None]
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(gx.shape).numpy()


def draw_warp(rng: np.random.Generator, size: int) -> PhantomWarp:
    """Draw one image's geometry (the first draws of that image's generator)."""
    angle = math.radians(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
    scale = rng.uniform(*SCALE_RANGE)
    shift = rng.uniform(-SHIFT_FRAC, SHIFT_FRAC, size=2) * size
    direction = rng.uniform(0.0, 2.0 * math.pi, size=(2, DEFORM_TERMS))
    cycles = rng.uniform(*DEFORM_CYCLES, size=(2, DEFORM_TERMS))
    freqs = np.stack([cycles * np.cos(direction), cycles * np.sin(direction)], axis=-1)
    phases = rng.uniform(0.0, 2.0 * math.pi, size=(2, DEFORM_TERMS))
    weights = rng.uniform(0.5, 1.0, size=(2, DEFORM_TERMS))
    amps = weights / weights.sum(axis=1, keepdims=True) * (DEFORM_FRAC * size)
    return PhantomWarp(size=size, angle_rad=angle, scale=scale, shift=shift, freqs=freqs,
                       phases=phases, amps=amps)


# -- the canonical anatomy ---------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def canonical_anatomy(n_landmarks: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The shared anatomy: a (size, size) float32 image and (n_landmarks, 2) float64 landmarks.

    Depends only on ``n_landmarks`` and ``size`` (drawn from :data:`ANATOMY_SEED`). The arrays
    are read-only (they are cached).
    """
    if size < MIN_SIZE:
        raise ValueError(f"phantom size must be at least {MIN_SIZE} pixels, got {size}")
    if n_landmarks < 1:
        raise ValueError(f"phantom needs at least one landmark, got {n_landmarks}")
    image = _background(np.random.default_rng([ANATOMY_SEED, 0]), size)
    centres = _place_landmarks(np.random.default_rng([ANATOMY_SEED, 1]), n_landmarks)
    landmarks = centres * size - 0.5  # normalized [0, 1] -> pixels
    rng = np.random.default_rng([ANATOMY_SEED, 2])  # glyph shapes
    type_angles = rng.uniform(0.0, 2.0 * math.pi, size=len(GLYPH_TYPES))
    for i, point in enumerate(landmarks):
        kind, repeat = GLYPH_TYPES[i % len(GLYPH_TYPES)], i // len(GLYPH_TYPES)
        # repeats of a glyph type turn by the golden angle (137.5 deg), so they stay distinct
        angle = type_angles[i % len(GLYPH_TYPES)] + repeat * math.pi * (3.0 - math.sqrt(5.0))
        arm = size * 0.045 * rng.uniform(0.85, 1.2)
        amplitude = rng.uniform(0.3, 0.4)
        _draw_glyph(image, kind, point, angle, arm, size * 0.011 + 0.5, amplitude)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    image.flags.writeable = False
    landmarks.flags.writeable = False
    return image, landmarks


def _place_landmarks(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` points in the central box, spread by pairwise repulsion; min distance >= 1/8."""
    lo, hi = 0.5 - LANDMARK_BOX, 0.5 + LANDMARK_BOX
    side = hi - lo
    # generous packing bound (hexagonal packing of the box grown by half the distance)
    capacity = int((side / MIN_DISTANCE_FRAC + 1.0) ** 2 * 2.0 / math.sqrt(3.0))
    if n > capacity:
        raise ValueError(f"cannot place {n} phantom landmarks at least 1/8 of the image apart "
                         f"(at most about {capacity} fit); use fewer landmarks")
    target = max(MIN_DISTANCE_FRAC * 1.12, 0.9 * math.sqrt(2.0 * side**2 / (math.sqrt(3.0) * n)))
    p = rng.uniform(lo, hi, size=(n, 2))
    for _ in range(500):
        diff = p[:, None, :] - p[None, :, :]
        d = np.sqrt((diff**2).sum(-1))
        np.fill_diagonal(d, np.inf)
        push = np.clip(target - d, 0.0, None) / 2.0
        if not push.any():
            break
        move = (diff / np.maximum(d, 1e-12)[..., None] * push[..., None]).sum(axis=1)
        p = np.clip(p + move, lo, hi)
    if n > 1:
        d = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
        np.fill_diagonal(d, np.inf)
        if d.min() < MIN_DISTANCE_FRAC:
            raise ValueError(f"cannot place {n} phantom landmarks at least 1/8 of the image apart "
                             f"(closest pair {d.min():.3f}); use fewer landmarks")
    return p


def _soft_ellipse(u, v, cx, cy, rx, ry, angle, edge):
    """1 inside an ellipse, 0 outside, with a linear ramp about ``edge`` wide (normalized units)."""
    co, si = math.cos(angle), math.sin(angle)
    du, dv = u - cx, v - cy
    a = (co * du + si * dv) / rx
    b = (-si * du + co * dv) / ry
    r = np.sqrt(a * a + b * b)
    return np.clip(0.5 - (r - 1.0) * min(rx, ry) / edge, 0.0, 1.0)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Skull-like background in [0, ~0.6], defined in normalized coordinates."""
    t = (np.arange(size, dtype=np.float64) + 0.5) / size
    u, v = t[None, :], t[:, None]
    img = np.broadcast_to(0.06 + 0.04 * v, (size, size)).copy()  # dark film, vertical gradient
    img = img + 0.16 * _soft_ellipse(u, v, 0.5, 0.52, 0.44, 0.47, 0.15, 0.03)  # soft tissue
    outer = _soft_ellipse(u, v, 0.47, 0.44, 0.39, 0.35, 0.1, 0.012)
    inner = _soft_ellipse(u, v, 0.47, 0.44, 0.345, 0.305, 0.1, 0.012)
    img = img + 0.22 * np.clip(outer - inner, 0, 1) + 0.07 * inner  # bone band + vault
    jaw_o = _soft_ellipse(u, v, 0.55, 0.78, 0.3, 0.14, -0.2, 0.01)
    jaw_i = _soft_ellipse(u, v, 0.55, 0.75, 0.26, 0.10, -0.2, 0.01)
    img = img + 0.15 * np.clip(jaw_o - jaw_i, 0, 1)  # mandible-like arc
    for _ in range(6):  # overlapping soft structures
        cx, cy = rng.uniform(0.25, 0.75, size=2)
        rx, ry = rng.uniform(0.05, 0.16, size=2)
        img = img + rng.uniform(-0.06, 0.08) * _soft_ellipse(
            u, v, cx, cy, rx, ry, rng.uniform(0, math.pi), 0.04)
    coarse = rng.uniform(-1.0, 1.0, size=(6, 6))  # smooth texture: upsampled coarse noise
    pos = t * 5.0
    i0 = np.minimum(np.floor(pos).astype(int), 4)
    f = pos - i0
    rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
    tex = rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]
    return img + 0.04 * tex


def _draw_glyph(image: np.ndarray, kind: str, point: np.ndarray, angle: float, arm: float,
                width: float, amplitude: float) -> None:
    """Add one glyph (in place) whose key point is exactly ``point`` (pixels)."""
    size = image.shape[0]
    ux, uy = math.cos(angle), math.sin(angle)
    d = np.array([ux, uy])  # main direction
    n = np.array([-uy, ux])  # perpendicular
    px, py = float(point[0]), float(point[1])
    reach = 1.5 * arm + width + 2.0
    x0, x1 = max(int(px - reach), 0), min(int(px + reach) + 2, size)
    y0, y1 = max(int(py - reach), 0), min(int(py + reach) + 2, size)
    xs = np.arange(x0, x1, dtype=np.float64)[None, :]
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    rx, ry = xs - px, ys - py  # coordinates relative to the key point
    P = np.zeros(2)

    def seg(a, b):
        return _segment_distance(rx, ry, a, b)

    def stroke(dist):
        return np.clip(width / 2.0 + 0.5 - dist, 0.0, 1.0)

    if kind == "cross":
        cov = stroke(np.minimum(seg(-0.5 * arm * d, 1.2 * arm * d), seg(-0.8 * arm * n, arm * n)))
    elif kind == "corner":
        cov = stroke(np.minimum(seg(P, arm * d), seg(P, 0.7 * arm * n)))
    elif kind == "tee":
        cov = stroke(np.minimum(seg(-arm * d, arm * d), seg(P, 1.1 * arm * n)))
    elif kind == "ring":
        r = np.sqrt(rx * rx + ry * ry)
        ring = stroke(np.abs(r - 0.65 * arm))
        ang = np.arctan2(ry, rx) - angle
        gap = np.abs(np.angle(np.exp(1j * ang))) < 0.55  # notch facing the main direction
        cov = np.where(gap, 0.0, ring)
    elif kind == "triangle":
        a, b, c = P, 1.3 * arm * d + 0.7 * arm * n, 1.3 * arm * d - 0.7 * arm * n
        cov = _filled_convex(rx, ry, [a, b, c])
    elif kind == "chevron":
        e1 = arm * np.array([math.cos(angle + 0.45), math.sin(angle + 0.45)])
        e2 = 0.8 * arm * np.array([math.cos(angle - 0.45), math.sin(angle - 0.45)])
        cov = stroke(np.minimum(seg(P, e1), seg(P, e2)))
    elif kind == "wye":
        dist = np.full(rx.shape, np.inf)
        for k, length in enumerate((1.0, 0.8, 0.6)):
            a = angle + k * 2.0 * math.pi / 3.0
            dist = np.minimum(dist, seg(P, length * arm * np.array([math.cos(a), math.sin(a)])))
        cov = stroke(dist)
    elif kind == "square":
        s = 0.9 * arm
        cov = _filled_convex(rx, ry, [P, s * d, s * d + s * n, s * n])
    else:  # pragma: no cover - GLYPH_TYPES is closed
        raise ValueError(kind)
    image[y0:y1, x0:x1] += amplitude * cov


def _segment_distance(rx, ry, a, b):
    ab = b - a
    denom = float(ab @ ab)
    t = np.clip(((rx - a[0]) * ab[0] + (ry - a[1]) * ab[1]) / denom, 0.0, 1.0)
    return np.hypot(rx - a[0] - t * ab[0], ry - a[1] - t * ab[1])


def _filled_convex(rx, ry, pts):
    """Anti-aliased coverage of a convex polygon (signed distance to the farthest edge line)."""
    a, b, c = pts[0], pts[1], pts[2]
    orient = np.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
    sd = np.full(rx.shape, -np.inf)
    for i in range(len(pts)):
        p, q = pts[i], pts[(i + 1) % len(pts)]
        e = q - p
        normal = orient * np.array([e[1], -e[0]]) / math.hypot(*e)  # outward
        sd = np.maximum(sd, (rx - p[0]) * normal[0] + (ry - p[1]) * normal[1])
    return np.clip(0.5 - sd, 0.0, 1.0)


# -- the dataset -------------------------------------------------------------------------------

class PhantomDataset(LandmarkDataset):
    """``n_images`` phantom images of one split; all labelled.

    Args:
        n_images: number of images.
        n_landmarks: landmarks per image (names ``P1``, ``P2``, ...).
        size: image side in pixels (square images).
        seed: seed of the per-image randomness (non-negative).
        split_name: prefix of the ids (``f"{split_name}_{i:03d}"``); it also enters the
            per-image seed, so splits with the same ``seed`` differ.
        spacing_mm: millimetres per pixel reported with the samples.

    Images are generated on first access and cached in the object.
    """

    def __init__(self, n_images: int, n_landmarks: int, size: int, seed: int, split_name: str,
                 spacing_mm: float):
        if n_images < 0:
            raise ValueError(f"n_images must be >= 0, got {n_images}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if not spacing_mm > 0:
            raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
        self.size = int(size)
        self.seed = int(seed)
        self.split_name = str(split_name)
        self.spacing_mm = float(spacing_mm)
        self.canonical_image, self.canonical_landmarks = canonical_anatomy(int(n_landmarks),
                                                                           self.size)
        self.landmark_names = tuple(f"P{k + 1}" for k in range(int(n_landmarks)))
        self.ids = [f"{self.split_name}_{i:03d}" for i in range(int(n_images))]
        self._split_key = zlib.crc32(self.split_name.encode("utf-8"))
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self._split_key, i])

    def warp(self, i: int) -> PhantomWarp:
        """The geometric map of image ``i`` (canonical pixels <-> image pixels)."""
        return draw_warp(self._rng(i), self.size)

    def _generate(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self._rng(i)
        warp = draw_warp(rng, self.size)  # must stay the first draws (see ``warp``)
        image = warp.apply(self.canonical_image)
        landmarks = warp.forward(self.canonical_landmarks)
        gamma = math.exp(rng.uniform(math.log(GAMMA_RANGE[0]), math.log(GAMMA_RANGE[1])))
        contrast = rng.uniform(*CONTRAST_RANGE)
        brightness = rng.uniform(-BRIGHTNESS, BRIGHTNESS)
        tilt = rng.uniform(-EXPOSURE_TILT, EXPOSURE_TILT, size=2)
        sigma = rng.uniform(*NOISE_RANGE)
        noise = rng.standard_normal((self.size, self.size), dtype=np.float32)
        ramp = np.linspace(-1.0, 1.0, self.size, dtype=np.float32)
        image = np.power(image, np.float32(gamma))
        image = (image - 0.5) * np.float32(contrast) + np.float32(0.5 + brightness)
        image += np.float32(tilt[0]) * ramp[None, :] + np.float32(tilt[1]) * ramp[:, None]
        image += np.float32(sigma) * noise
        image = np.clip(image, 0.0, 1.0).astype(np.float32)
        return image, landmarks

    def _load(self, i: int) -> Sample:
        if i not in self._cache:
            self._cache[i] = self._generate(i)
        image, landmarks = self._cache[i]
        return Sample(id=self.ids[i], image=image.copy(), landmarks=landmarks.copy(),
                      spacing_mm=self.spacing_mm)


def make_phantom_splits(cfg: DataConfig, seed: int) -> tuple[PhantomDataset, PhantomDataset]:
    """(train, test) phantom sets of ``cfg.phantom_train`` / ``cfg.phantom_test`` images.

    Both share the anatomy; ids are ``train_NNN`` and ``test_NNN``; the split name enters each
    image's seed, so the two sets never repeat an image.
    """
    common = dict(n_landmarks=cfg.phantom_landmarks, size=cfg.phantom_size, seed=seed,
                  spacing_mm=cfg.phantom_spacing_mm)
    train = PhantomDataset(n_images=cfg.phantom_train, split_name="train", **common)
    test = PhantomDataset(n_images=cfg.phantom_test, split_name="test", **common)
    return train, test

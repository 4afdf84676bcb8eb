"""A label-free shape check of the cascade's answers: a landmark that lands far from where the other
landmarks say it should be is re-picked near that place.

The shape model comes from a predictor's own answers on unlabelled images (no label but the
template's): each answer set is aligned to the running mean shape by a similarity transform
(rotation, scale, shift; robust weights), the per-landmark median of the aligned sets is the mean
shape, and the median distance to it gives each landmark's spread ``sigma`` (grid pixels).

On a query image, the mean shape is fitted to its K answers; landmark k's expected place ``mu_k``
comes from the fit without landmark k (so a wrong answer does not pull its own expectation). An
answer further than ``reach`` x sigma_k from mu_k is replaced by the cascade product's maximum
under a Gaussian of ``reach`` x sigma_k around mu_k: the best match in the plausible region.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .cascade import cascade_argmax

RAYLEIGH_MEDIAN = 1.1774  # median radius of a 2-D isotropic Gaussian of unit sigma: sqrt(2 ln 2)
MIN_SIGMA = 1.0  # grid px: a landmark the answers agree on exactly still gets a pixel of slack


def similarity_fit(src: np.ndarray, dst: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares similarity (Umeyama) taking (K, 2) ``src`` onto ``dst``: (A (2, 2), t (2,))
    with dst ~ src @ A.T + t."""
    w = weights / weights.sum()
    mu_s, mu_d = w @ src, w @ dst
    s, d = src - mu_s, dst - mu_d
    cov = (d * w[:, None]).T @ s  # (2, 2)
    u, sv, vt = np.linalg.svd(cov)
    flip = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])  # a rotation, never a mirror
    rot = u @ flip @ vt
    scale = (sv * np.diag(flip)).sum() / max(float(w @ (s ** 2).sum(axis=1)), 1e-12)
    a = scale * rot
    return a, mu_d - a @ mu_s


def robust_fit(src: np.ndarray, dst: np.ndarray, iterations: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``similarity_fit`` re-weighted (Cauchy weights on the residual over twice its median):
    (A, t, weights (K,))."""
    weights = np.ones(len(src))
    for _ in range(iterations):
        a, t = similarity_fit(src, dst, weights)
        r = np.linalg.norm(src @ a.T + t - dst, axis=1)
        weights = 1.0 / (1.0 + (r / max(2 * float(np.median(r)), 1e-6)) ** 2)
    a, t = similarity_fit(src, dst, weights)
    return a, t, weights


@dataclass(frozen=True)
class ShapeModel:
    mean: np.ndarray  # (K, 2) grid px, in the template's frame
    sigma: np.ndarray  # (K,) grid px: each landmark's spread around the mean after alignment

    @classmethod
    def from_answers(cls, answers: np.ndarray, reference: np.ndarray, rounds: int = 3) -> "ShapeModel":
        """(N, K, 2) answers on unlabelled images, (K, 2) the template's landmarks (the starting frame)."""
        answers = np.asarray(answers, dtype=np.float64)
        if answers.ndim != 3 or answers.shape[1:] != np.shape(reference) or len(answers) < 5:
            raise ValueError(f"a shape model needs answers (N >= 5, K, 2) for the template's {len(reference)} "
                             f"landmarks, got {answers.shape}")
        mean = np.asarray(reference, dtype=np.float64)
        for _ in range(rounds):
            aligned = np.stack([a @ f[0].T + f[1] for a, f in ((a, robust_fit(a, mean)) for a in answers)])
            mean = np.median(aligned, axis=0)
        spread = np.median(np.linalg.norm(aligned - mean, axis=-1), axis=0) / RAYLEIGH_MEDIAN
        return cls(mean, np.maximum(spread, MIN_SIGMA))

    def expected(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 2) answers on one image -> (K, 2) expected places (each from the fit without its own
        landmark) and (K,) spreads in the image's grid pixels (sigma x the fit's scale)."""
        _, _, weights = robust_fit(self.mean, points)
        mu, scale = np.empty_like(points), np.empty(len(points))
        for k in range(len(points)):
            w = weights.copy()
            w[k] = 0.0
            a, t = similarity_fit(self.mean, points, w)
            mu[k], scale[k] = self.mean[k] @ a.T + t, np.sqrt(abs(np.linalg.det(a)))
        return mu, self.sigma * scale

    def guard(self, maps: torch.Tensor, points: np.ndarray, reach: float, subpixel: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
        """(S, B, K, G, G) cascade maps and their (B, K, 2) answers -> (B, K, 2) guarded answers and the
        (B, K) bool mask of the answers that were re-picked."""
        out, moved = np.array(points, dtype=np.float64), np.zeros(points.shape[:2], dtype=bool)
        g = maps.shape[-1]
        ys, xs = torch.meshgrid(torch.arange(g, dtype=torch.float32), torch.arange(g, dtype=torch.float32),
                                indexing="ij")
        for b in range(len(points)):
            mu, sigma = self.expected(out[b])
            far = np.linalg.norm(out[b] - mu, axis=1) > reach * sigma
            for k in np.flatnonzero(far):
                d2 = (xs - float(mu[k, 0])) ** 2 + (ys - float(mu[k, 1])) ** 2
                prior = torch.exp(-0.5 * d2 / float(reach * sigma[k]) ** 2).to(maps.device)
                factors = torch.cat([maps[:, b:b + 1, k:k + 1], prior[None, None, None]])  # (S + 1, 1, 1, G, G)
                out[b, k] = cascade_argmax(factors, subpixel)[0, 0].cpu().double().numpy()
            moved[b] = far
        return out, moved

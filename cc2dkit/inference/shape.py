"""A label-free shape check of the cascade's answers: a landmark that lands far from where the other
landmarks say it should be is re-picked near that place.

The shape model comes from a predictor's own answers on unlabelled images (no label but the
template's): each answer set is aligned to the running mean shape by a similarity transform
(rotation, scale, shift; robust weights), and the per-landmark median of the aligned sets is the
mean shape.

On a query image, landmark k's expected place ``mu_k`` comes from a similarity fit of the mean shape
to the other answers, never to its own (so a wrong answer does not pull its own expectation): to
all K - 1 others (``neighbours=None``), or to the ``neighbours`` landmarks nearest to k in the
mean shape (a local fit: the chin's landmarks say where gonion is better than the nose's do).
Each landmark's spread ``sigma`` is read from its answers' offsets from their own expectations on
the unlabelled images (in the mean shape's frame), across the offsets' long axis only (``spreads``):
a landmark whose answers slide along a ridge (gonion on the mandible's angle) has offsets stretched
along it, which would widen an isotropic spread and so the very check meant to hold it.
``ShapeModel.choose`` takes the neighbourhood size whose expectations the unlabelled answers agree
with best (label-free).

With ``regression`` the expected place in the mean shape's frame is no longer the mean shape's own
point but a linear function of where the neighbours sit in that frame (ridge, robust weights),
fitted to the same unlabelled answers: a mean shape moved rigidly cannot say where a mandible's
angle lies on a skull with a longer ramus; how the neighbours sit can. Its spreads are read from the
leave-one-out residuals (an in-sample fit would narrow them). A regression is linear in every input,
so a neighbour's gross miss would move the expected place by its coefficient (where the rigid fit's
robust weights set it aside): a neighbour further than ``INPUT_REACH`` rigid spreads from its own
rigid expectation enters as the mean shape's point instead (``input_sigma``), when fitting and
when expecting.

An answer further than ``reach`` x sigma_k from mu_k is replaced by the cascade product's answer
under a Gaussian of ``reach`` x sigma_k around mu_k (the Gaussian joins the maps as one more
factor, read as the predictor reads its maps): the best match in the plausible region.

With a prior (``eval.shape_prior`` = c), every answer the check leaves alone is weighed too, by a
Gaussian of c x sigma_k around its expected place: along a ridge of near-equal matches (gonion
on the mandible's angle, one incisal tip beside the other) the place the other landmarks expect wins;
a crisp peak barely moves. With ``eval.shape_prior_cap`` the prior's spreads are at most the median
spread over the landmarks (``ShapeModel.prior_sigma``): the widest spreads belong to the landmarks
whose answers stray most (gonion), which a prior scaled by its own spread would hold least.

``ShapeCheck.guard`` checks twice: a far answer drags its neighbours' expectations, so that on the
first pass a good neighbour can look far (and be pulled towards a wrong place) while a wrong one can
look near. The second pass computes every expectation again from the first pass's checked answers
and checks the unchecked answers against those: only its Gaussians join the maps.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..config import EvalConfig


RAYLEIGH_MEDIAN = 1.1774  # median radius of a 2-D isotropic Gaussian of unit sigma: sqrt(2 ln 2)
HALF_NORMAL_MEDIAN = 0.6745  # median |x| of a 1-D Gaussian of unit sigma
MIN_SIGMA = 1.0  # grid px: a landmark the answers agree on exactly still gets a pixel of slack
AXES_CORE = 3.0  # offsets within this many median radii set a landmark's axes: a few wild answers do not turn them
RIDGE = 10.0  # mean-shape px^2: the regression's penalty; a few dozen inputs from ~150 images must not fit their noise
INPUT_REACH = 3.0  # rigid spreads: a neighbour further than this from its rigid expectation is no regression input


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


def robust_ridge(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE, iterations: int = 4
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) inputs, (N, 2) targets -> (D + 1, 2) coefficients (an unpenalised intercept first) and the
    (N, 2) leave-one-out residuals of the last fit; re-weighted like ``robust_fit`` (Cauchy weights on
    the residual over twice its median), so that a few wrong answers do not set the line."""
    design = np.hstack([np.ones((len(x), 1)), x])  # (N, D + 1)
    penalty = ridge * np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    weights = np.ones(len(x))
    for step in range(iterations + 1):
        inverse = np.linalg.pinv(design.T @ (design * weights[:, None]) + penalty)
        coef = inverse @ design.T @ (y * weights[:, None])
        residual = y - design @ coef
        if step < iterations:
            r = np.linalg.norm(residual, axis=1)
            weights = 1.0 / (1.0 + (r / max(2 * float(np.median(r)), 1e-6)) ** 2)
    leverage = weights * np.einsum("nd,de,ne->n", design, inverse, design)  # (N,) the hat matrix's diagonal
    return coef, residual / np.maximum(1.0 - leverage, 1e-3)[:, None]


def spreads(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) offsets of answers from their expected places (``ShapeModel.offsets``) -> (K,) each
    landmark's isotropic spread (the median radius, Rayleigh-scaled) and (K,) its spread across the
    offsets' long axis (the median offset along the short principal axis of the offsets within
    ``AXES_CORE`` median radii, Gaussian-scaled; the kit's), both at least ``MIN_SIGMA``, the second
    at most the first."""
    radius = np.linalg.norm(offsets, axis=-1)  # (N, K)
    isotropic = np.maximum(np.median(radius, axis=0) / RAYLEIGH_MEDIAN, MIN_SIGMA)
    across = np.empty_like(isotropic)
    for k in range(offsets.shape[1]):
        core = offsets[radius[:, k] <= AXES_CORE * np.median(radius[:, k]), k]  # half of them at least
        short = np.linalg.eigh(np.cov(core.T))[1][:, 0]  # eigenvalues ascending: the short axis first
        across[k] = np.clip(np.median(np.abs(offsets[:, k] @ short)) / HALF_NORMAL_MEDIAN, MIN_SIGMA, isotropic[k])
    return isotropic, across


@dataclass(frozen=True)
class ShapeModel:
    mean: np.ndarray  # (K, 2) grid px, in the template's frame
    sigma: np.ndarray  # (K,) mean-shape px: each landmark's spread around its expected place (``spreads``)
    neighbours: int | None = None  # landmarks each expectation is fitted to (None: all K - 1 others)
    # (K, 2 x group + 1, 2): landmark k's place in the mean shape's frame from its group's places there
    # (intercept first; ``regression``); None: the mean shape's own point
    coef: np.ndarray | None = None
    # (K,) mean-shape px: the rigid check's spreads, which say which neighbours enter the regression as
    # the mean shape's point (``INPUT_REACH``); None: every neighbour as it is (files saved before it)
    input_sigma: np.ndarray | None = None

    @classmethod
    def from_answers(cls, answers: np.ndarray, reference: np.ndarray, rounds: int = 3,
                     neighbours: int | None = None, regression: bool = False) -> "ShapeModel":
        """(N, K, 2) answers on unlabelled images, (K, 2) the template's landmarks (the starting frame)."""
        return cls._fitted(answers, reference, rounds, neighbours, regression)[0]

    @classmethod
    def _fitted(cls, answers: np.ndarray, reference: np.ndarray, rounds: int, neighbours: int | None,
                regression: bool = False) -> tuple["ShapeModel", np.ndarray]:
        """The model (its spreads from the answers' offsets, ``spreads``; with ``regression``, its
        coefficients and their leave-one-out offsets) and the (N, K) distances of the answers to their
        expected places (mean-shape px; ``choose``'s score)."""
        answers = np.asarray(answers, dtype=np.float64)
        k = len(reference)
        if answers.ndim != 3 or answers.shape[1:] != np.shape(reference) or len(answers) < 5:
            raise ValueError(f"a shape model needs answers (N >= 5, K, 2) for the template's {k} "
                             f"landmarks, got {answers.shape}")
        if neighbours is not None and not 2 <= neighbours <= k - 1:
            raise ValueError(f"neighbours must be in [2, K - 1 = {k - 1}] (or None: all others), got {neighbours}")
        mean = np.asarray(reference, dtype=np.float64)
        for _ in range(rounds):
            aligned = np.stack([a @ f[0].T + f[1] for a, f in ((a, robust_fit(a, mean)) for a in answers)])
            mean = np.median(aligned, axis=0)
        rigid = cls(mean, np.ones(k), neighbours)  # the spreads do not enter the offsets
        offsets = rigid.offsets(answers)  # (N, K, 2)
        if not regression:
            return cls(mean, spreads(offsets)[1], neighbours), np.linalg.norm(offsets, axis=-1)
        input_sigma = spreads(offsets)[0]  # isotropic: a slide along a ridge is shape, the input the regression reads
        coef, offsets = rigid._regression(answers, input_sigma)
        return cls(mean, spreads(offsets)[1], neighbours, coef, input_sigma), np.linalg.norm(offsets, axis=-1)

    def _regression(self, answers: np.ndarray, input_sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, 2) answers and (K,) the rigid spreads -> the (K, 2 x group + 1, 2) coefficients of
        ``robust_ridge`` per landmark and the (N, K, 2) leave-one-out offsets (mean shape's frame)."""
        groups = self.groups()
        wild = np.stack([self._wild(p, self._fits(p), input_sigma) for p in answers])  # (N, K)
        fits = [self._clean_fits(p, w) for p, w in zip(answers, wild)]
        coef, offsets = [], np.empty_like(answers)
        for k, g in enumerate(groups):
            framed = np.stack([_into_frame(p, *f[k]) for p, f in zip(answers, fits)])  # (N, K, 2)
            inputs = np.where(wild[:, g, None], 0.0, framed[:, g] - self.mean[g])  # (N, group, 2)
            c, offsets[:, k] = robust_ridge(inputs.reshape(len(answers), -1), framed[:, k] - self.mean[k])
            coef.append(c)
        return np.stack(coef), offsets

    def _wild(self, points: np.ndarray, fits: list, input_sigma: np.ndarray | None) -> np.ndarray:
        """(K, 2) answers and their ``_fits`` -> (K,) bool: the answers further than ``INPUT_REACH`` x
        ``input_sigma`` from their rigid expectations (mean-shape px), none when it is None."""
        if input_sigma is None:
            return np.zeros(len(points), dtype=bool)
        off = np.stack([np.linalg.pinv(a) @ (points[j] - (self.mean[j] @ a.T + t)) for j, (a, t) in enumerate(fits)])
        return np.linalg.norm(off, axis=1) > INPUT_REACH * input_sigma

    def _clean_fits(self, points: np.ndarray, wild: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per landmark k, the robust similarity taking its group's mean-shape points onto their answers,
        the ``wild`` ones left out (all kept when fewer than 2 others would remain): a gross miss must
        not tilt the frame the regression reads its other inputs in."""
        kept = [g[~wild[g]] if (~wild[g]).sum() >= 2 else g for g in self.groups()]
        return [robust_fit(self.mean[g], points[g])[:2] for g in kept]

    @classmethod
    def choose(cls, answers: np.ndarray, reference: np.ndarray, candidates: tuple[int | None, ...],
               regression: bool = False) -> tuple["ShapeModel", dict]:
        """The model (of ``from_answers``, one per neighbourhood size in ``candidates``) whose
        expectations the answers lie closest to (median over every answer, mean-shape px; leave-one-out
        with ``regression``), and each candidate's median: label-free, the answers are the predictor's own."""
        models, scores = {}, {}
        for n in candidates:
            models[n], residuals = cls._fitted(answers, reference, 3, n, regression)
            scores[n] = float(np.median(residuals))
        return models[min(scores, key=scores.get)], scores

    def groups(self) -> list[np.ndarray]:
        """Per landmark k, the landmarks its expectation is fitted to (never k itself)."""
        k = len(self.mean)
        if self.neighbours is None:
            return [np.delete(np.arange(k), i) for i in range(k)]
        dist = np.linalg.norm(self.mean[:, None] - self.mean[None], axis=-1)
        return [np.array([j for j in np.argsort(dist[i], kind="stable") if j != i][:self.neighbours])
                for i in range(k)]

    def expected(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 2) answers on one image -> (K, 2) expected places (each from a fit without its own
        landmark) and (K,) spreads in the image's grid pixels (sigma x the fit's scale)."""
        mu, scale = np.empty_like(points), np.empty(len(points))
        for k, (a, t, place) in enumerate(self._places(points)):
            mu[k], scale[k] = place @ a.T + t, np.sqrt(abs(np.linalg.det(a)))
        return mu, self.sigma * scale

    def _places(self, points: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(K, 2) answers -> per landmark k, the similarity (A, t) of ``_fits`` and k's expected place in
        the mean shape's frame (the mean shape's point, or the regression's from the group's places)."""
        fits = self._fits(points)
        if self.coef is None:
            return [(a, t, self.mean[k]) for k, (a, t) in enumerate(fits)]
        wild = self._wild(points, fits, self.input_sigma)
        fits = self._clean_fits(points, wild) if wild.any() else fits
        inputs = [np.where(wild[g, None], 0.0, _into_frame(points, a, t)[g] - self.mean[g])
                  for (a, t), g in zip(fits, self.groups())]  # per k, (group, 2)
        return [(a, t, self.mean[k] + np.concatenate([[1.0], x.ravel()]) @ self.coef[k])
                for k, ((a, t), x) in enumerate(zip(fits, inputs))]

    def _fits(self, points: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(K, 2) answers -> per landmark k, the similarity (A, t) taking the mean shape onto the
        answers, fitted without k's own answer."""
        if self.neighbours is None:  # one robust fit to all answers, landmark k's weight then set to 0
            weights = robust_fit(self.mean, points)[2]
            return [similarity_fit(self.mean, points, np.where(np.arange(len(points)) == k, 0.0, weights))
                    for k in range(len(points))]
        return [robust_fit(self.mean[g], points[g])[:2] for g in self.groups()]

    def prior_sigma(self, cap: bool) -> np.ndarray:
        """(K,) the spreads the prior's Gaussians are scaled by (mean-shape px): ``sigma``, or with ``cap``
        each at most the median over the landmarks. A spread is how far a landmark's answers stray from
        where the others put it: the shape's own variation plus the detector's misses. A landmark
        that strays more than the typical one is one whose answers slide (gonion along the mandible's
        angle), not one whose anatomy varies more, so the place the others expect deserves no less
        weight there than elsewhere."""
        return np.minimum(self.sigma, np.median(self.sigma)) if cap else self.sigma

    def offsets(self, answers: np.ndarray) -> np.ndarray:
        """(N, K, 2) answers -> (N, K, 2) offsets from their expected places in the mean shape's frame
        (mean-shape px: each fit's scale and rotation undone; pinv: answers all at one point fit a = 0)."""
        return np.stack([np.stack([np.linalg.pinv(a) @ (p[k] - (place @ a.T + t))
                                   for k, (a, t, place) in enumerate(self._places(p))]) for p in np.asarray(answers)])

    def priors(self, points: np.ndarray, reach: float, size: int, expect_from: np.ndarray | None = None,
               prior: float | None = None, prior_cap: bool = False) -> tuple[torch.Tensor, np.ndarray]:
        """(B, K, 2) answers -> a (B, K, G, G) factor for the cascade (a Gaussian of ``reach`` x sigma
        around the expected place for each answer further than that from it; of ``prior`` x sigma for
        every other answer, or 1 when ``prior`` is None; with ``prior_cap`` that sigma at most the
        median spread, ``prior_sigma``) and the (B, K) bool mask of the far answers.
        The expected places come from ``expect_from`` (B, K, 2) when given (other answers on the same
        images), else from ``points``."""
        ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                                indexing="ij")
        factor = torch.ones(*points.shape[:2], size, size)
        far = np.zeros(points.shape[:2], dtype=bool)
        shrink = self.prior_sigma(prior_cap) / self.sigma  # (K,) 1 but where the cap holds a spread in
        for b in range(len(points)):
            mu, sigma = self.expected(points[b] if expect_from is None else expect_from[b])
            far[b] = np.linalg.norm(points[b] - mu, axis=1) > reach * sigma
            for k in (range(len(mu)) if prior is not None else np.flatnonzero(far[b])):
                width = reach * sigma[k] if far[b, k] else prior * (sigma[k] * shrink[k])
                d2 = (xs - float(mu[k, 0])) ** 2 + (ys - float(mu[k, 1])) ** 2
                factor[b, k] = torch.exp(-0.5 * d2 / float(width) ** 2)
        return factor, far


def _into_frame(points: np.ndarray, a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(K, 2) image points -> the mean shape's frame of the similarity (A, t) (pinv: A may be 0)."""
    return (points - t) @ np.linalg.pinv(a).T


NEIGHBOURHOODS = (4, 6, 8, 12, None)  # sizes ShapeCheck.fit chooses from (None: all other landmarks)
MIN_LANDMARKS, MIN_IMAGES = 3, 5  # a similarity fit needs 2 other landmarks; a spread needs a few images


def check_shape_inputs(landmarks: int, images: int, key: str = "eval.shape_reach") -> None:
    """A clear error naming the config ``key`` that asks for a shape model, before any long work,
    when one cannot be fitted."""
    if landmarks < MIN_LANDMARKS:
        raise ValueError(f"{key} needs at least {MIN_LANDMARKS} landmarks (each is expected where "
                         f"the others put it), got {landmarks}; leave {key} unset")
    if images < MIN_IMAGES:
        raise ValueError(f"{key} needs at least {MIN_IMAGES} unlabelled training images to fit its "
                         f"shape model to, got {images}; leave {key} unset")


@dataclass(frozen=True)
class ShapeSettings:
    """The config's ``eval.shape_*`` values in one piece, from the config down to the check: how its
    model is fitted (``regression``) and read (``reach``, ``prior``: None for far answers only,
    ``prior_cap``). The read-time values are never saved in a model file: a run is read with its
    config's."""
    reach: float
    prior: float | None = None
    prior_cap: bool = False  # the prior's spreads at most the median spread (``ShapeModel.prior_sigma``)
    regression: bool = False  # the expected places from the regression on the neighbours

    def __post_init__(self):
        if not self.reach > 0 or (self.prior is not None and not self.prior > 0):
            raise ValueError(f"a shape check needs reach > 0 and prior None or > 0, got {self.reach}, {self.prior}")
        if self.prior_cap and self.prior is None:
            raise ValueError("a shape check's prior_cap needs a prior (the spreads it caps)")

    @classmethod
    def of(cls, e: EvalConfig) -> ShapeSettings | None:
        """The settings ``e`` asks for, None without a shape check (``eval.shape_reach`` unset)."""
        if e.shape_reach is None:
            return None
        return cls(float(e.shape_reach), None if e.shape_prior is None else float(e.shape_prior),
                   bool(e.shape_prior_cap), bool(e.shape_regression))


@dataclass(frozen=True)
class ShapeCheck:
    """A shape model and how it is read: what a predictor needs to guard its answers."""
    model: ShapeModel
    settings: ShapeSettings

    @classmethod
    def fit(cls, answers: np.ndarray, reference: np.ndarray, settings: ShapeSettings) -> ShapeCheck:
        """The check fitted to a predictor's (N, K, 2) answers on unlabelled images, the neighbourhood
        size chosen among ``NEIGHBOURHOODS`` (those under K) by ``ShapeModel.choose``; with
        ``settings.regression`` the expected places come from the regression on the neighbours."""
        n, k = np.shape(answers)[:2]
        check_shape_inputs(k, n)
        sizes = tuple(s for s in NEIGHBOURHOODS if s is None or s <= k - 1)
        return cls(ShapeModel.choose(answers, reference, sizes, settings.regression)[0], settings)

    def guard(self, maps: torch.Tensor, read: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """(S, B, K, G, G) cascade maps and the predictor's reading of maps (-> (B, K, 2) answers) ->
        the (B, K, G, G) factor that joins them: the answers checked against the expectations of the
        answers a first pass of the check gives (see the module docstring)."""
        return self.passes(maps, read)[0]

    def passes(self, maps: torch.Tensor, read: Callable[[torch.Tensor], torch.Tensor]
               ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """``guard``'s two passes: its (B, K, G, G) factor, the (B, K) bool mask of the answers found
        far and the (B, K, 2) first pass's checked answers their expectations came from (what a
        variant of the guard builds on: ``benchmarks/shape_variants.py``)."""
        size, s = maps.shape[-1], self.settings
        answers = read(maps).cpu().double().numpy()
        first = self.model.priors(answers, s.reach, size)[0]
        checked = read(torch.cat([maps, first[None].to(maps.device, maps.dtype)])).cpu().double().numpy()
        factor, far = self.model.priors(answers, s.reach, size, expect_from=checked, prior=s.prior,
                                        prior_cap=s.prior_cap)
        return factor, far, checked

    def state(self) -> dict:
        """What a model file keeps (the settings are the config's)."""
        m = self.model
        return {"mean": m.mean.tolist(), "sigma": m.sigma.tolist(), "neighbours": m.neighbours,
                "coef": None if m.coef is None else m.coef.tolist(),
                "input_sigma": None if m.input_sigma is None else m.input_sigma.tolist()}

    @classmethod
    def from_state(cls, state: dict, settings: ShapeSettings) -> ShapeCheck:
        coef, inputs = state.get("coef"), state.get("input_sigma")  # absent from files saved before them
        model = ShapeModel(np.asarray(state["mean"], dtype=np.float64), np.asarray(state["sigma"], dtype=np.float64),
                           state["neighbours"], None if coef is None else np.asarray(coef, dtype=np.float64),
                           None if inputs is None else np.asarray(inputs, dtype=np.float64))
        return cls(model, settings)

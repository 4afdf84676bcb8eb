"""The one predictor interface: a template, trained model(s), and the cascade, for K landmarks.

Every method's trained result is a :class:`Predictor`; Infer-PL, test prediction, the similarity
maps of the widgets and the command line all go through it:

- ``landmark_indices``: the K dataset landmarks it predicts;
- :meth:`Predictor.matcher`: embeds the template with the current weights and returns a function
  ``(images, keys) -> (S, B, K, G, G)`` similarity maps (the per-scale clamped cosines); with
  template poses (``eval.pose_scales`` x ``eval.pose_rotations_deg``), those of each image's
  best-matching pose (:meth:`Predictor.pose_matcher` gives every pose's);
- :meth:`Predictor.answers`: the (B, K, 2) grid points those maps answer (argmax, sub-pixel peak
  or top centroid, as configured); with a shape check (``eval.shape_reach``, :meth:`Predictor.with_shape`)
  the matcher's maps carry one more factor, a Gaussian where the other landmarks expect an answer
  that lies too far from there (``shape.ShapeCheck``), so every reading of them is guarded;
- :meth:`Predictor.predict_batch`: (B, K, 2) grid points of a batch of grid images;
- :meth:`Predictor.predict_grid`: (N, K, 2) grid points of a dataset (or some of its rows);
- :meth:`Predictor.predict`: (N, L, 2) original pixels, NaN for the landmarks it does not predict;
- :meth:`Predictor.image_maps`: what the cascade sees on one image.

Two kinds: :class:`ModelPredictor` (one model: CC2D, multi, wide, or the C-Adapter, which embeds
an image once per landmark through adapter k) and :class:`ModelSetPredictor` (K single-landmark
models, SLA and C-ATD, run stacked in chunks of ``stack_size``). The template is embedded without
the feature cache, query images with it (through their ``keys``).
"""
from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import MethodConfig
from ..data.base import LandmarkDataset
from ..data.coords import from_grid, to_grid
from ..data.grid import GridImages, resize_to_grid
from ..data.template_aug import affine_image_and_points, augment_template
from ..network import CC2D, StackedModels
from ..runtime import bf16_autocast
from .cascade import best_pose, cascade_argmax, check_centroid, cosine_maps, template_vectors
from .explain import ImageMaps
from .local import LocalPasses, unsettled
from .pool import TemplatePool
from .shape import ShapeCheck, ShapeSettings

Matcher = Callable[[torch.Tensor, list | None], torch.Tensor]  # (B, 1, G, G), keys -> (S, B, K, G, G)
PoseMatcher = Callable[[torch.Tensor, list | None], list[list[torch.Tensor]]]  # ... -> P x S x (B, K, h, w)
# (B, 1, G, G), keys -> groups of landmark positions and their embeddings [(B, D, h, w)] per scale
Embedder = Callable[[torch.Tensor, list | None], Iterator[tuple[list[int], list[torch.Tensor]]]]


@dataclasses.dataclass(frozen=True, eq=False)
class Template:
    """The one labelled image at the model grid and its landmarks (grid pixels, every dataset landmark);
    ``original``: the image at its own resolution (H, W), which a fine stage needs; ``names``: the
    landmarks' names."""

    image: torch.Tensor  # (1, G, G)
    points: np.ndarray  # (L, 2)
    original: np.ndarray | None = None  # (H, W)
    names: tuple[str, ...] = ()

    @classmethod
    def from_data(cls, data: GridImages, image_id: str) -> "Template":
        i = data.index(image_id)
        if not data.labelled[i]:
            raise ValueError(f"template image {image_id!r} has no (or incomplete) landmark annotation")
        return cls(data.images[i], np.asarray(data.landmarks[i], dtype=np.float64), data.dataset[i].image,
                   tuple(data.landmark_names))

    @classmethod
    def from_dataset(cls, dataset: LandmarkDataset, image_id: str, grid: int) -> "Template":
        """The template ``image_id`` read from ``dataset`` (that image only) at ``grid``."""
        sample = dataset[dataset.index(image_id)]
        if sample.landmarks is None or np.isnan(sample.landmarks).any():
            raise ValueError(f"template image {image_id!r} has no (or incomplete) landmark annotation")
        return cls.from_image(sample.image, sample.landmarks, dataset.landmark_names, grid)

    @classmethod
    def from_image(cls, image: np.ndarray, points: np.ndarray, names: Sequence[str], grid: int) -> "Template":
        """A template from an image (H, W) at its own resolution and its (L, 2) landmarks in its pixels."""
        points = np.asarray(points, dtype=np.float64)
        if points.shape != (len(names), 2) or np.isnan(points).any():
            raise ValueError(f"the template needs all of its {len(names)} landmarks, got {points.shape}")
        return cls(resize_to_grid(image, grid), to_grid(points, image.shape[:2], grid), image, tuple(names))

    def augmented(self, n: int, seed: int = 0) -> list["Template"]:
        """``n`` copies of the template moved by random affine maps (the ATD ranges: shift 2%, scale
        1%, rotation 5 degrees), landmarks moved exactly (``data.template_aug``); needs ``original``."""
        if self.original is None:
            raise ValueError("augmented templates need the template's original image (Template.original)")
        points = from_grid(self.points, self.original.shape[:2], self.grid)
        copies = augment_template(self.original, points, MethodConfig(atd_copies=n), self.grid,
                                  torch.Generator().manual_seed(seed))
        return [Template(copies.images[i], copies.landmarks[i], None, self.names) for i in range(n)]

    def posed(self, scale: float, angle: float) -> "Template":
        """The template scaled by ``scale`` and rotated by ``angle`` degrees about its centre (at its
        original resolution, landmarks moved exactly): how it would look on a larger, smaller or
        tilted head. Needs ``original``; (1, 0) is the template itself."""
        if (scale, angle) == (1.0, 0.0):
            return self
        if self.original is None:
            raise ValueError("posed templates need the template's original image (Template.original)")
        size = self.original.shape[:2]
        image = torch.from_numpy(np.asarray(self.original, dtype=np.float32))[None]  # (1, H, W)
        points = torch.from_numpy(from_grid(self.points, size, self.grid))
        warped, moved = affine_image_and_points(image, points, angle, (0.0, 0.0), scale)
        original = warped[0].numpy()
        return Template(resize_to_grid(original, self.grid), to_grid(moved.numpy().astype(np.float64), size, self.grid),
                        original, self.names)

    def subset(self, names: Sequence[str]) -> "Template":
        """This template with only ``names`` (case-insensitive), in that order; an error names the missing."""
        have = {n.lower(): i for i, n in enumerate(self.names)}
        missing = [n for n in names if n.lower() not in have]
        if missing:
            raise ValueError(f"the template has no landmark(s) {missing}; it has {list(self.names)}")
        rows = [have[n.lower()] for n in names]
        return dataclasses.replace(self, points=self.points[rows], names=tuple(names))

    @property
    def grid(self) -> int:
        return self.image.shape[-1]

    def points_of(self, landmark_indices: Sequence[int]) -> torch.Tensor:
        pts = self.points[list(landmark_indices)]
        if np.isnan(pts).any():
            raise ValueError("the template image has no (or incomplete) landmark annotation")
        return torch.as_tensor(pts, dtype=torch.float32)


class Predictor(ABC):
    """K landmarks predicted by matching ``template`` with trained model(s) (see the module docstring)."""

    def __init__(self, template: Template, landmark_indices: Sequence[int], device: torch.device, batch_size: int,
                 subpixel: bool = False, template_copies: int = 0,
                 poses: Sequence[tuple[float, float]] = ((1.0, 0.0),), centroid: float | None = None,
                 bf16: bool = False, local: bool = False):
        self.template = template
        self.landmark_indices = [int(l) for l in landmark_indices]
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.subpixel = subpixel  # sub-pixel peaks (cascade.peak_offset), else the argmax pixel
        self.template_copies = template_copies  # template vectors averaged over this many augmented copies too
        self.poses = check_poses(poses)  # (scale, degrees) of the posed templates; per image the best-matching one
        self.centroid = check_centroid(centroid)  # answer: the product's top centroid at this level (None: argmax)
        self.bf16 = bool(bf16)  # the networks' forward passes in bfloat16 (``embed``), the cosines in float32
        self.local = bool(local)  # answers from the finest decoder stages near them only, where it can (``local.py``)
        self.shape: ShapeCheck | None = None  # the shape check of the maps (``with_shape``)
        self.pool: TemplatePool | None = None  # vectors at its answers on unlabelled images (``with_pool``)

    def configured(self, subpixel: bool, template_copies: int,
                   poses: Sequence[tuple[float, float]] = ((1.0, 0.0),), centroid: float | None = None,
                   bf16: bool | None = None, local: bool | None = None) -> "Predictor":
        """The same model(s) answering with these inference settings (``eval.subpixel``,
        ``eval.template_copies``, the poses of ``eval.pose_scales`` x ``eval.pose_rotations_deg``,
        ``eval.centroid``; ``bf16``: ``eval.amp`` resolved, ``local``: ``eval.local_finest``, None
        keeps this predictor's)."""
        if template_copies < 0:
            raise ValueError(f"template_copies must be >= 0, got {template_copies}")
        other = copy.copy(self)
        other.subpixel, other.template_copies, other.poses = bool(subpixel), int(template_copies), check_poses(poses)
        other.centroid, other.bf16 = check_centroid(centroid), self.bf16 if bf16 is None else bool(bf16)
        other.local = self.local if local is None else bool(local)
        return other

    @property
    def coarse_stage(self) -> "Predictor":
        """The predictor at the model grid: itself, or a refined predictor's coarse stage."""
        return self

    def plain(self, bf16: bool = False) -> "Predictor":
        """The grid argmax against the template alone (no sub-pixel peak, no template copies, one
        pose, no centroid, no shape check, no template pool), its networks in bfloat16 when ``bf16``:
        what Infer-PL and per-epoch tracking use while training (``bf16``: ``train.amp`` resolved, as
        the training step)."""
        return self.configured(False, 0, bf16=bf16).with_shape(None).with_pool(None)

    def with_shape(self, check: ShapeCheck | None) -> "Predictor":
        """The same predictor with this shape check of its maps (None: without one)."""
        other = copy.copy(self)
        other.shape = check
        return other

    def fitted_shape(self, data: GridImages, rows: Sequence[int], settings: ShapeSettings,
                     progress: bool = False) -> "Predictor":
        """This predictor with a shape check of ``settings`` (``ShapeSettings.of(cfg.eval)``) fitted to
        its own answers (without a check) on ``data``'s ``rows`` (unlabelled images: no label is read)."""
        coarse = self.coarse_stage.with_shape(None)
        answers = coarse.predict_grid(data, rows, progress)
        return self.with_shape(ShapeCheck.fit(answers, coarse.template.points[coarse.landmark_indices], settings))

    def with_pool(self, pool: TemplatePool | None) -> "Predictor":
        """The same predictor matching against the template's views joined by this pool (None: the
        template's views alone; ``pool.py``)."""
        if pool is not None and pool.landmarks != len(self.landmark_indices):
            raise ValueError(f"a template pool of {pool.landmarks} landmarks for a predictor of "
                             f"{len(self.landmark_indices)}")
        other = copy.copy(self)
        other.pool = pool
        return other

    def pooled(self, data: GridImages, rows: Sequence[int], progress: bool = False) -> "Predictor":
        """This predictor with a template pool (``eval.template_pool``) from its own answers, as
        configured and without a pool, on ``data``'s ``rows`` (unlabelled images: no label is read)."""
        rows = [int(i) for i in rows]
        answers = self.with_pool(None).predict_grid(data, rows, progress)  # (N, K, 2) grid px
        return self.with_pool(self.coarse_stage.pool_at(data, rows, answers, progress))

    @torch.no_grad()
    def pool_at(self, data: GridImages, rows: Sequence[int], points: np.ndarray, progress: bool = False
                ) -> TemplatePool:
        """The template pool of ``data``'s ``rows`` at ``points`` (N, K, 2) grid px: per scale the
        sum of this predictor's unit vectors there."""
        embed_views, grid, k = self.embedder(), self.template.grid, len(self.landmark_indices)
        rows, sums = [int(i) for i in rows], None
        if not rows or np.shape(points) != (len(rows), k, 2):
            raise ValueError(f"a template pool needs (N >= 1, {k}, 2) points for its N rows, got {np.shape(points)} "
                             f"for {len(rows)} rows")
        for start in tqdm(range(0, len(rows), self.batch_size), desc="template pool", disable=not progress,
                          leave=False):
            chunk = rows[start:start + self.batch_size]
            at = torch.as_tensor(np.asarray(points[start:start + len(chunk)]), dtype=torch.float32, device=self.device)
            for ks, embs in embed_views(data.images[chunk].to(self.device), [data.keys[i] for i in chunk]):
                for b in range(len(chunk)):
                    vectors = template_vectors([e[b:b + 1] for e in embs], at[b, ks], grid)  # S x (L, D)
                    sums = sums or [torch.zeros(k, v.shape[1]) for v in vectors]
                    for total, v in zip(sums, vectors):
                        total[ks] += v.cpu()
        return TemplatePool(tuple(sums), len(rows))

    def template_views(self, pose: tuple[float, float] = (1.0, 0.0)) -> tuple[torch.Tensor, torch.Tensor]:
        """The template in ``pose`` and its augmented copies: images (C, 1, G, G) and the K landmarks
        (C, K, 2) on the device; C = 1 + ``template_copies``."""
        posed = self.template.posed(*pose)
        views = [posed] + (posed.augmented(self.template_copies) if self.template_copies else [])
        images = torch.stack([v.image for v in views]).to(self.device)
        return images, torch.stack([v.points_of(self.landmark_indices) for v in views]).to(self.device)

    def embed(self, net: Callable[..., list[torch.Tensor]], *args) -> list[torch.Tensor]:
        """``net(*args)`` (embeddings or backbone taps), under bfloat16 autocast when ``bf16``;
        returned in float32, so the cosines and everything after them are float32 either way."""
        with bf16_autocast(self.bf16, self.device):
            out = net(*args)
        return [t.float() for t in out]

    @property
    @abstractmethod
    def strides(self) -> tuple[int, ...]:
        """Strides of the S similarity scales, coarse to fine."""

    @abstractmethod
    def embedder(self) -> Embedder:
        """The model(s) with the current weights as ``embed(images, keys)``: yields, group by group,
        landmark positions and their embeddings of the images [(B, D, h, w)] per scale (one group of
        all K for a plain model; one per landmark for a C-Adapter or K single-landmark models)."""

    def pose_vectors(self) -> list[list[list[torch.Tensor]]]:
        """The template's vectors with the current weights: P poses x groups (``embedder``'s) x S x (L, D),
        averaged over its copies and joined by the template pool, if any."""
        embed_views, grid = self.embedder(), self.template.grid
        per_pose = []
        for images, points in (self.template_views(pose) for pose in self.poses):  # (C, 1, G, G), (C, K, 2)
            per_pose.append([mean_vectors(embs, points[:, ks], grid,
                                          None if self.pool is None else self.pool.of(ks, self.device))
                             for ks, embs in embed_views(images, None)])
        return per_pose

    def pose_matcher(self) -> PoseMatcher:
        """Embed the template in each of ``poses`` with the current weights (its vectors averaged
        over its copies and joined by the template pool, if any); returns ``maps(images, keys)`` ->
        P x S x (B, K, h, w): every pose's clamped cosines at each scale's own resolution
        (``cascade.cosine_maps``), the query embedded once."""
        embed_views, per_pose = self.embedder(), self.pose_vectors()

        def maps(images, keys):
            return join_landmarks([pose_cosines(embs, [vectors[g] for vectors in per_pose])
                                   for g, (_, embs) in enumerate(embed_views(images, keys))])
        return maps

    def matcher(self, local: bool = False, need: int = 1) -> Matcher:
        """Embed the template with the current weights; returns ``maps(images, keys)``: per image the
        maps of its best-matching template pose (the only pose, by default), and with a shape check
        its factor after them (S + 1 maps).

        ``local``, for callers that read nothing but this predictor's answers (with and without the
        shape check's factor) and the product within ``need`` grid px of them: with ``self.local``
        and a model that allows it (``local_passes``; one pose), the finest decoder stages run only
        where those readings look, the finest maps 0 elsewhere; pairs the check of ``local.py``
        cannot settle are computed again on the whole map, so the readings are the whole maps'."""
        passes = self.local_passes() if local and self.local and len(self.poses) == 1 else None
        if passes is not None:
            return self.local_matcher(passes, need)
        per_pose, grid = self.pose_matcher(), self.template.grid

        def maps(images, keys):
            return self.guarded(best_pose(per_pose(images, keys), grid))  # (S [+ 1], B, K, G, G)
        return maps

    def guarded(self, found: torch.Tensor, read: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """(S, B, K, G, G) maps -> with a shape check, its factor after them (S + 1 maps; ``read``: how
        the check reads answers, default ``answers``); without one, as they are."""
        if self.shape is None:
            return found
        factor = self.shape.guard(found, read or self.answers)  # (B, K, G, G)
        return torch.cat([found, factor[None].to(found.device, found.dtype)])

    def local_passes(self) -> LocalPasses | None:
        """The model's decoder passes per landmark with croppable finest stages (``local.py``), or
        None (the default; a model with one decoder pass for all K has nothing to crop per landmark)."""
        return None

    def local_matcher(self, passes: LocalPasses, need: int) -> Matcher:
        """``matcher(local=True)`` (see there): local maps, every reading checked, unsettled pairs redone."""
        vectors, level, scales = self.pose_vectors()[0], self.centroid or 1.0, len(self.strides)
        coarse = scales - len(passes.cropped)

        def maps(images, keys):
            found, exact, redo = passes(images, keys, vectors)  # (S, B, K, G, G), (B, K, G, G), whole-map passes
            while True:
                failed = torch.zeros(exact.shape[:2], dtype=torch.bool, device=exact.device)

                def read(m):  # the predictor's reading, and where the local maps may not give it
                    nonlocal failed
                    answers = self.answers(m)
                    failed |= unsettled(m, exact, coarse, scales, level, answers, need)
                    return answers
                out = self.guarded(found, read)
                read(out)  # the final reading (with the check's factor, if any)
                if not failed.any():
                    return out
                redo(found, exact, failed)
        maps.passes = passes  # its counts of pairs and redone pairs, for benchmarks
        return maps

    def redone_pairs(self, data: GridImages, rows: Sequence[int], need: int = 1) -> tuple[int, int] | None:
        """(pairs redone on the whole map, pairs) when this predictor reads ``data``'s rows locally
        (one more pass, for benchmarks); None where ``matcher(local=True)`` gives whole maps."""
        match = self.matcher(local=True, need=need)
        passes = getattr(match, "passes", None)
        if passes is None:
            return None
        for _ in self.map_batches(data, rows, match=match):
            pass
        return passes.redone, passes.pairs

    @property
    def landmark_specific(self) -> bool:
        """Trained for particular landmarks (one adapter or model each): a new template must name them."""
        return True

    @property
    def landmark_names(self) -> list[str]:
        names = self.template.names
        return [names[l] if names else str(l) for l in self.landmark_indices]

    def with_template(self, template: Template) -> "Predictor":
        """The same model(s) matched against another template (e.g. one of the user's own images).

        A landmark-specific predictor (C-Adapter, K single-landmark models) keeps its landmarks:
        the template must name them all (case-insensitive; by position when the model's own template
        has no names, as in model files written before names were stored). A plain model matches any landmarks:
        it then predicts all of the template's, without the shape check and the template pool unless
        they are the same.
        """
        other = copy.copy(self)
        if self.landmark_specific and not self.template.names:
            # a model file from before names were stored: the template's landmarks in the training order
            if len(template.points) <= max(self.landmark_indices):
                raise ValueError(f"the template has {len(template.points)} landmarks; this model predicts landmark "
                                 f"indices {self.landmark_indices} of its training data")
            other.template = template
        elif self.landmark_specific:
            other.template = template.subset(self.landmark_names)
            other.landmark_indices = list(range(len(self.landmark_indices)))
        else:
            other.template = template
            other.landmark_indices = list(range(len(template.points)))
            if other.landmark_names != self.landmark_names:  # the shape model and pool know the old landmarks only
                other.shape = other.pool = None
        return other

    def answers(self, maps: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """(S, B, K, G, G) similarity maps -> (B, K, 2) grid points as configured: the product's argmax
        (sub-pixel with ``subpixel``) or its top centroid (``centroid``); over the True pixels of
        ``allowed`` only, when given (``cascade.cascade_argmax``)."""
        return cascade_argmax(maps, self.subpixel, allowed, self.centroid)

    @torch.no_grad()
    def predict_batch(self, images: torch.Tensor, keys: list | None = None) -> np.ndarray:
        """(B, 1, G, G) grid images -> (B, K, 2) grid points (``keys``: their feature-cache keys)."""
        return self.answers(self.matcher(local=True)(images.to(self.device), keys)).cpu().double().numpy()

    @torch.no_grad()
    def map_batches(self, data: GridImages, rows: Sequence[int], progress: bool = False, desc: str = "predict",
                    local: bool = False, need: int = 1, match: Matcher | None = None):
        """Yields (start, chunk, maps): ``rows`` in batches of ``batch_size`` (``chunk``: the rows of
        the batch, ``start``: its position in ``rows``) and the batch's (S, B, K, G, G) similarity maps
        (``local`` / ``need``: ``matcher``'s, for callers that read only the answers; ``match``: a
        matcher made already, used instead)."""
        match = match or self.matcher(local, need)
        for start in tqdm(range(0, len(rows), self.batch_size), desc=desc, disable=not progress, leave=False):
            chunk = list(rows[start:start + self.batch_size])
            yield start, chunk, match(data.images[chunk].to(self.device), [data.keys[i] for i in chunk])

    @torch.no_grad()
    def predict_grid(self, data: GridImages, rows: Sequence[int] | None = None, progress: bool = False) -> np.ndarray:
        """(N, K, 2) grid points of ``data``'s rows (default: all) for the K landmarks."""
        rows = list(range(len(data))) if rows is None else [int(i) for i in rows]
        out = np.zeros((len(rows), len(self.landmark_indices), 2))
        for start, chunk, maps in self.map_batches(data, rows, progress, local=True):
            out[start:start + len(chunk)] = self.answers(maps).cpu().double().numpy()
        return out

    def predict(self, data: GridImages, progress: bool = False) -> np.ndarray:
        """(N, L, 2) original pixels of every image; NaN for the landmarks this predictor does not predict."""
        return self.to_original(data, self.predict_grid(data, progress=progress))

    def to_original(self, data: GridImages, grid_points: np.ndarray) -> np.ndarray:
        """(N, K, 2) grid points of every image of ``data`` -> (N, L, 2) original pixels, NaN elsewhere."""
        return data.to_original(grid_points, self.landmark_indices)

    @torch.no_grad()
    def image_maps(self, data: GridImages, index: int) -> ImageMaps:
        """The similarity maps of the K landmarks on ``data`` row ``index`` (order of ``landmark_indices``)."""
        if not 0 <= index < len(data):
            raise IndexError(f"image index {index} out of range for {len(data)} images")
        image = data.images[index]
        maps = self.matcher()(image[None].to(self.device), [data.keys[index]])  # (S [+ 1], 1, K, G, G)
        pred = self.answers(maps)[0].cpu().double().numpy()  # with the shape check's factor, if any
        truth = data.landmarks[index][self.landmark_indices] if data.labelled[index] else None
        scales = maps[:len(self.strides), 0].cpu().numpy()  # the S scales' maps (not the shape factor)
        return ImageMaps(image[0].cpu().numpy(), scales, tuple(self.strides), pred, truth)


class ModelPredictor(Predictor):
    """One model for the K landmarks. A landmark-specific model (C-Adapter, ``model.n_landmarks`` = K)
    embeds the template and every query once per landmark k, with landmark id k."""

    def __init__(self, model: CC2D, template: Template, landmark_indices: Sequence[int], device: torch.device,
                 batch_size: int, subpixel: bool = False, template_copies: int = 0,
                 poses: Sequence[tuple[float, float]] = ((1.0, 0.0),), centroid: float | None = None,
                 bf16: bool = False, local: bool = False):
        super().__init__(template, landmark_indices, device, batch_size, subpixel, template_copies, poses, centroid,
                         bf16, local)
        if model.n_landmarks and model.n_landmarks != len(self.landmark_indices):
            raise ValueError(f"a model with {model.n_landmarks} landmark adapters for "
                             f"{len(self.landmark_indices)} landmarks")
        self.model = model

    @property
    def strides(self) -> tuple[int, ...]:
        return self.model.strides

    @property
    def landmark_specific(self) -> bool:
        return bool(self.model.n_landmarks)

    def local_passes(self) -> LocalPasses | None:
        """A C-Adapter's decoder once per landmark, its finest stages croppable (``local.py``)."""
        model = self.model.eval()
        if not model.n_landmarks or not model.decoder.croppable:
            return None
        return LocalPasses(lambda images, keys: self.embed(model.taps, images, keys),
                           lambda taps, k, crops: self.embed(model.decoder, taps, k, crops),
                           model.strides, model.decoder.croppable, self.template.grid)

    def embedder(self) -> Embedder:
        model, everyone = self.model.eval(), list(range(len(self.landmark_indices)))

        def plain(images, keys=None):
            yield everyone, self.embed(model, images, keys)

        def per_adapter(images, keys=None):
            taps = self.embed(model.taps, images, keys)  # the backbone once; the decoder once per adapter
            for k in range(model.n_landmarks):
                yield [k], self.embed(model.decoder, taps, k)
        return per_adapter if model.n_landmarks else plain


class ModelSetPredictor(Predictor):
    """K single-landmark models, model k for landmark ``landmark_indices[k]``, run as stacks of at most
    ``stack_size`` models (None: all K): each image batch is embedded once per stack."""

    def __init__(self, models: Sequence[CC2D], template: Template, landmark_indices: Sequence[int],
                 device: torch.device, batch_size: int, stack_size: int | None = None, subpixel: bool = False,
                 template_copies: int = 0, poses: Sequence[tuple[float, float]] = ((1.0, 0.0),),
                 centroid: float | None = None, bf16: bool = False, local: bool = False):
        super().__init__(template, landmark_indices, device, batch_size, subpixel, template_copies, poses, centroid,
                         bf16, local)
        if len(models) != len(self.landmark_indices):
            raise ValueError(f"{len(models)} models for {len(self.landmark_indices)} landmarks")
        self.models = list(models)
        self.chunks = stack_chunks(len(self.models), stack_size)

    @property
    def strides(self) -> tuple[int, ...]:
        return self.models[0].strides

    def local_passes(self) -> LocalPasses | None:
        """Model k's decoder for landmark k, one model at a time (a stack cannot crop per model),
        their finest stages croppable (``local.py``); the backbone they share once."""
        first = self.models[0]
        if not first.decoder.croppable:
            return None
        for model in self.models:
            model.eval()
        return LocalPasses(lambda images, keys: self.embed(first.taps, images, keys),
                           lambda taps, k, crops: self.embed(self.models[k].decoder, taps, None, crops),
                           first.strides, first.decoder.croppable, self.template.grid)

    def embedder(self) -> Embedder:
        stacks = [(chunk, StackedModels([self.models[k] for k in chunk]).eval()) for chunk in self.chunks]

        def embed(images, keys=None):
            for chunk, stack in stacks:
                embs = self.embed(stack, images, keys)  # [(K_c, B, D, h, w)]: the stack's models at once
                for j, k in enumerate(chunk):
                    yield [k], [e[j] for e in embs]
        return embed


def pose_cosines(embs: list[torch.Tensor], per_pose: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
    """Query embeddings [(B, D, h, w)] x P poses' template vectors [(L, D)] -> P x S x (B, L, h, w)
    clamped cosines: one product per scale for all poses (P small calls cost more than one)."""
    if len(per_pose) == 1:
        return [cosine_maps(embs, per_pose[0])]
    n = per_pose[0][0].shape[0]
    joint = cosine_maps(embs, [torch.cat(level) for level in zip(*per_pose)])  # S x (B, P * L, h, w)
    return [[m[:, p * n:(p + 1) * n] for m in joint] for p in range(len(per_pose))]


def join_landmarks(per_landmark: list[list[list[torch.Tensor]]]) -> list[list[torch.Tensor]]:
    """Groups of landmarks' P x S x (B, L, h, w) maps -> P x S x (B, K, h, w) (one group: as it is)."""
    if len(per_landmark) == 1:
        return per_landmark[0]
    return [[torch.cat(level, dim=1) for level in zip(*per_k)] for per_k in zip(*per_landmark)]


def mean_vectors(embs: list[torch.Tensor], points: torch.Tensor, grid: int,
                 pool: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Template vectors of C views [(C, D, h, w)] at their points (C, K, 2), averaged over the views
    and made unit length again: [(K, D)] (C = 1: the template's own vectors). With ``pool`` (per
    scale a template pool's (K, D) mean vectors), that mean is added to the views' mean first (equal
    weight; ``pool.py``)."""
    per_view = [template_vectors([e[c:c + 1] for e in embs], points[c], grid) for c in range(len(points))]
    if pool is None:
        return average_views(per_view)
    return [torch.nn.functional.normalize(torch.stack(level).mean(0) + extra, dim=1)
            for level, extra in zip(zip(*per_view), pool)]


def average_views(per_view: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """C views' template vectors, [(K, D)] per scale each -> their mean per scale, made unit length
    again (one view: as it is)."""
    if len(per_view) == 1:
        return per_view[0]
    return [torch.nn.functional.normalize(torch.stack(level).mean(0), dim=1) for level in zip(*per_view)]


def check_poses(poses: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Template poses as (scale > 0, degrees) pairs, at least one, no two alike."""
    out = tuple((float(s), float(a)) for s, a in poses)
    if not out or len(set(out)) != len(out) or any(s <= 0 for s, _ in out):
        raise ValueError(f"template poses must be distinct (scale > 0, degrees) pairs, at least one; got {poses}")
    return out


def stack_chunks(k: int, stack_size: int | None) -> list[list[int]]:
    """Model indices 0..k-1 in stacks of at most ``stack_size`` (None: all in one)."""
    size = k if stack_size is None else stack_size
    if size < 1:
        raise ValueError(f"method.stack_size must be >= 1 or None, got {stack_size}")
    return [list(range(i, min(i + size, k))) for i in range(0, k, size)]


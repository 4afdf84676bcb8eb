"""The high-resolution fine stage: each coarse answer refined by matching a crop at ``scale`` x the grid.

The coarse predictor answers on the model grid (e.g. 192: about 1.1 mm per grid pixel on ISBI).
For landmark k on an image, :class:`RefinedPredictor` resizes the original image to the *fine
grid* (``scale`` x the grid), cuts a ``crop`` x ``crop`` window around the coarse answer, and
matches it with a second network (trained by the same self-supervision on such windows, see
``training.CropPatchSource``) against the template's window around its landmark k: the cascade of
the fine network's maps inside the window, its argmax (sub-pixel with ``subpixel``; its top
centroid with ``centroid``, the coarse stage's setting, as the coarse answer) is the answer.
The fine network is one plain CC2D for every landmark and every method (the coarse predictor may
be any :class:`~cc2dkit.inference.Predictor`).

``coarse_gate``: the coarse cascade's product, sampled at the window's pixels, joins the fine maps
as one more factor of the product, so the fine argmax stays inside the coarse answer's basin (the
cascade's own rule: a coarse scale gates the finer ones). Without it the fine network alone
decides inside the window.

``whole_image``: the fine network embeds the whole image at the fine grid once (the template too)
and each landmark's window is cut from its maps, instead of embedding K windows: cheaper when the
windows overlap (K x crop^2 > fine grid^2), with more context than the network trained on; its
memory grows with the fine grid's area (at 4 x 384 = 1536 pixels, use windows on a small machine).

``max_move``: the fine answer stays within this many grid pixels of the coarse answer (a disk in
the window; None: anywhere in it). The fine stage is for the last few millimetres: a look-alike
further away (the other side's gonion, a neighbouring tooth) is the coarse stage's question.

``fine_copies``: the fine stage's template vectors are averaged over the coarse stage's
``template_copies`` augmented copies of the template too (made at the fine grid), as the coarse
stage's are; otherwise the template alone gives them.

``back_check`` (grid px): a round trip at the fine stage. The query's fine vectors at the fine
answer, and at the coarse one, are each matched back over the template's window around its
landmark (the cascade of the fine maps, argmax); how far that back-match lands from the template's
landmark is the answer's *back miss*. Where the fine answer's back miss exceeds ``back_check`` and
the coarse answer's is smaller, the coarse answer stays: the fine stage found a place that does not
look back at the template's landmark (a look-alike further along a ridge), and the coarse answer
looks back better. No label is read: the template's own landmark is the reference.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import RefineConfig
from ..data.grid import GridImages, resize_to_grid
from ..network import CC2D
from ..network.sampling import sample_at
from .cascade import CLOSED_GATE_FLOOR, cascade_argmax, similarity_maps, template_vectors, to_peak
from .predictor import Embedder, Matcher, PoseMatcher, Predictor, Template, average_views, mean_vectors


def crop_origins(points: torch.Tensor, crop: int, size: int) -> torch.Tensor:
    """(R, 2) fine-grid points -> (R, 2) long origins of ``crop`` windows centred on them, inside the grid."""
    return (points.round().long() - crop // 2).clamp(0, size - crop)


def cut(image: torch.Tensor, origins: torch.Tensor, crop: int) -> torch.Tensor:
    """(1, H, W) image, (R, 2) origins (x, y) -> (R, 1, crop, crop) windows."""
    return torch.stack([image[:, y:y + crop, x:x + crop] for x, y in origins.tolist()])


class RefinedPredictor(Predictor):
    """``coarse``'s answers refined at ``scale`` x the grid (see the module docstring).

    ``fine``: the fine network; ``template_fine``: the template image at the fine grid (1, G_f, G_f).
    ``matcher`` / ``image_maps`` are the coarse stage's (what the cascade sees at the grid);
    ``predict_grid`` / ``predict`` give the refined answers (they read the original images through
    ``data.dataset``).
    """

    def __init__(self, coarse: Predictor, fine: CC2D, template_fine: torch.Tensor, scale: int, crop: int,
                 coarse_gate: bool = False, max_move: float | None = None, whole_image: bool = False,
                 fine_copies: bool = False, back_check: float | None = None):
        # the coarse stage's settings, so that reading them off either stage (configured()) gives the same
        super().__init__(coarse.template, coarse.landmark_indices, coarse.device, coarse.batch_size, coarse.subpixel,
                         coarse.template_copies, coarse.poses, coarse.centroid, coarse.bf16, coarse.local)
        if fine.n_landmarks:
            raise ValueError("the fine network is one plain CC2D for every landmark")
        fine_grid = scale * coarse.template.grid
        if template_fine.shape[-1] != fine_grid or crop % 32 or not 32 <= crop <= fine_grid:
            raise ValueError(f"a fine stage at scale {scale} needs a {fine_grid}-pixel template and a crop that is a "
                             f"multiple of 32 inside it, got {tuple(template_fine.shape)} and crop {crop}")
        self.coarse, self.fine, self.template_fine = coarse, fine, template_fine
        if max_move is not None and max_move <= 0:
            raise ValueError(f"max_move={max_move}: a positive number of grid pixels, or None")
        self.scale, self.crop, self.coarse_gate, self.max_move = scale, crop, coarse_gate, max_move
        if back_check is not None and back_check <= 0:
            raise ValueError(f"back_check={back_check}: a positive number of grid pixels, or None")
        self.whole_image, self.fine_copies, self.back_check = whole_image, fine_copies, back_check
        self._back_template = None  # the template's fine embedding for back_check, made on first use
        self.shape = coarse.shape  # the coarse stage's maps carry it, and so the gate
        self.pool = coarse.pool  # the coarse stage matches against it

    @staticmethod
    def settings_of(rc: RefineConfig) -> dict:
        """The ``refine`` section's inference settings as this class's keyword arguments."""
        return {"coarse_gate": rc.coarse_gate, "max_move": rc.max_move, "whole_image": rc.whole_image,
                "fine_copies": rc.template_copies, "back_check": rc.back_check}

    @classmethod
    def build(cls, coarse: Predictor, fine: CC2D, template_fine: torch.Tensor, rc: RefineConfig) -> "RefinedPredictor":
        """The fine stage as the config's ``refine`` section says."""
        return cls(coarse, fine, template_fine, rc.scale, rc.crop, **cls.settings_of(rc))

    @property
    def settings(self) -> dict:
        """This fine stage's inference settings (``settings_of``'s keys)."""
        return {"coarse_gate": self.coarse_gate, "max_move": self.max_move, "whole_image": self.whole_image,
                "fine_copies": self.fine_copies, "back_check": self.back_check}

    def variant(self, coarse: Predictor | None = None, **changes) -> "RefinedPredictor":
        """The same fine stage on another coarse predictor and / or with other ``settings``."""
        return RefinedPredictor(coarse or self.coarse, self.fine, self.template_fine, self.scale, self.crop,
                                **{**self.settings, **changes})

    def configured(self, subpixel: bool, template_copies: int,
                   poses: Sequence[tuple[float, float]] = ((1.0, 0.0),), centroid: float | None = None,
                   bf16: bool | None = None, local: bool | None = None) -> "RefinedPredictor":
        """Both stages with these settings (the fine stage reads its windows as the coarse stage its maps)."""
        return self.variant(self.coarse.configured(subpixel, template_copies, poses, centroid, bf16, local))

    def with_shape(self, check) -> "RefinedPredictor":
        """The fine stage on the coarse stage with this shape check (None: without one)."""
        return self.variant(self.coarse.with_shape(check))

    def with_pool(self, pool) -> "RefinedPredictor":
        """The fine stage on the coarse stage with this template pool (None: without one)."""
        return self.variant(self.coarse.with_pool(pool))

    @property
    def coarse_stage(self) -> Predictor:
        return self.coarse

    @property
    def gate_need(self) -> int:
        """Grid px around a coarse answer where the gate is read: within ``max_move`` (+ the bilinear
        sources of its samples; what ``Predictor.matcher(local=True)`` must get right)."""
        return math.ceil(self.max_move or 0) + 2

    @property
    def fine_grid(self) -> int:
        return self.scale * self.template.grid

    @property
    def strides(self) -> tuple[int, ...]:
        return self.coarse.strides

    def matcher(self, local: bool = False, need: int = 1) -> Matcher:
        return self.coarse.matcher(local, need)

    def pose_matcher(self) -> PoseMatcher:
        return self.coarse.pose_matcher()

    def embedder(self) -> Embedder:
        return self.coarse.embedder()

    @property
    def landmark_specific(self) -> bool:
        return self.coarse.landmark_specific

    def with_template(self, template: Template) -> "RefinedPredictor":
        """Both stages matched against another template; it needs its original image (``Template.original``)."""
        if template.original is None:
            raise ValueError("a refined predictor needs the template's original image (Template.original)")
        return RefinedPredictor(self.coarse.with_template(template), self.fine,
                                resize_to_grid(template.original, self.fine_grid), self.scale, self.crop,
                                **self.settings)

    def to_fine(self, grid_points: np.ndarray) -> torch.Tensor:
        """Grid points -> fine-grid points (both span the same stretched image)."""
        return torch.as_tensor((np.asarray(grid_points) + 0.5) * self.scale - 0.5, dtype=torch.float32)

    def fine_views(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The template at the fine grid, and with ``fine_copies`` its ``template_copies`` augmented
        copies there: images (C, 1, G_f, G_f) and the K landmarks (C, K, 2) in fine-grid pixels."""
        points = self.to_fine(self.template.points[self.landmark_indices])  # (K, 2)
        if not (self.fine_copies and self.template_copies):
            return self.template_fine[None], points[None]
        at_fine = Template(self.template_fine, self.to_fine(self.template.points).double().numpy(),
                           self.template.original, self.template.names)
        copies = at_fine.augmented(self.template_copies)  # the same random moves as the coarse stage's copies
        return (torch.stack([self.template_fine, *(c.image for c in copies)]),
                torch.stack([points, *(c.points_of(self.landmark_indices) for c in copies)]))

    @torch.no_grad()
    def fine_vectors(self) -> list[torch.Tensor]:
        """The fine network's template vectors of the K landmarks (averaged over ``fine_views``):
        [(K, D)] per scale."""
        self.fine.eval()
        images, points = self.fine_views()  # (C, 1, G_f, G_f), (C, K, 2)
        if self.whole_image:
            return mean_vectors(self.embed(self.fine, images.to(self.device)), points.to(self.device), self.fine_grid)
        return average_views([self.window_vectors(image, view_points) for image, view_points in zip(images, points)])

    def window_vectors(self, image: torch.Tensor, points: torch.Tensor) -> list[torch.Tensor]:
        """One template view (1, G_f, G_f) and its (K, 2) landmarks -> [(K, D)] per scale, each
        landmark's vector read in its own window (what the network trained on)."""
        origins = crop_origins(points, self.crop, self.fine_grid)
        embs = self.embed(self.fine, cut(image, origins, self.crop).to(self.device))  # [(K, D, h, w)]
        local = (points - origins.float()).to(self.device)  # each landmark inside its own window
        per_k = [template_vectors([e[k:k + 1] for e in embs], local[k:k + 1], self.crop) for k in range(len(points))]
        return [torch.cat(level) for level in zip(*per_k)]

    @torch.no_grad()
    def window_maps(self, image: np.ndarray, grid_points: np.ndarray, vectors: list[torch.Tensor],
                    coarse_product: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """One image (H, W, original resolution) and its (K, 2) coarse grid points -> the fine maps
        (S, K, C, C) of each landmark's window, one more factor with ``coarse_product`` (K, G, G,
        the coarse cascade's product on the image: the gate), the (K, 2) window origins and the
        image's fine embeddings (whole image: [(1, D, h, w)] over the fine grid; else [(K, D, h, w)],
        one per window), which ``back_misses`` reads."""
        fine_image = resize_to_grid(image, self.fine_grid)  # (1, G_f, G_f)
        origins = crop_origins(self.to_fine(grid_points), self.crop, self.fine_grid)  # (K, 2)
        if self.whole_image:  # the fine image embedded once; each landmark's window cut from its maps
            embs = self.embed(self.fine, fine_image[None].to(self.device))
            full = similarity_maps(embs, vectors, self.fine_grid)[:, 0]
            maps = torch.stack([full[:, k, y:y + self.crop, x:x + self.crop]
                                for k, (x, y) in enumerate(origins.tolist())], dim=1)  # (S, K, C, C)
        else:
            embs = self.embed(self.fine, cut(fine_image, origins, self.crop).to(self.device))  # [(K, D, h, w)]
            maps = torch.cat([similarity_maps([e[k:k + 1] for e in embs], [v[k:k + 1] for v in vectors],
                                              self.crop)[:, 0] for k in range(len(origins))], dim=1)  # (S, K, C, C)
        if coarse_product is not None:  # one more factor of the product: (S + 1, K, C, C)
            maps = torch.cat([maps, window_gate(coarse_product, origins, self.crop, self.fine_grid)[None]])
        return maps, origins, embs

    def answer(self, maps: torch.Tensor, origins: torch.Tensor, grid_points: np.ndarray,
               max_move: float | None) -> np.ndarray:
        """``window_maps``' output -> (K, 2) refined grid points, each within ``max_move`` grid px of its
        coarse point (None: anywhere in its window)."""
        allowed = None
        if max_move is not None:  # a disk of max_move grid px = scale x max_move fine px
            centre = self.to_fine(grid_points) - origins.float()  # (K, 2) in the windows
            steps = torch.arange(self.crop, dtype=torch.float32)
            dx2 = (steps[None, None, :] - centre[:, 0, None, None]) ** 2  # (K, 1, C)
            dy2 = (steps[None, :, None] - centre[:, 1, None, None]) ** 2  # (K, C, 1)
            allowed = (dx2 + dy2 <= (self.scale * max_move) ** 2)[None].to(maps.device)  # (1, K, C, C)
        # (S, B=1, K, C, C) -> (K, 2) in the windows; a top centroid over the allowed pixels only
        local = self.answers(maps[:, None], allowed)[0].cpu()
        fine_points = (local + origins.float()).double().numpy()
        return (fine_points + 0.5) / self.scale - 0.5

    def final(self, maps: torch.Tensor, origins: torch.Tensor, grid_points: np.ndarray,
              embs: list[torch.Tensor]) -> np.ndarray:
        """``window_maps``' output -> (K, 2) refined grid points as configured (``max_move``, ``back_check``)."""
        fine = self.answer(maps, origins, grid_points, self.max_move)
        if self.back_check is None:
            return fine
        misses = self.back_misses(embs, origins, np.stack([fine, grid_points]))  # (2, K)
        return back_checked(fine, grid_points, misses, self.back_check)

    def refine(self, image: np.ndarray, grid_points: np.ndarray, vectors: list[torch.Tensor],
               coarse_product: torch.Tensor | None = None) -> np.ndarray:
        """One image and its (K, 2) coarse grid points -> refined grid points (see ``window_maps``)."""
        maps, origins, embs = self.window_maps(image, grid_points, vectors, coarse_product)
        return self.final(maps, origins, grid_points, embs)

    def back_template(self) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """The template at the fine grid as ``back_misses`` reads it, made once: its fine embeddings
        (whole image: [(1, D, h, w)]; else [(K, D, h, w)] of the K windows around its landmarks), the
        (K, 2) origins of its windows and its (K, 2) landmarks inside them (fine px)."""
        if self._back_template is None:
            self.fine.eval()
            points = self.to_fine(self.template.points[self.landmark_indices])  # (K, 2)
            origins = crop_origins(points, self.crop, self.fine_grid)
            with torch.no_grad():
                if self.whole_image:
                    embs = self.embed(self.fine, self.template_fine[None].to(self.device))
                else:
                    embs = self.embed(self.fine, cut(self.template_fine, origins, self.crop).to(self.device))
            self._back_template = (embs, origins, points - origins.float())
        return self._back_template

    @torch.no_grad()
    def back_misses(self, embs: list[torch.Tensor], origins: torch.Tensor, grid_points: np.ndarray) -> np.ndarray:
        """An image's fine embeddings and window origins (``window_maps``), (P, K, 2) grid points on it ->
        (P, K) back misses in grid px: the query's fine vectors at each point, matched over the
        template's window around landmark k (the cascade product's argmax), land this far from the
        template's landmark k (see the module docstring; the argmax sub-pixel)."""
        t_embs, t_origins, t_local = self.back_template()
        n_points, k = np.asarray(grid_points).shape[:2]
        fine_points = self.to_fine(np.asarray(grid_points).reshape(-1, 2)).to(self.device)  # (P*K, 2)
        if self.whole_image:  # [(P*K, D)] read off the whole image's maps
            vectors = template_vectors(embs, fine_points, self.fine_grid)
        else:  # each landmark's points read in its own window
            owner = torch.arange(n_points * k, device=self.device) % k  # (P*K,) the window of each point
            local = fine_points - origins.to(self.device).float()[owner]
            vectors = [F.normalize(sample_at(e[owner], local, self.crop), dim=1) for e in embs]
        vectors = [v.reshape(n_points, k, -1) for v in vectors]  # [(P, K, D)]
        back = torch.empty(n_points, k, 2)
        for j in range(k):  # landmark j's P vectors over the template's window around landmark j
            if self.whole_image:
                x, y = t_origins[j].tolist()
                maps = similarity_maps(t_embs, [v[:, j] for v in vectors], self.fine_grid)[:, :, :, y:y + self.crop,
                                                                                        x:x + self.crop]
            else:
                maps = similarity_maps([e[j:j + 1] for e in t_embs], [v[:, j] for v in vectors], self.crop)
            back[:, j] = cascade_argmax(maps, subpixel=True)[0].cpu()  # (S, 1, P, C, C) -> (P, 2) in the window
        return (back - t_local[None]).norm(dim=-1).numpy() / self.scale

    @torch.no_grad()
    def windows(self, data: GridImages, rows: Sequence[int], progress: bool = False):
        """Yields (j, coarse grid points (K, 2), ``window_maps``' maps, origins and embeddings) for each
        row j of ``rows``."""
        vectors = self.fine_vectors()
        if not self.coarse_gate:
            coarse = self.coarse.predict_grid(data, rows, progress)
            for j, i in enumerate(tqdm(rows, desc="refine", disable=not progress, leave=False)):
                yield (j, coarse[j], *self.window_maps(data.dataset[i].image, coarse[j], vectors))
            return
        local = self.max_move is not None  # uncapped, the gate is read over the whole window: the whole maps
        for start, chunk, maps in self.coarse.map_batches(data, rows, progress, "refine", local, self.gate_need):
            coarse = self.coarse.answers(maps).cpu().double().numpy()
            for b, i in enumerate(chunk):
                yield (start + b, coarse[b],
                       *self.window_maps(data.dataset[i].image, coarse[b], vectors, maps[:, b].prod(dim=0)))

    def predict_grid(self, data: GridImages, rows: Sequence[int] | None = None, progress: bool = False) -> np.ndarray:
        rows = list(range(len(data))) if rows is None else [int(i) for i in rows]
        out = np.empty((len(rows), len(self.landmark_indices), 2))
        for j, coarse, maps, origins, embs in self.windows(data, rows, progress):
            out[j] = self.final(maps, origins, coarse, embs)
        return out

    def predict_grid_moves(self, data: GridImages, moves: Sequence[float | None], progress: bool = False
                           ) -> dict[float | None, np.ndarray]:
        """{max_move: (N, K, 2) grid answers} for every image of ``data``, the fine maps computed once
        (an ablation of ``max_move``; the coarse answers under the key 0)."""
        out = {m: np.empty((len(data), len(self.landmark_indices), 2)) for m in (0, *moves)}
        for j, coarse, maps, origins, _ in self.windows(data, list(range(len(data))), progress):
            out[0][j] = coarse
            for m in moves:
                out[m][j] = self.answer(maps, origins, coarse, m)
        return out

    def predict_grid_back(self, data: GridImages, reaches: Sequence[float], rows: Sequence[int] | None = None,
                          progress: bool = False) -> dict:
        """An ablation of ``back_check``, the fine maps computed once: {"coarse", "fine" (``max_move``,
        no back check), each reach: (N, K, 2) grid answers, "misses": (N, 2, K) back misses of the
        fine and the coarse answers (grid px)}."""
        rows = list(range(len(data))) if rows is None else [int(i) for i in rows]
        k = len(self.landmark_indices)
        out = {key: np.empty((len(rows), k, 2)) for key in ("coarse", "fine", *reaches)}
        out["misses"] = np.empty((len(rows), 2, k))
        for j, coarse, maps, origins, embs in self.windows(data, rows, progress):
            fine = self.answer(maps, origins, coarse, self.max_move)
            misses = self.back_misses(embs, origins, np.stack([fine, coarse]))
            out["coarse"][j], out["fine"][j], out["misses"][j] = coarse, fine, misses
            for r in reaches:
                out[r][j] = back_checked(fine, coarse, misses, r)
        return out


def keep_coarse(misses: np.ndarray, reach: float) -> np.ndarray:
    """(2, K) back misses of the fine and the coarse answers (grid px) -> (K,) bool: where the coarse
    answer stays (the fine answer's back miss over ``reach`` and the coarse answer's smaller)."""
    return (misses[0] > reach) & (misses[1] < misses[0])


def back_checked(fine: np.ndarray, coarse: np.ndarray, misses: np.ndarray, reach: float) -> np.ndarray:
    """(K, 2) fine and coarse answers, their (2, K) back misses -> (K, 2): the coarse answer where
    :func:`keep_coarse` says, else the fine one."""
    return np.where(keep_coarse(misses, reach)[:, None], coarse, fine)


def window_gate(product: torch.Tensor, origins: torch.Tensor, crop: int, fine_grid: int) -> torch.Tensor:
    """(K, G, G) coarse products, (K, 2) fine-grid window origins -> (K, C, C): each product sampled
    (bilinear) at the fine-grid pixels of its window, scaled to a maximum of 1 over the map, floored
    at ``CLOSED_GATE_FLOOR`` (a product that is 0 everywhere leaves the fine maps to decide)."""
    k = product.shape[0]
    gate = to_peak(product).clamp(min=CLOSED_GATE_FLOOR)[:, None]  # (K, 1, G, G)
    steps = torch.arange(crop, dtype=torch.float32, device=product.device)
    xs = (origins[:, 0:1].to(product.device).float() + steps + 0.5) / fine_grid * 2 - 1  # (K, C) in [-1, 1]
    ys = (origins[:, 1:2].to(product.device).float() + steps + 0.5) / fine_grid * 2 - 1
    where = torch.stack([xs[:, None, :].expand(k, crop, crop), ys[:, :, None].expand(k, crop, crop)], dim=-1)
    return F.grid_sample(gate, where, mode="bilinear", padding_mode="border", align_corners=False)[:, 0]


def fine_template(template: Template, scale: int) -> torch.Tensor:
    """The template's original image at the fine grid (``scale`` x its grid)."""
    if template.original is None:
        raise ValueError("the fine stage needs the template's original image (Template.original)")
    return resize_to_grid(template.original, scale * template.grid)


def refinement_variants(predictor: Predictor, copies: int = 8, centroid: float = 0.5) -> dict[str, Predictor]:
    """The coarse answer and each refinement of a trained predictor, by label: the grid argmax, the
    sub-pixel peak, sub-pixel + ``copies`` template copies; for a predictor with a fine stage also
    the fine stage (on the sub-pixel coarse answer) without and with the coarse gate, and gated with
    its ``max_move`` when it has one; last, the last of these with both stages answering with the
    top ``centroid`` (``eval.centroid``) instead of the argmax. Each in the predictor's precision
    (``bf16``). Template copies need the template's original image (``Template.original``)."""
    refined = predictor if isinstance(predictor, RefinedPredictor) else None
    coarse = predictor.coarse_stage
    out = {"grid argmax": coarse.configured(False, 0), "sub-pixel": coarse.configured(True, 0)}  # its precision
    if copies:
        out[f"sub-pixel + {copies} template copies"] = coarse.configured(True, copies)
    if refined is not None:
        for label, gate in (("fine stage", False), ("fine stage, coarse gate", True)):
            out[label] = refined.variant(coarse.configured(True, 0), coarse_gate=gate, max_move=None)
        if refined.max_move is not None:
            out[f"fine stage, coarse gate, moves <= {refined.max_move:g} grid px"] = refined.variant(
                coarse.configured(True, 0), coarse_gate=True)
    last_label, last = list(out.items())[-1]
    start = last.coarse_stage
    centred = start.configured(start.subpixel, start.template_copies, start.poses, centroid)
    out[f"{last_label}, top centroid {centroid:g}"] = (last.variant(centred) if isinstance(last, RefinedPredictor)
                                                        else centred)
    return out


"""Pseudo-labels (PLs): their state and history, and PL-centred patches.

The PL methods (multi-landmark, SLA, ATD, C-Adapter; He et al.) train on patches centred at a
*pseudo-label* of each trained landmark on each unlabelled training image, and after every epoch
re-infer the PLs with the method's predictor (Infer-PL, ``cc2dkit.inference``). PLs start at
random positions inside the image.

Ground truth of the unlabelled images never enters training: :class:`PLState` reads it only to
*report* the PL error (``pl_error_mm``) in its history, and :class:`PLPatchSource` never touches
``data.landmarks``. A batch's ``landmark_ids`` are the PL columns 0..K-1 (the adapter ids).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..config import MethodConfig, TrainConfig
from ..data.grid import GridImages
from ..data.template_aug import TemplateCopies
from .patches import CentredPatchSource, PatchBatch


# -- state and history ---------------------------------------------------------------------

class PLState:
    """Pseudo-labels ``pls`` (N, K, 2), grid coordinates, of K landmarks on N training images.

    ``image_indices`` (N,) are the rows of ``data`` the PLs belong to (the unlabelled training
    images), ``landmark_indices`` (K,) the dataset landmarks of the K columns. ``history`` holds
    one entry per :meth:`record` (epoch 0: the initial PLs): ``epoch``, ``pls`` (a copy),
    ``movement_grid`` / ``movement`` (K,) mean distance to the previous PLs in grid pixels / in
    ``unit`` (NaN at the first entry), ``pl_error`` (K,) mean distance to ground truth in ``unit``
    where it is known (NaN otherwise; analysis only), ``capped`` (K,) PLs held back by the cap of
    :meth:`update`, ``answers`` (N, K, 2) that update's answers before the cap (None without one); the epoch
    loop adds ``unchecked`` with ``method.pl_shape`` (the answers without its shape check).
    ``unit``: ``"mm"``, or ``"px"`` (original pixels) when the images' spacing is unknown.
    """

    def __init__(self, pls: np.ndarray, image_indices: Sequence[int], landmark_indices: Sequence[int],
                 landmark_names: Sequence[str]):
        pls = np.asarray(pls, dtype=np.float64)
        if pls.shape != (len(image_indices), len(landmark_indices), 2):
            raise ValueError(f"pls of shape {pls.shape}, expected {(len(image_indices), len(landmark_indices), 2)}")
        self.pls = pls.copy()
        self.image_indices = [int(i) for i in image_indices]
        self.landmark_indices = [int(i) for i in landmark_indices]
        self.landmark_names = [str(n) for n in landmark_names]
        self.history: list[dict] = []
        self.unit = "mm"
        self._capped = np.zeros(len(self.landmark_indices), dtype=int)  # of the last update, for record()
        self._answers: np.ndarray | None = None  # the last update's answers before the cap, for record()

    @classmethod
    def random(cls, data: GridImages, image_indices: Sequence[int], landmark_indices: Sequence[int],
               gen: torch.Generator) -> "PLState":
        """Uniformly random PLs inside the grid ``[0, G-1]^2`` (integer pixels, like argmax PLs)."""
        n, k = len(image_indices), len(landmark_indices)
        pls = torch.randint(data.grid, (n, k, 2), generator=gen).double().numpy()
        names = [data.landmark_names[i] for i in landmark_indices]
        return cls(pls, image_indices, landmark_indices, names)

    def update(self, new: np.ndarray, max_move: float | None = None, agree: bool = False) -> np.ndarray:
        """Take the re-inferred PLs ``new`` (N, K, 2). With ``max_move`` (grid px) a PL moves at most
        that far towards its new answer, except at the first update after the random start (history
        up to epoch 0): one wrong answer then shifts a PL a little instead of re-centring its patches
        on another structure. With ``agree`` the cap spares a PL whose new answer lies within
        ``max_move`` of its previous answer: two answers in a row put it there, so a PL the cap held
        back follows a model that settled elsewhere one epoch late instead of ``max_move`` per epoch.
        Returns (K,) how many PLs of each landmark the cap held back (also in the next :meth:`record`)."""
        new = np.asarray(new, dtype=np.float64)
        if new.shape != self.pls.shape:
            raise ValueError(f"new PLs of shape {new.shape}, expected {self.pls.shape}")
        step = new - self.pls
        dist = np.linalg.norm(step, axis=-1)  # (N, K)
        over = np.zeros(dist.shape, dtype=bool)
        if max_move is not None and len(self.history) > 1:
            over = dist > max_move
            previous = self.history[-1].get("answers")  # the last Infer-PL's answers (checkpoints keep them)
            if agree and previous is not None:
                over &= np.linalg.norm(new - previous, axis=-1) > max_move
            step = np.where(over[..., None], step * (max_move / np.maximum(dist, 1e-12))[..., None], step)
        self.pls = self.pls + step
        self._capped = over.sum(axis=0)
        self._answers = new.copy()
        return self._capped.copy()

    def original(self, data: GridImages, pls: np.ndarray | None = None) -> np.ndarray:
        """PLs (or other (N, K, 2) grid points of the same images) in original pixels."""
        pls = self.pls if pls is None else pls
        full = np.full((len(data), len(self.landmark_indices), 2), np.nan)
        full[self.image_indices] = pls
        return data.to_original(full)[self.image_indices]

    def record(self, epoch: int, data: GridImages) -> dict:
        """Append the current PLs to the history with their movement and (analysis) error, in
        ``data.unit`` (mm, or original pixels when the spacing is unknown)."""
        self.unit = data.unit
        orig = self.original(data)
        scale = data.scale[self.image_indices][:, None]  # (N, 1)
        if self.history:
            prev = self.history[-1]
            movement_grid = np.linalg.norm(self.pls - prev["pls"], axis=-1).mean(axis=0)
            movement = (np.linalg.norm(orig - self.original(data, prev["pls"]), axis=-1) * scale).mean(axis=0)
        else:
            movement_grid = movement = np.full(len(self.landmark_indices), np.nan)
        gt = data.original_landmarks[np.ix_(self.image_indices, self.landmark_indices)]  # analysis only
        err = np.linalg.norm(orig - gt, axis=-1) * scale  # (N, K), NaN where unknown
        known = np.isfinite(err)
        sums = np.where(known, err, 0.0).sum(axis=0)
        counts = known.sum(axis=0)
        error = np.divide(sums, counts, out=np.full(len(counts), np.nan), where=counts > 0)
        entry = {"epoch": int(epoch), "pls": self.pls.copy(), "movement_grid": movement_grid,
                 "movement": movement, "pl_error": error, "capped": self._capped.copy(), "answers": self._answers}
        self._capped = np.zeros_like(self._capped)
        self._answers = None
        self.history.append(entry)
        return entry

    def history_frame(self) -> pd.DataFrame:
        """One row per (epoch, landmark): epoch, landmark (name), landmark_index, movement_grid (grid
        pixels), movement_mm and pl_error_mm (``_px`` instead of ``_mm`` when the spacing is unknown),
        pl_capped (how many of the landmark's PLs ``method.pl_max_move`` held back that epoch),
        pl_reread (how many of its Infer-PL answers ``method.pl_shape``'s check moved 1 grid px or more)."""
        u = self.unit
        columns = ["epoch", "landmark", "landmark_index", "movement_grid", f"movement_{u}", f"pl_error_{u}",
                   "pl_capped", "pl_reread"]
        rows = []
        none = np.zeros(len(self.landmark_indices), dtype=int)
        for h in self.history:
            capped = h.get("capped", none)  # older checkpoints lack it
            reread = none if h.get("unchecked") is None or h.get("answers") is None else \
                (np.linalg.norm(h["answers"] - h["unchecked"], axis=-1) >= 1.0).sum(axis=0)
            for j, (li, name) in enumerate(zip(self.landmark_indices, self.landmark_names)):
                rows.append([h["epoch"], name, li, float(h["movement_grid"][j]), float(h["movement"][j]),
                             float(h["pl_error"][j]), int(capped[j]), int(reread[j])])
        return pd.DataFrame(rows, columns=columns)


# -- patches ---------------------------------------------------------------------------------

class PLPatchSource(CentredPatchSource):
    """Patches centred (up to ``method.pl_offset`` x half the patch) at the current pseudo-labels.

    ``landmark_indices`` selects dataset landmarks among ``pl_state``'s columns (default: all of
    them) and ``image_indices`` rows of ``data`` among ``pl_state.image_indices`` (default: all).
    The batch's ``landmark_ids`` are columns of ``pl_state`` (0..K-1 of the K trained landmarks).
    The PLs are read from ``pl_state`` at every draw, so re-inferred PLs are used at once.
    With ``method.pl_cross`` (and the augmented templates ``copies``) that share of the samples takes
    its patch from an augmented template at the same landmark: template and image are two patients.
    With ``method.pl_walk`` every sample also carries an augmented template and its landmark there
    (``PatchBatch.partners``), the start and end of the round trip of ``loss.walk_loss``.
    """

    def __init__(self, data: GridImages, train: TrainConfig, method: MethodConfig, pl_state: PLState,
                 landmark_indices: Sequence[int] | None = None, image_indices: Sequence[int] | None = None,
                 copies: TemplateCopies | None = None):
        cols = list(range(len(pl_state.landmark_indices))) if landmark_indices is None else \
            [pl_state.landmark_indices.index(int(l)) for l in landmark_indices]
        rows = list(range(len(pl_state.image_indices))) if image_indices is None else \
            [pl_state.image_indices.index(int(i)) for i in image_indices]
        self.pl_state, self.columns, self.rows = pl_state, cols, rows
        idx = [pl_state.image_indices[r] for r in rows]
        super().__init__(data.images[idx], [data.keys[i] for i in idx],
                         lambda: self.pl_state.pls[np.ix_(self.rows, self.columns)], train, method.pl_offset)
        for name in ("pl_cross", "pl_walk"):
            if getattr(method, name) and copies is None:
                raise ValueError(f"method.{name}={getattr(method, name)} needs the augmented templates (copies)")
        self.copies, self.cross_share, self.walk = copies, method.pl_cross, bool(method.pl_walk)

    def sample(self, batch_size: int, gen: torch.Generator) -> PatchBatch:
        batch = super().sample(batch_size, gen)
        batch.landmark_ids = torch.tensor(self.columns, dtype=torch.long)[batch.landmark_ids]
        if self.cross_share:
            self._cross(batch, gen)
        if self.walk:
            self._partners(batch, gen)
        return batch

    def _partners(self, batch: PatchBatch, gen: torch.Generator) -> None:
        """Each sample gets a random augmented template and its landmark there: the round trip's other
        end (``method.pl_walk``; drawn after everything else, so the other draws are a run's without it)."""
        lms = [self.pl_state.landmark_indices[int(i)] for i in batch.landmark_ids]
        picks = torch.randint(len(self.copies.images), (len(lms),), generator=gen).tolist()
        batch.partners = self.copies.images[picks]
        batch.partner_keys = [self.copies.keys[c] for c in picks]
        points = np.asarray([self.copies.landmarks[c, lm] for c, lm in zip(picks, lms)])
        # a landmark the augmentation moved out of the grid sits at its border, as in TemplatePatchSource
        batch.partner_points = torch.tensor(np.clip(points, 0.0, self.copies.grid - 1.0), dtype=torch.float32)

    def _cross(self, batch: PatchBatch, gen: torch.Generator) -> None:
        """Each sample, with probability ``cross_share``, gets its patch from a random augmented
        template at its landmark (cut as the PL's patch: ``patch_at``); its image and point stay."""
        for j, u in enumerate(torch.rand(len(batch.patches), generator=gen).tolist()):
            if u >= self.cross_share:
                continue
            c = int(torch.randint(len(self.copies.images), (1,), generator=gen))
            lm = self.pl_state.landmark_indices[int(batch.landmark_ids[j])]
            point = torch.as_tensor(self.copies.landmarks[c, lm], dtype=torch.float64)
            batch.patches[j], moved, _ = self.patch_at(self.copies.images[c], point, gen)
            batch.patch_points[j] = moved.float()

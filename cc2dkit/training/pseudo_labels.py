"""Pseudo-labels (PLs): their state and history, PL-centred patches, and PL inference.

The PL methods (multi-landmark, SLA, ATD, C-Adapter; He et al.) train on patches centred at a
*pseudo-label* of each trained landmark on each unlabelled training image, and after every epoch
re-infer the PLs with the cascade matcher. PLs start at random positions inside the image.

Ground truth of the unlabelled images never enters training: :class:`PLState` reads it only to
*report* the PL error (``pl_error_mm``) in its history, and :class:`PLPatchSource` and
:func:`infer_pseudo_labels` never touch ``data.landmarks``.

Adapter models: a model with ``getattr(model, "n_adapters", 0) > 0`` (the C-Adapter, see
``network/adapter.py``) is called as ``model(images, keys, landmark_ids)`` with ``landmark_ids``
(B,) the landmark's column ``k`` among the K trained landmarks (0..K-1); every other model (plain
CC2D) is called without ``landmark_ids`` (CC2D refuses them), see :func:`uses_adapters`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import MethodConfig, TrainConfig
from ..data.grid import GridImages
from ..inference.cascade import cascade_argmax, similarity_maps, template_vectors
from .patches import CentredPatchSource, PatchBatch


def uses_adapters(model) -> bool:
    """True for a model with per-landmark adapters (it needs ``landmark_ids``)."""
    return int(getattr(model, "n_adapters", 0) or 0) > 0


def for_model(batch: PatchBatch, model) -> PatchBatch:
    """The batch as ``model`` takes it: landmark ids kept for adapter models, dropped otherwise."""
    if uses_adapters(model) or batch.landmark_ids is None:
        return batch
    return dataclasses.replace(batch, landmark_ids=None)


# -- state and history ---------------------------------------------------------------------

class PLState:
    """Pseudo-labels ``pls`` (N, K, 2), grid coordinates, of K landmarks on N training images.

    ``image_indices`` (N,) are the rows of ``data`` the PLs belong to (the unlabelled training
    images), ``landmark_indices`` (K,) the dataset landmarks of the K columns. ``history`` holds
    one entry per :meth:`record` (epoch 0: the initial PLs): ``epoch``, ``pls`` (a copy),
    ``movement_px`` / ``movement_mm`` (K,) mean distance to the previous PLs (NaN at the first
    entry), ``pl_error_mm`` (K,) mean distance to ground truth where it is known (NaN otherwise;
    analysis only).
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

    @classmethod
    def random(cls, data: GridImages, image_indices: Sequence[int], landmark_indices: Sequence[int],
               gen: torch.Generator) -> "PLState":
        """Uniformly random PLs inside the grid ``[0, G-1]^2`` (integer pixels, like argmax PLs)."""
        n, k = len(image_indices), len(landmark_indices)
        pls = torch.randint(data.grid, (n, k, 2), generator=gen).double().numpy()
        names = [data.landmark_names[i] for i in landmark_indices]
        return cls(pls, image_indices, landmark_indices, names)

    def original(self, data: GridImages, pls: np.ndarray | None = None) -> np.ndarray:
        """PLs (or other (N, K, 2) grid points of the same images) in original pixels."""
        pls = self.pls if pls is None else pls
        full = np.full((len(data), len(self.landmark_indices), 2), np.nan)
        full[self.image_indices] = pls
        return data.to_original(full)[self.image_indices]

    def record(self, epoch: int, data: GridImages) -> dict:
        """Append the current PLs to the history with their movement and (analysis) error."""
        orig = self.original(data)
        if self.history:
            prev = self.history[-1]
            movement_px = np.linalg.norm(self.pls - prev["pls"], axis=-1).mean(axis=0)
            movement_mm = (np.linalg.norm(orig - self.original(data, prev["pls"]), axis=-1)
                           * data.spacing_mm).mean(axis=0)
        else:
            movement_px = movement_mm = np.full(len(self.landmark_indices), np.nan)
        gt = data.original_landmarks[np.ix_(self.image_indices, self.landmark_indices)]  # analysis only
        err = np.linalg.norm(orig - gt, axis=-1) * data.spacing_mm  # (N, K), NaN where unknown
        known = np.isfinite(err)
        sums = np.where(known, err, 0.0).sum(axis=0)
        counts = known.sum(axis=0)
        error_mm = np.divide(sums, counts, out=np.full(len(counts), np.nan), where=counts > 0)
        entry = {"epoch": int(epoch), "pls": self.pls.copy(), "movement_px": movement_px,
                 "movement_mm": movement_mm, "pl_error_mm": error_mm}
        self.history.append(entry)
        return entry

    def history_frame(self) -> pd.DataFrame:
        """One row per (epoch, landmark): epoch, landmark (name), landmark_index, movement_px,
        movement_mm, pl_error_mm."""
        rows = []
        for h in self.history:
            for j, (li, name) in enumerate(zip(self.landmark_indices, self.landmark_names)):
                rows.append({"epoch": h["epoch"], "landmark": name, "landmark_index": li,
                             "movement_px": float(h["movement_px"][j]), "movement_mm": float(h["movement_mm"][j]),
                             "pl_error_mm": float(h["pl_error_mm"][j])})
        return pd.DataFrame(rows, columns=["epoch", "landmark", "landmark_index", "movement_px", "movement_mm",
                                           "pl_error_mm"])


# -- patches ---------------------------------------------------------------------------------

class PLPatchSource(CentredPatchSource):
    """Patches centred (up to ``method.pl_offset`` x half the patch) at the current pseudo-labels.

    ``landmark_indices`` selects dataset landmarks among ``pl_state``'s columns (default: all of
    them) and ``image_indices`` rows of ``data`` among ``pl_state.image_indices`` (default: all).
    The batch's ``landmark_ids`` are columns of ``pl_state`` (0..K-1 of the K trained landmarks).
    The PLs are read from ``pl_state`` at every draw, so re-inferred PLs are used at once.
    """

    def __init__(self, data: GridImages, train: TrainConfig, method: MethodConfig, pl_state: PLState,
                 landmark_indices: Sequence[int] | None = None, image_indices: Sequence[int] | None = None):
        cols = list(range(len(pl_state.landmark_indices))) if landmark_indices is None else \
            [pl_state.landmark_indices.index(int(l)) for l in landmark_indices]
        rows = list(range(len(pl_state.image_indices))) if image_indices is None else \
            [pl_state.image_indices.index(int(i)) for i in image_indices]
        self.pl_state, self.columns, self.rows = pl_state, cols, rows
        idx = [pl_state.image_indices[r] for r in rows]
        super().__init__(data.images[idx], [data.keys[i] for i in idx],
                         lambda: self.pl_state.pls[np.ix_(self.rows, self.columns)], train, method.pl_offset)

    def sample(self, batch_size: int, gen: torch.Generator) -> PatchBatch:
        batch = super().sample(batch_size, gen)
        batch.landmark_ids = torch.tensor(self.columns, dtype=torch.long)[batch.landmark_ids]
        return batch


# -- inference -------------------------------------------------------------------------------

class LandmarkTemplate:
    """Template-like (``vectors`` [(K, D)], ``grid``) for some landmarks, optionally through one adapter.

    ``landmarks_grid`` (K, 2) are template-image grid points; with ``landmark_id`` the template
    image is embedded with ``model(image, landmark_ids=[landmark_id])`` (adapter models).
    """

    def __init__(self, model, image: torch.Tensor, landmarks_grid: np.ndarray, device: torch.device,
                 landmark_id: int | None = None):
        landmarks_grid = np.asarray(landmarks_grid, dtype=np.float64).reshape(-1, 2)
        if np.isnan(landmarks_grid).any():
            raise ValueError("the template image has no (or incomplete) landmark annotation")
        self.grid = image.shape[-1]
        model.eval()
        with torch.no_grad():
            ids = None if landmark_id is None else torch.tensor([landmark_id], device=device)
            embs = model(image[None].to(device), landmark_ids=ids)
            pts = torch.as_tensor(landmarks_grid, dtype=torch.float32, device=device)
            self.vectors = template_vectors(embs, pts, self.grid)


def landmark_templates(model, image: torch.Tensor, landmarks_grid: np.ndarray, landmark_indices: Sequence[int],
                       device: torch.device) -> list[LandmarkTemplate]:
    """One single-landmark template per trained landmark ``k`` (adapter ``k`` for adapter models).

    ``landmarks_grid`` (L, 2): the template's landmarks of every dataset landmark.
    """
    adapters = uses_adapters(model)
    return [LandmarkTemplate(model, image, landmarks_grid[[l]], device, k if adapters else None)
            for k, l in enumerate(landmark_indices)]


@torch.no_grad()
def infer_pseudo_labels(model, template, data: GridImages, landmark_indices: Sequence[int], device: torch.device,
                        batch_size: int, image_indices: Sequence[int] | None = None,
                        progress: bool = False) -> np.ndarray:
    """Cascade inference of the K landmarks ``landmark_indices`` -> (N, K, 2) grid coordinates.

    ``template`` is either one Template-like whose ``vectors`` cover every dataset landmark (a
    :class:`~cc2dkit.inference.Template`; columns ``landmark_indices`` are used), or a sequence of
    K Template-likes, the k-th holding the one vector of landmark ``landmark_indices[k]`` (see
    :func:`landmark_templates`). A model with adapters needs the sequence form: landmark ``k`` is
    inferred with ``landmark_ids = k``. ``image_indices``: rows of ``data`` (default: all); the
    feature cache is used through ``data.keys``.
    """
    landmark_indices = [int(l) for l in landmark_indices]
    rows = list(range(len(data))) if image_indices is None else [int(i) for i in image_indices]
    per_landmark = isinstance(template, (list, tuple))
    if per_landmark and len(template) != len(landmark_indices):
        raise ValueError(f"{len(template)} templates for {len(landmark_indices)} landmarks")
    adapters = uses_adapters(model)
    if adapters and not per_landmark:
        raise ValueError("a model with adapters needs one template per landmark (see landmark_templates)")
    model.eval()
    out = np.zeros((len(rows), len(landmark_indices), 2))
    if per_landmark:
        groups = [([k], template[k].vectors, k if adapters else None) for k in range(len(landmark_indices))]
    else:
        groups = [(list(range(len(landmark_indices))), [v[landmark_indices] for v in template.vectors], None)]
    bar = tqdm(total=len(groups) * len(rows), desc="infer PL", disable=not progress, leave=False)
    for cols, vectors, adapter in groups:
        grid = template[cols[0]].grid if per_landmark else template.grid
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            ids = None if adapter is None else torch.full((len(chunk),), adapter, dtype=torch.long, device=device)
            embs = model(data.images[chunk].to(device), keys=[data.keys[i] for i in chunk], landmark_ids=ids)
            pts = cascade_argmax(similarity_maps(embs, vectors, grid)).cpu().double().numpy()  # (b, len(cols), 2)
            out[start:start + len(chunk), cols] = pts
            bar.update(len(chunk))
    bar.close()
    return out


def make_template(model, image: torch.Tensor, landmarks_grid: np.ndarray, landmark_indices: Sequence[int],
                  device: torch.device):
    """The template form :func:`infer_pseudo_labels` wants for ``model``: per-landmark templates
    (one adapter each) for adapter models, else one template of every dataset landmark."""
    if uses_adapters(model):
        return landmark_templates(model, image, landmarks_grid, landmark_indices, device)
    return LandmarkTemplate(model, image, landmarks_grid, device)


class ModelPredictor:
    """One trained model (CC2D or adapter) + the template: ``predict(data)`` of the K landmarks."""

    def __init__(self, model, template_image: torch.Tensor, template_landmarks: np.ndarray,
                 landmark_indices: Sequence[int], device: torch.device, batch_size: int):
        self.model = model
        self.template_image = template_image
        self.template_landmarks = np.asarray(template_landmarks, dtype=np.float64)
        self.landmark_indices = [int(l) for l in landmark_indices]
        self.device = device
        self.batch_size = batch_size

    def predict_grid(self, data: GridImages, image_indices: Sequence[int] | None = None,
                     progress: bool = False) -> np.ndarray:
        """(N, K, 2) grid coordinates of the K trained landmarks."""
        t = make_template(self.model, self.template_image, self.template_landmarks, self.landmark_indices, self.device)
        return infer_pseudo_labels(self.model, t, data, self.landmark_indices, self.device, self.batch_size,
                                   image_indices, progress)

    def predict(self, data: GridImages, progress: bool = False) -> np.ndarray:
        """(N, L, 2) original pixels; NaN for landmarks that were not trained."""
        return expand_original(data, self.landmark_indices, self.predict_grid(data, progress=progress))


def expand_original(data: GridImages, landmark_indices: Sequence[int], grid_pts: np.ndarray) -> np.ndarray:
    """(N, K, 2) grid points of ``landmark_indices`` -> (N, L, 2) original pixels, NaN elsewhere."""
    full = np.full((len(data), len(data.landmark_names), 2), np.nan)
    full[:, list(landmark_indices)] = grid_pts
    return data.to_original(full)

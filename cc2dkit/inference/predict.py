"""Predict every landmark on every image of a dataset, batched over images and landmarks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..data.grid import GridImages
from ..network import CC2D
from .cascade import cascade_argmax, similarity_maps, template_vectors


class Template:
    """The one labelled image: its per-scale embeddings at each landmark, as unit vectors."""

    def __init__(self, model: CC2D, image: torch.Tensor, landmarks_grid: np.ndarray, device: torch.device):
        if np.isnan(landmarks_grid).any():
            raise ValueError("the template image has no (or incomplete) landmark annotation")
        self.grid = image.shape[-1]
        model.eval()
        with torch.no_grad():
            embs = model(image[None].to(device))
            pts = torch.as_tensor(landmarks_grid, dtype=torch.float32, device=device)
            self.vectors = template_vectors(embs, pts, self.grid)  # [(L, D)] per scale

    @classmethod
    def from_data(cls, model: CC2D, data: GridImages, image_id: str, device: torch.device) -> "Template":
        i = data.index(image_id)
        if not data.labelled[i]:
            raise ValueError(f"template image {image_id!r} has no landmark annotation")
        return cls(model, data.images[i], data.landmarks[i], device)


@torch.no_grad()
def predict_grid(model: CC2D, template: Template, images: torch.Tensor, device: torch.device,
                 batch_size: int, keys: list | None = None, progress: bool = True) -> np.ndarray:
    """(N, 1, G, G) images -> (N, L, 2) predicted grid coordinates.

    With ``keys`` (feature-cache keys of the images) the frozen features come from the cache.
    """
    model.eval()
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="predict", disable=not progress, leave=False):
        batch_keys = None if keys is None else keys[start:start + batch_size]
        embs = model(images[start:start + batch_size].to(device), keys=batch_keys)
        maps = similarity_maps(embs, template.vectors, template.grid)
        out.append(cascade_argmax(maps).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def predict_dataset(model: CC2D, template: Template, data: GridImages, device: torch.device,
                    batch_size: int, progress: bool = True) -> np.ndarray:
    """Predictions for every image of ``data`` in *original* pixel coordinates, (N, L, 2)."""
    grid_pts = predict_grid(model, template, data.images, device, batch_size, data.keys, progress)
    return data.to_original(grid_pts)


def predictions_frame(pred: np.ndarray, image_ids: list[str], landmark_names: tuple[str, ...]) -> pd.DataFrame:
    """(N, L, 2) -> long table image, landmark, x, y (the format ``FolderDataset`` reads)."""
    rows = [(image_ids[i], landmark_names[l], pred[i, l, 0], pred[i, l, 1])
            for i in range(pred.shape[0]) for l in range(pred.shape[1])]
    return pd.DataFrame(rows, columns=["image", "landmark", "x", "y"])

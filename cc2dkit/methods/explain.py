"""What a trained method's cascade sees: the per-scale similarity maps of its landmarks on one image.

:func:`method_maps` is :func:`cc2dkit.inference.explain.image_maps` for the predictors of the
methods: a :class:`~cc2dkit.training.pseudo_labels.ModelPredictor` (multi, wide, adapter: one
model; an adapter model embeds the image once per landmark through adapter k) or an
:class:`~cc2dkit.methods.sla.SLASet` (sla, atd: landmark k through model k). Each landmark is
matched against its own template vector, exactly as Infer-PL and prediction do, so the argmax of
the product is the method's prediction on that image.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.grid import GridImages
from ..inference.cascade import cascade_argmax, similarity_maps
from ..inference.explain import ImageMaps
from ..training.pseudo_labels import LandmarkTemplate, uses_adapters


def _landmark_model(predictor, k: int):
    """(model, adapter id or None) that predicts trained landmark ``k``."""
    models = getattr(predictor, "models", None)
    if models is not None:
        return models[k], None
    model = predictor.model
    return model, (k if uses_adapters(model) else None)


@torch.no_grad()
def method_maps(predictor, data: GridImages, index: int) -> ImageMaps:
    """The maps of the predictor's K trained landmarks on ``data`` row ``index``.

    ``maps`` (S, K, G, G), ``prediction`` and ``truth`` (K, 2) grid points, in the order of
    ``predictor.landmark_indices``.
    """
    if not 0 <= index < len(data):
        raise IndexError(f"image index {index} out of range for {len(data)} images")
    device = predictor.device
    image = data.images[index]  # (1, G, G)
    embedded: dict[tuple[int, int | None], list[torch.Tensor]] = {}  # one forward per (model, adapter)
    per_landmark = []
    for k, l in enumerate(predictor.landmark_indices):
        model, lid = _landmark_model(predictor, k)
        template = LandmarkTemplate(model, predictor.template_image, predictor.template_landmarks[[l]], device, lid)
        key = (id(model), lid)
        if key not in embedded:
            ids = None if lid is None else torch.tensor([lid], device=device)
            embedded[key] = model(image[None].to(device), keys=[data.keys[index]], landmark_ids=ids)
        per_landmark.append(similarity_maps(embedded[key], template.vectors, template.grid)[:, 0])  # (S, 1, G, G)
    maps = torch.cat(per_landmark, dim=1)  # (S, K, G, G)
    pred = cascade_argmax(maps[:, None])[0].cpu().double().numpy()  # (K, 2)
    cols = list(predictor.landmark_indices)
    truth = data.landmarks[index][cols] if data.labelled[index] else None
    strides = tuple(_landmark_model(predictor, 0)[0].strides)
    return ImageMaps(image[0].cpu().numpy(), maps.cpu().numpy(), strides, pred, truth)

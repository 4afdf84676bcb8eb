"""Which of the cascade's maps put a miss where it is (analysis only: labels read to describe, never
to choose).

The cascade multiplies S per-scale cosine maps, clamped at 0, and a shape check's factor; an answer
is where that product peaks. For each answer, the log ratio of every map's value at the truth over
its value at the answer says which maps hold the answer there (negative: the map prefers the
answer) and which would have taken the truth (positive); a closed gate (a clamped cosine of 0)
reads as ``FLOOR``, so a ratio near -13 means the map shuts the truth out. Each map's own argmax, alone, says
how well that scale finds the landmark by itself: coarse maps find the region, the finest ones
peak on every similar edge of the image and place the answer only inside the coarse maps' gate.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

FLOOR = 1e-6  # a clamped cosine of 0 (a closed gate) reads as this: log ratios stay finite


def _at(maps: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(M, B, K, G, G) maps, (B, K, 2) grid (x, y) -> (B, K, M) each map's value at the nearest pixel."""
    g = maps.shape[-1]
    x = np.clip(np.rint(points[..., 0]), 0, g - 1).astype(int)  # (B, K)
    y = np.clip(np.rint(points[..., 1]), 0, g - 1).astype(int)
    b, k = np.indices(x.shape)
    return maps[:, b, k, y, x].transpose(1, 2, 0)


def scale_evidence(maps: np.ndarray, answers: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, B, K, G, G) the maps an answer was read from (the S scales, then any shape factor), the
    (B, K, 2) answers and true points (grid px) -> (B, K, M) log(value at the truth / value at the
    answer), each value floored at ``FLOOR``, and (B, K, M, 2) each map's own argmax (x, y)."""
    maps, answers, truth = np.asarray(maps), np.asarray(answers, np.float64), np.asarray(truth, np.float64)
    if maps.ndim != 5 or answers.shape != truth.shape or answers.shape != (*maps.shape[1:3], 2):
        raise ValueError(f"maps (M, B, K, G, G) {maps.shape}, answers {answers.shape} and truth {truth.shape} "
                         "do not match")
    ratio = np.log(np.maximum(_at(maps, truth), FLOOR)) - np.log(np.maximum(_at(maps, answers), FLOOR))
    g = maps.shape[-1]
    flat = maps.reshape(*maps.shape[:3], -1).argmax(axis=-1)  # (M, B, K)
    argmax = np.stack([flat % g, flat // g], axis=-1).transpose(1, 2, 0, 3).astype(np.float64)  # (B, K, M, 2)
    return ratio, argmax


def scale_tables(ratio: np.ndarray, argmax: np.ndarray, answers: np.ndarray, truth: np.ndarray,
                 mm_per_px: np.ndarray, names: Sequence[str], ids: Sequence[str], map_names: Sequence[str],
                 gross: float = 10.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``scale_evidence``'s (N, K, M) ratios and (N, K, M, 2) argmaxes, the (N, K, 2) answers and truth
    (grid px), (N, 2) mm per grid px (x, y) ->

    - per landmark: MRE, answers over ``gross`` mm, and per map the median error of its own argmax (mm);
    - per answer over ``gross`` mm: image, landmark, error, and per map the log ratio (truth / answer).
    """
    answers, truth = np.asarray(answers, np.float64), np.asarray(truth, np.float64)
    n, k, m = np.shape(ratio)
    if (np.shape(argmax) != (n, k, m, 2) or answers.shape != (n, k, 2) or truth.shape != answers.shape
            or len(names) != k or len(ids) != n or len(map_names) != m):
        raise ValueError(f"ratios {np.shape(ratio)}, argmaxes {np.shape(argmax)}, answers {answers.shape}, truth "
                         f"{truth.shape}, {len(names)} names, {len(ids)} ids, {len(map_names)} map names do not match")
    scale = np.asarray(mm_per_px, np.float64)[:, None, :]
    error = np.linalg.norm((answers - truth) * scale, axis=-1)  # (N, K)
    alone = np.linalg.norm((argmax - truth[:, :, None]) * scale[:, :, None], axis=-1)  # (N, K, M)
    per = pd.DataFrame({"MRE": error.mean(0), f"> {gross:g}": (error > gross).sum(0)}, index=list(names))
    for j, name in enumerate(map_names):
        per[f"{name} alone"] = np.median(alone[..., j], axis=0)
    rows = [{"image": ids[b], "landmark": names[i], "error": error[b, i],
             **{name: ratio[b, i, j] for j, name in enumerate(map_names)}}
            for b, i in zip(*np.nonzero(error > gross))]
    return per, pd.DataFrame(rows, columns=["image", "landmark", "error", *map_names])

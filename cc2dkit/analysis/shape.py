"""Where a shape check's expectations sit against the truth (analysis only: labels read to describe,
never to choose).

For each image and landmark k: the answer, its expected place from the other answers (what the
check and its prior use) and its expected place from the other *true* landmarks (the best the shape
model could say: the "oracle" expectation). A landmark whose oracle expectation lies far from its
truth is one the shape model cannot hold, whatever its prior's width.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..inference.shape import ShapeModel


def _mm(a: np.ndarray, b: np.ndarray, mm_per_px: np.ndarray) -> np.ndarray:
    """(N, K, 2) grid points twice, (N, 2) mm per grid px (x, y) -> (N, K) distances in mm."""
    return np.linalg.norm((a - b) * mm_per_px[:, None, :], axis=-1)


def shape_misses(model: ShapeModel, answers: np.ndarray, truth: np.ndarray, mm_per_px: np.ndarray,
                 names: Sequence[str], ids: Sequence[str], gross: float = 10.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(N, K, 2) answers and true points (grid px), (N, 2) mm per grid px (x, y) ->

    - per landmark: MRE, misses over ``gross`` mm, the median answer - truth offset (x, y mm), the
      median and 90th percentile of |truth - oracle expectation|, the median of |truth - expectation
      from the answers|, the median spread (mm);
    - per miss over ``gross`` mm: image, landmark, error, answer - truth (x, y mm), |answer -
      expectation|, |truth - expectation|, |truth - oracle expectation| (mm).
    """
    answers, truth = np.asarray(answers, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if answers.shape != truth.shape or answers.ndim != 3 or len(names) != answers.shape[1] or len(ids) != len(answers):
        raise ValueError(f"answers {answers.shape}, truth {truth.shape}, {len(ids)} ids and {len(names)} names "
                         "do not match")
    fitted = [model.expected(a) for a in answers]
    expected = np.stack([f[0] for f in fitted])
    spread = np.stack([f[1] for f in fitted]) * mm_per_px.mean(axis=1)[:, None]  # (N, K) mm (the grid's mean axis)
    oracle = np.stack([model.expected(t)[0] for t in truth])
    error, off = _mm(answers, truth, mm_per_px), (answers - truth) * mm_per_px[:, None, :]
    to_oracle, to_expected = _mm(truth, oracle, mm_per_px), _mm(truth, expected, mm_per_px)
    answer_to_expected = _mm(answers, expected, mm_per_px)
    per = pd.DataFrame({
        "MRE": error.mean(0), f"> {gross:g}": (error > gross).sum(0),
        "offset x": np.median(off[..., 0], 0), "offset y": np.median(off[..., 1], 0),
        "truth-oracle median": np.median(to_oracle, 0), "truth-oracle p90": np.percentile(to_oracle, 90, axis=0),
        "truth-expected median": np.median(to_expected, 0), "spread": np.median(spread, 0)}, index=list(names))
    rows = [{"image": ids[b], "landmark": names[k], "error": error[b, k], "x": off[b, k, 0], "y": off[b, k, 1],
             "answer-expected": answer_to_expected[b, k], "truth-expected": to_expected[b, k],
             "truth-oracle": to_oracle[b, k]} for b, k in zip(*np.nonzero(error > gross))]
    return per, pd.DataFrame(rows, columns=["image", "landmark", "error", "x", "y", "answer-expected",
                                            "truth-expected", "truth-oracle"])

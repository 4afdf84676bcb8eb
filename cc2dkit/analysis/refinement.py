"""Several predictors of one trained model on the same labelled images, side by side: the coarse
answer against its refinements (sub-pixel peak, template copies, the fine stage)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.grid import GridImages
from ..inference import Predictor
from ..methods.runfolder import evaluation
from ..metrics.tables import ALL_ROW


@dataclass
class PredictorComparison:
    """``errors[label]``: (N, K) errors of predictor ``label`` (mm, or px when ``unit`` says so);
    ``grid[label]``: its (N, K, 2) grid answers; ``table``: a row per predictor (its "all" row)."""

    errors: dict[str, np.ndarray]
    grid: dict[str, np.ndarray]
    table: pd.DataFrame
    landmark_names: list[str]
    unit: str

    def per_landmark(self, over: float | None = None) -> pd.DataFrame:
        """Landmarks x predictors: the mean error, or with ``over`` the count of errors above it."""
        stat = (lambda e: e.mean(axis=0)) if over is None else (lambda e: (e > over).sum(axis=0))
        return pd.DataFrame({label: stat(e) for label, e in self.errors.items()}, index=self.landmark_names)

    def crossings(self, before: str, after: str, radius: float) -> pd.DataFrame:
        """Landmarks x (out, in, net): how many answers ``after`` moved out of the ``radius`` circle
        that ``before``'s were in, and into it from outside (a step such as the fine stage moves
        answers both ways; its SDR change is the net over all landmarks)."""
        was, now = self.errors[before] <= radius, self.errors[after] <= radius  # (N, K)
        out, into = (was & ~now).sum(axis=0), (~was & now).sum(axis=0)
        return pd.DataFrame({"out": out, "in": into, "net": into - out}, index=self.landmark_names)

    def drift(self, before: str, after: str, beyond: float) -> pd.DataFrame:
        """Landmarks x (closer, further): of the answers ``before`` put more than ``beyond`` from the
        truth (already wrong), how many ``after`` brought closer to it and how many took further away
        (a step that reads nothing of where the truth is should do either about as often)."""
        wrong = self.errors[before] > beyond  # (N, K)
        change = self.errors[after] - self.errors[before]
        closer, further = (wrong & (change < 0)).sum(axis=0), (wrong & (change > 0)).sum(axis=0)
        return pd.DataFrame({"closer": closer, "further": further}, index=self.landmark_names)

    def report(self) -> str:
        """The table, then the per-landmark mean errors, as text (what the benchmarks print)."""
        with pd.option_context("display.width", 220, "display.precision", 2):
            return f"{self.table.to_string()}\nper-landmark MRE ({self.unit}):\n{self.per_landmark().to_string()}"

    def summary(self, over: float = 10.0) -> str:
        """The table, then the errors over ``over`` per landmark (only landmarks with any), as text."""
        far = self.per_landmark(over)
        with pd.option_context("display.width", 200, "display.precision", 2):
            return (f"{self.table.to_string()}\nerrors over {over:g} {self.unit} per landmark (landmarks with any):\n"
                    f"{far[far.sum(axis=1) > 0].to_string()}")


def compare_predictors(predictors: Mapping[str, Predictor], data: GridImages,
                       radii=(2.0, 2.5, 3.0, 4.0), progress: bool = False) -> PredictorComparison:
    """Every predictor on every image of ``data`` (labelled); they must predict the same landmarks.
    The table adds the median error and the count of errors over 10 mm (``> 10``)."""
    if not predictors:
        raise ValueError("compare_predictors needs at least one predictor")
    first = next(iter(predictors.values())).landmark_indices
    for label, predictor in predictors.items():
        if predictor.landmark_indices != first:
            raise ValueError(f"predictor {label!r} predicts landmarks {predictor.landmark_indices}, not {first}")
    return compare_answers({label: p.predict_grid(data, progress=progress) for label, p in predictors.items()},
                           data, first, radii)


def compare_answers(grid: Mapping[str, np.ndarray], data: GridImages, landmark_indices: list[int],
                    radii=(2.0, 2.5, 3.0, 4.0)) -> PredictorComparison:
    """``compare_predictors`` from answers already computed: {label: (N, K, 2) grid points of the
    ``landmark_indices`` on every image of ``data``}."""
    errors, rows = {}, {}
    for label, points in grid.items():
        errors[label], table = evaluation(data, data.to_original(points, landmark_indices), landmark_indices, radii)
        rows[label] = {**table.loc[ALL_ROW].to_dict(), "median": float(np.median(errors[label])),
                       "> 10": int((errors[label] > 10).sum())}
    names = [data.landmark_names[l] for l in landmark_indices]
    return PredictorComparison(errors, dict(grid), pd.DataFrame.from_dict(rows, orient="index"), names, data.unit)

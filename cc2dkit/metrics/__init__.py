"""Landmark-detection metrics: radial errors, MRE/SD/SDR, tables, result files and plots."""
from .errors import DEFAULT_RADII, radial_errors_mm, sdr, sdr_key, summarize
from .plots import plot_error_bars, plot_history, plot_landmarks, plot_predictions, prediction_gallery
from .tables import ALL_ROW, errors_long, per_image_table, per_landmark_table, save_evaluation

__all__ = [
    "DEFAULT_RADII",
    "ALL_ROW",
    "radial_errors_mm",
    "sdr",
    "sdr_key",
    "summarize",
    "per_landmark_table",
    "per_image_table",
    "errors_long",
    "save_evaluation",
    "plot_predictions",
    "plot_error_bars",
    "plot_history",
    "plot_landmarks",
    "prediction_gallery",
]

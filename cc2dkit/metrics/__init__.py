"""Landmark-detection scores: radial errors, MRE/SD/SDR, per-landmark tables (numpy and pandas only)."""
from .errors import DEFAULT_RADII, radial_errors_mm, sdr, sdr_key, summarize
from .tables import ALL_ROW, errors_long, per_landmark_table

__all__ = ["ALL_ROW", "DEFAULT_RADII", "errors_long", "per_landmark_table", "radial_errors_mm", "sdr", "sdr_key", "summarize"]

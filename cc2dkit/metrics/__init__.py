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
from .pl_plots import (pl_summary, pl_trajectories, pl_trajectory, pl_trajectory_gallery, plot_pl_history,
                       plot_pl_trajectory)
from .seesaw import (change_correlation, compare_change_correlations, compare_error_curves, error_changes,
                     error_table, mean_off_diagonal, plot_change_correlation, plot_error_curves, plot_seesaw_events,
                     seesaw_comparison, seesaw_events, seesaw_summary)

__all__ += ["pl_summary", "pl_trajectories", "pl_trajectory", "pl_trajectory_gallery", "plot_pl_history",
            "plot_pl_trajectory",
            "change_correlation", "error_changes", "error_table", "mean_off_diagonal", "plot_change_correlation",
            "plot_error_curves", "plot_seesaw_events", "seesaw_events", "seesaw_summary", "compare_change_correlations",
            "compare_error_curves", "seesaw_comparison"]
from .atd_plots import DotCheck, dot_warp_check, plot_affine_params, plot_dot_check, template_gallery
from .results import (PAPER, collect_runs, compare_tables, finished_runs, plot_landmark_comparison,
                      plot_method_comparison, read_run, table1, table2, table3)

__all__ += ["DotCheck", "dot_warp_check", "plot_affine_params", "plot_dot_check", "template_gallery",
            "PAPER", "collect_runs", "compare_tables", "finished_runs", "plot_landmark_comparison",
            "plot_method_comparison",
            "read_run", "table1", "table2", "table3"]

"""Every figure of the kit: matplotlib ``Figure`` objects, headless-safe (no pyplot state)."""
from .atd import plot_affine_params, plot_dot_check, template_gallery
from .pl import pl_trajectory_gallery, plot_pl_history, plot_pl_trajectory
from .plots import image_gallery, plot_error_bars, plot_history, plot_landmarks, plot_predictions, prediction_gallery
from .results import plot_budget_curve, plot_landmark_comparison, plot_method_comparison
from .seesaw import (compare_change_correlations, compare_error_curves, plot_change_correlation, plot_error_curves,
                     plot_seesaw_events)

__all__ = ["compare_change_correlations", "image_gallery", "compare_error_curves", "pl_trajectory_gallery", "plot_affine_params",
           "plot_budget_curve",
           "plot_change_correlation", "plot_dot_check", "plot_error_bars", "plot_error_curves", "plot_history",
           "plot_landmark_comparison", "plot_method_comparison", "plot_pl_history", "plot_pl_trajectory",
           "plot_predictions", "plot_seesaw_events", "prediction_gallery", "template_gallery"]

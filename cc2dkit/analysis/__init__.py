"""Measures over runs: the seesaw, pseudo-label paths, the paper's tables from run folders, the ATD check,
where a shape check's expectations sit against the truth, which scale's map holds a miss, how far
apart the annotators put each landmark."""
from .agreement import agreement_table, annotator_distances
from .atd import DotCheck, dot_warp_check
from .pl import pl_outcomes, pl_shape_flags, pl_summary, pl_trajectories, pl_trajectory
from .refinement import PredictorComparison, compare_answers, compare_predictors
from .results import PAPER, budget_curve, compare_tables, gross_errors, table1, table2, table3
from .runs import collect_runs, finished_runs, read_run, run_labels, trainable_params
from .scales import scale_evidence, scale_tables
from .seesaw import (change_correlation, error_changes, error_table, mean_off_diagonal, seesaw_comparison,
                     seesaw_events, seesaw_summary)
from .shape import shape_misses

__all__ = ["DotCheck", "PAPER", "PredictorComparison", "agreement_table", "annotator_distances", "budget_curve",
           "change_correlation", "compare_answers", "compare_predictors", "collect_runs", "compare_tables",
           "dot_warp_check", "error_changes", "error_table", "finished_runs", "gross_errors", "mean_off_diagonal",
           "pl_outcomes", "pl_shape_flags", "pl_summary", "pl_trajectories", "pl_trajectory", "read_run", "run_labels",
           "scale_evidence", "scale_tables", "seesaw_comparison", "seesaw_events", "seesaw_summary", "shape_misses",
           "table1", "table2", "table3", "trainable_params"]

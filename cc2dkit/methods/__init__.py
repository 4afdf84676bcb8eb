"""The methods of He et al. on top of CC2D, as data (``registry.py``), and the one run path.

``run_method(cfg, out_dir)`` trains ``cfg.method.name`` (cc2d, multi, wide, sla, atd, adapter)
through one epoch loop (``loop.py``) and writes one run-folder format (``runfolder.py``);
``load_predictor(run_dir)`` gives a finished run's predictor back.
"""
from .apply import load_run, open_run, predict_folder, run_settings, user_template, with_fine_stage
from .registry import METHODS, MethodSpec, method_config, method_spec
from .run import MethodResult, batched_training, run_method
from .runfolder import load_predictor, run_config, write_results

__all__ = ["METHODS", "MethodResult", "MethodSpec", "batched_training", "load_predictor", "load_run",
           "method_config", "method_spec", "open_run", "predict_folder", "run_config", "run_method", "run_settings",
           "user_template", "with_fine_stage", "write_results"]

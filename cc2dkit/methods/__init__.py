"""The pseudo-label methods of He et al. on top of CC2D, one short schedule per file.

- ``multi``:   one CC2D on PL-centred patches of all landmarks (the seesaw baseline)
- ``sla``:     one CC2D per landmark, Train-PL then Infer-PL each epoch (:class:`SLASet`)
- ``atd``:     C-ATD = SLA + a Train-Template stage on augmented templates each epoch
- ``cc2d``:    plain CC2D self-supervision, tracked per landmark like the others
- ``wide``:    ``multi`` with every decoder conv widened (the ablation)
- ``adapter``: one model with per-landmark adapters, SLA+ATD schedule over all landmarks

``run_method(cfg, out_dir)`` runs ``cfg.method.name`` (``registry.py``). Stage lengths and
run-folder files: see ``common.py``.
"""
from .adapter import run_adapter
from .atd import run_atd
from .cc2d import run_cc2d
from .common import MethodResult, stage_steps
from .load import load_predictor, run_config
from .multi import run_multi
from .registry import METHODS, method_config, run_method
from .sla import SLASet, run_sla

__all__ = ["METHODS", "MethodResult", "SLASet", "load_predictor", "method_config", "run_adapter", "run_atd",
           "run_cc2d", "run_config", "run_method", "run_multi", "run_sla", "stage_steps"]

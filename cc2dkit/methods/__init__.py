"""The pseudo-label methods of He et al. on top of CC2D, one short schedule per file.

- ``multi``:   one CC2D on PL-centred patches of all landmarks (the seesaw baseline)
- ``sla``:     one CC2D per landmark, Train-PL then Infer-PL each epoch (:class:`SLASet`)
- ``atd``:     C-ATD = SLA + a Train-Template stage on augmented templates each epoch
- ``adapter``: one model with per-landmark adapters, SLA+ATD schedule over all landmarks

Stage lengths and run-folder files: see ``common.py``.
"""
from .adapter import run_adapter
from .atd import run_atd
from .common import MethodResult, stage_steps
from .multi import run_multi
from .sla import SLASet, run_sla

__all__ = ["MethodResult", "SLASet", "run_adapter", "run_atd", "run_multi", "run_sla", "stage_steps"]

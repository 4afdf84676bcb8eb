"""C-ATD: SLA plus a Train-Template stage before Train-PL every epoch.

``method.atd_copies`` augmented templates (``data/template_aug.py``) are generated once per run
(from the run's generator) and reused; model k trains each epoch first on patches centred at
landmark k of the copies, then on its PLs, then re-infers them. The result is an
:class:`~cc2dkit.methods.sla.SLASet`.
"""
from __future__ import annotations

from ..config import Config
from .common import MethodResult
from .sla import run_per_landmark


def run_atd(cfg: Config, out_dir=None, data=None, progress: bool = True, resume: bool = False) -> MethodResult:
    return run_per_landmark(cfg, out_dir, data, progress, with_templates=True, name="atd", resume=resume)

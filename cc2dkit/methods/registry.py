"""One entry point for every method: ``run_method(cfg, out_dir, data)`` picks ``cfg.method.name``.

=========  ==========================================================================  ===============
name       what is trained                                                             predictor
=========  ==========================================================================  ===============
cc2d       CC2D self-supervision on random patches (``pipeline``; no pseudo-labels)    ModelPredictor
multi      one CC2D on PL-centred patches of all landmarks (the seesaw baseline)       ModelPredictor
wide       ``multi`` with every decoder conv widened by ``net.extra_channels``          ModelPredictor
           (default +16 when left at 0; the paper's +16 and +16x19 ablation)
sla        one CC2D per landmark, Train-PL + Infer-PL                                   SLASet
atd        C-ATD: ``sla`` + a Train-Template stage on augmented templates               SLASet
adapter    one C-Adapter model (``method.adapter_channels`` = C_A; 0: shared model),    ModelPredictor
           SLA+ATD schedule over all landmarks
=========  ==========================================================================  ===============
"""
from __future__ import annotations

from ..config import Config
from ..network.adapter import build_model
from .adapter import run_adapter
from .atd import run_atd
from .cc2d import run_cc2d
from .common import MethodResult
from .multi import run_multi
from .sla import run_sla

METHODS = ("cc2d", "multi", "wide", "sla", "atd", "adapter")
WIDE_DEFAULT_EXTRA = 16


def method_config(cfg: Config) -> Config:
    """``cfg`` as the method runs it (``wide`` gets +16 channels when ``net.extra_channels`` is 0)."""
    name = cfg.method.name
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    if name == "wide" and cfg.net.extra_channels == 0:
        return cfg.replace(**{"net.extra_channels": WIDE_DEFAULT_EXTRA})
    return cfg


def run_method(cfg: Config, out_dir=None, data=None, progress: bool = True, resume: bool = False) -> MethodResult:
    """Train ``cfg.method.name`` (see the module table), evaluate on the test split, write ``out_dir``.

    ``data``: (train, test) GridImages to reuse (built from ``cfg.data`` when None). ``resume``:
    continue from ``out_dir/method_state.pt`` (see ``state.py``).
    """
    cfg = method_config(cfg)
    name = cfg.method.name
    if name == "cc2d":
        return run_cc2d(cfg, out_dir, data, progress, resume)
    if name in ("multi", "wide"):
        return run_multi(cfg, out_dir, data, progress, resume)
    if name == "sla":
        return run_sla(cfg, out_dir, data, progress, resume)
    if name == "atd":
        return run_atd(cfg, out_dir, data, progress, resume)
    return run_adapter(cfg, build_model, out_dir, data, progress, resume)

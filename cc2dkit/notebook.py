"""The notebooks' parameter cell in one call: quick mode on a CPU, the full protocol on a GPU.

``CC2DKIT_QUICK=1`` forces quick mode (CI sets it); ``CC2DKIT_QUICK=0`` forces the full protocol.
Quick mode runs torch on one CPU thread: the small convolutions gain little from a second one,
and a kernel with 2 threads on 2 busy cores was measured several times slower
(benchmarks/RESULTS.md, "Notebooks").

| mode  | data given (ISBI root) | config                                              |
|-------|------------------------|-----------------------------------------------------|
| quick | no                     | ``smoke`` (phantom), a little longer, 24 ATD copies |
| quick | yes                    | ``cpu``, 2 epochs x 10 steps, 12 PL images,         |
|       |                        | 10 test images, 24 ATD copies                       |
| full  | yes                    | ``paper`` (384, VGG19 ImageNet, 300 epochs)         |
| full  | no                     | error: the full protocol needs the real data        |

``full_epochs`` shortens the full protocol (the quickstart uses a tenth of the paper's epochs).
:func:`mode_line` says in one line which mode a notebook runs and why.
"""
from __future__ import annotations

import os

import torch

from .config import ISBI_ROOT_ENV, Config, preset

QUICK_ENV = "CC2DKIT_QUICK"


def quick_mode(quick: bool | None) -> bool:
    if quick is not None:
        return bool(quick)
    env = os.environ.get(QUICK_ENV)
    if env is not None and env != "":
        return env.lower() not in ("0", "false", "no", "off")
    return not torch.cuda.is_available()


def mode_line(quick: bool | None) -> str:
    """Which mode a notebook's ``QUICK`` picks, and why, for the notebook's output."""
    env = os.environ.get(QUICK_ENV)
    if quick is not None:
        why = f"QUICK = {quick}"
    elif env:
        why = f"${QUICK_ENV}={env}"
    else:
        why = "a CUDA GPU is present" if torch.cuda.is_available() else "no CUDA GPU"
    if quick_mode(quick):
        return f"quick mode ({why}): a short run to see every step; its numbers are not the paper's"
    return f"full mode ({why}): ISBI 2015 at 384 px, ImageNet VGG19 (downloaded once, ~550 MB)"


def notebook_config(quick: bool | None = None, isbi_root: str | None = None, weights: str | None = None,
                    full_epochs: int | None = None, **overrides) -> Config:
    """The config a notebook runs with. ``isbi_root`` None: ``$CC2DKIT_ISBI_ROOT`` in full mode,
    the phantom in quick mode. ``weights`` None: the preset's. ``full_epochs``: the full protocol's
    epochs (None: the paper's 300). Extra dotted ``overrides`` last."""
    quick = quick_mode(quick)
    if quick:
        if isbi_root is None:
            cfg = preset("smoke", **{"train.epochs": 4, "train.steps_per_epoch": 5, "method.atd_copies": 24,
                                     "num_threads": 1})
        else:
            # the cpu preset's data and network; plain CC2D like the other modes (a notebook picks its method)
            cfg = preset("cpu", **{"data.root": isbi_root, "train.epochs": 2, "train.steps_per_epoch": 10,
                                   "data.test_limit": 10, "method.atd_copies": 24, "method.pl_images": 12,
                                   "method.name": "cc2d", "eval.template_copies": 0, "eval.track_every": 1,
                                   "eval.track_images": None, "refine.enabled": False, "num_threads": 1})
    else:
        root = isbi_root or os.environ.get(ISBI_ROOT_ENV)
        if not root:
            raise ValueError(f"the full protocol needs the ISBI 2015 data: pass isbi_root or set ${ISBI_ROOT_ENV}")
        cfg = preset("paper", **{"data.root": root})
        if full_epochs is not None:
            cfg = cfg.replace(**{"train.epochs": full_epochs})
    if weights is not None:
        cfg = cfg.replace(**{"backbone.weights": weights})
    return cfg.replace(**overrides) if overrides else cfg


def own_data_config(root, template: str, quick: bool | None = None, spacing_mm: float | None = None,
                    **overrides) -> Config:
    """The config of notebook 07: a C-Adapter (C_A 4, the kit's best one-model method) on a folder
    workspace (``data.workspace.make_workspace``); quick mode: grid 128, a few short epochs on one
    CPU thread (about a minute); else the ``cpu`` preset's network at grid 192 (``paper`` on a GPU)."""
    common = {"data.source": "folder", "data.root": str(root), "data.template": template, "data.spacing_mm": spacing_mm,
              "method.name": "adapter", "method.adapter_channels": 4, "eval.subpixel": True}
    if quick_mode(quick):
        cfg = preset("smoke", **common, **{"train.epochs": 4, "train.steps_per_epoch": 6, "method.atd_copies": 32,
                                           "num_threads": 1})
    else:
        cfg = preset("paper" if torch.cuda.is_available() else "cpu", **common)
    return cfg.replace(**overrides) if overrides else cfg


def describe(cfg: Config) -> str:
    """A short, stable description of a config for a notebook's output."""
    return (f"preset={cfg.name} data={cfg.data.source} grid={cfg.data.grid} backbone={cfg.backbone.arch} "
            f"epochs={cfg.train.epochs} batch={cfg.train.batch_size} embed={cfg.net.embed_dim}")

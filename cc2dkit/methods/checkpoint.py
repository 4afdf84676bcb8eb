"""Resumable runs: everything an interrupted run needs, saved after every ``train.save_every`` epochs.

``checkpoint.pt`` holds the config it was trained with, the epoch, the trainable weights of every model, the optimizers, the
run's generator state and each trainee's, the pseudo-labels with their history, the per-epoch log rows, the
*layout* (how models are grouped for training: one model, K models one by one, or stacks), the
precision it trained in (``train.amp`` resolved on its device: "auto" depends on the machine) and,
with ``train.ema``, each trainee's weight average (the models' weights are the raw, trained ones). A run
resumed from it continues at the next epoch; with the same config it ends with the same numbers
as an uninterrupted run (everything random is drawn from the saved generator; augmented templates
are regenerated from the seed before the restore).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import Config
from .runfolder import CHECKPOINT, CHECKPOINT_FORMAT, LEGACY, load_saved, save_atomic


def save_checkpoint(out: Path, cfg: Config, epoch: int, models: list, optimizers: list, generators: list,
                    generator: torch.Generator, pl_state, log_rows: list[dict], layout: str, bf16: bool,
                    averages: list | None = None) -> Path:
    """``optimizers`` / ``generators``: the state dicts / states of the trainees (in their order);
    ``bf16``: whether the run trains in bfloat16 (``train.amp`` resolved); ``averages``: the trainees'
    :class:`~cc2dkit.training.WeightAverage` or None each (``train.ema``)."""
    state = {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "epoch": epoch,
             "models": [m.trainable_state_dict() for m in models],
             "optimizers": list(optimizers),
             "trainee_generators": list(generators),
             "generator": generator.get_state(),
             "pls": None if pl_state is None else pl_state.pls,
             "pl_history": None if pl_state is None else pl_state.history,
             "log": log_rows, "layout": layout, "train_bf16": bool(bf16),
             "averages": [None if a is None else a.state_dict() for a in averages or []]}
    return save_atomic(state, out / CHECKPOINT)


def load_checkpoint(out: Path) -> dict:
    """``out/checkpoint.pt`` as a dict; a clear error when there is nothing (or nothing current) to resume."""
    path = Path(out) / CHECKPOINT
    if not path.exists():
        old = Path(out) / "method_state.pt"
        if old.exists():
            raise ValueError(f"cannot resume {out}: {old} was saved by cc2dkit 0.1 (format "
                             f"{LEGACY[old.name]!r}), which this version does not resume")
        raise FileNotFoundError(f"cannot resume: no {CHECKPOINT} in {out}")
    try:
        state = load_saved(path, CHECKPOINT_FORMAT, "cc2dkit checkpoint")
    except ValueError as e:
        raise ValueError(f"cannot resume {out}: {e}") from None
    state["path"] = path
    return state


def restore(state: dict, models: list, generator: torch.Generator, pl_state, layout: str) -> tuple[int, list[dict]]:
    """Load a :func:`load_checkpoint` dict into the models, generator and PLs; returns (epoch, log rows)."""
    if state["layout"] != layout:
        raise ValueError(f"{state['path']} was saved with layout {state['layout']!r}, this run is {layout!r}: "
                         "resume with the method.batched / method.stack_size it was started with")
    if len(state["models"]) != len(models):
        raise ValueError(f"{state['path']} holds {len(state['models'])} models, this run has {len(models)}")
    for m, sd in zip(models, state["models"]):
        m.load_trainable_state_dict(sd)
    generator.set_state(state["generator"])
    if pl_state is not None:
        pl_state.pls = state["pls"]
        pl_state.history = list(state["pl_history"])
    return int(state["epoch"]), list(state["log"])


def restore_trainees(state: dict, optimizers: list, generators: list[torch.Generator], averages: list | None = None
                     ) -> None:
    """The trainees' optimizers, generators and weight averages (``train.ema``) as saved."""
    if len(state["optimizers"]) != len(optimizers):
        raise ValueError(f"{state['path']} holds {len(state['optimizers'])} optimizers, this run has {len(optimizers)}")
    for o, sd in zip(optimizers, state["optimizers"]):
        o.load_state_dict(sd)
    for g, saved in zip(generators, state["trainee_generators"]):
        g.set_state(saved)
    for a, saved in zip(averages or [], state.get("averages") or []):  # train.ema may not change on resume
        if a is not None:
            a.load_state_dict(saved)

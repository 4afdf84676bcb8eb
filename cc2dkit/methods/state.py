"""Resumable method runs: everything an interrupted run needs, saved after every epoch.

``method_state.pt`` in the run folder holds the epoch, the trainable weights of every model, the
optimizers, the run's generator state, the pseudo-labels with their history and the per-epoch
log rows. A run started with ``resume=True`` restores them and continues at the next epoch; with
the same config it ends with the same numbers as an uninterrupted run (everything random is drawn
from the saved generator; augmented templates are regenerated from the seed before the restore).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..training.checkpoint import load_saved, save_atomic

STATE_NAME = "method_state.pt"
STATE_FORMAT = "cc2dkit-method-state-1"


def save_state(out: Path | None, epoch: int, models: list, optimizers: list, generator: torch.Generator,
               pl_state, log, save_every: int, last_epoch: int, layout: str = "") -> None:
    """Write the state after ``epoch`` (every ``save_every`` epochs and at the last; no-op without ``out``).

    ``layout`` names how models and optimizers are arranged (e.g. batched SLA stacks); a resume
    with another layout is refused.
    """
    if out is None or (epoch % max(save_every, 1) and epoch != last_epoch):
        return
    state = {"format": STATE_FORMAT, "epoch": epoch,
             "models": [m.trainable_state_dict() for m in models],
             "optimizers": [o.state_dict() for o in optimizers],
             "generator": generator.get_state(),
             "pls": None if pl_state is None else pl_state.pls,
             "pl_history": None if pl_state is None else pl_state.history,
             "log": log.rows, "layout": layout}
    save_atomic(state, out / STATE_NAME)


def load_state(out: Path | None) -> dict:
    """``out/method_state.pt`` as a dict (checked to be a method state).

    Raises FileNotFoundError naming the file when there is nothing to resume from.
    """
    if out is None:
        raise ValueError("resume needs a run folder (out_dir)")
    path = Path(out) / STATE_NAME
    if not path.exists():
        raise FileNotFoundError(f"cannot resume: no {STATE_NAME} in {out}")
    state = load_saved(path, STATE_FORMAT, "cc2dkit method state")
    state["path"] = path
    return state


def apply_state(state: dict, models: list, optimizers: list | None, generator: torch.Generator, pl_state,
                log, layout: str = "") -> int:
    """Load a :func:`load_state` dict into the given objects; returns the epoch it holds.

    ``optimizers`` None: leave them (load them later with :func:`load_optimizers`).
    """
    if state.get("layout", "") != layout:
        raise ValueError(f"{state['path']} was saved as {state.get('layout', '')!r}, this run is {layout!r}: "
                         "resume with the method.batched / method.stack_size it was started with")
    if len(state["models"]) != len(models):
        raise ValueError(f"{state['path']} holds {len(state['models'])} models, this run has {len(models)}")
    for m, sd in zip(models, state["models"]):
        m.load_trainable_state_dict(sd)
    if optimizers is not None:
        load_optimizers(state, optimizers)
    generator.set_state(state["generator"])
    if pl_state is not None:
        pl_state.pls = state["pls"]
        pl_state.history = list(state["pl_history"])
    log.rows = list(state["log"])
    return int(state["epoch"])


def load_optimizers(state: dict, optimizers: list) -> None:
    if len(state["optimizers"]) != len(optimizers):
        raise ValueError(f"{state['path']} holds {len(state['optimizers'])} optimizers, this run has "
                         f"{len(optimizers)} (was it saved with another method.batched / method.stack_size?)")
    for o, sd in zip(optimizers, state["optimizers"]):
        o.load_state_dict(sd)


def restore_state(out: Path | None, models: list, optimizers: list, generator: torch.Generator,
                  pl_state, log) -> int:
    """Load ``out/method_state.pt`` into the given objects; returns the epoch it holds.

    Raises FileNotFoundError naming the file when there is nothing to resume from.
    """
    return apply_state(load_state(out), models, optimizers, generator, pl_state, log)

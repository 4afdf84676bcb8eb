"""Checkpoints: trainable weights, config, epoch, optimizer and RNG state (never the backbone)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import Config
from ..network import CC2D

CHECKPOINT_FORMAT = "cc2dkit-checkpoint-1"


def save_atomic(state: dict, path: str | Path) -> Path:
    """``torch.save`` to a temporary file, then rename: an interrupted save never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_saved(path: str | Path, fmt: str, what: str) -> dict:
    """A dict saved by cc2dkit with ``"format": fmt``; clear errors naming ``path`` otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or foreign file: say which one
        raise ValueError(f"cannot read {what} {path}: {e}") from e
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise ValueError(f"{path} is not a {what} (expected format {fmt!r})")
    return state


def save_checkpoint(path: str | Path, model: CC2D, cfg: Config, epoch: int,
                    optimizer: torch.optim.Optimizer | None = None, generator: torch.Generator | None = None,
                    history: list | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": cfg.to_dict(),
        "epoch": epoch,
        "model": model.trainable_state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "generator": generator.get_state() if generator is not None else None,
        "history": history or [],
    }
    return save_atomic(state, path)


def load_checkpoint(path: str | Path) -> dict:
    return load_saved(path, CHECKPOINT_FORMAT, "cc2dkit checkpoint")


def model_from_checkpoint(path: str | Path, cfg: Config | None = None) -> tuple[CC2D, Config, dict]:
    """Rebuild the model (backbone from ``cfg.backbone``) and load the trained decoder."""
    state = load_checkpoint(path)
    cfg = cfg or Config.from_dict(state["config"])
    model = CC2D(cfg.net, cfg.backbone)
    model.load_trainable_state_dict(state["model"])
    return model, cfg, state

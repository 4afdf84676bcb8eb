"""Checkpoints: trainable weights, config, epoch, optimizer and RNG state (never the backbone)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import Config
from ..network import CC2D


def save_checkpoint(path: str | Path, model: CC2D, cfg: Config, epoch: int,
                    optimizer: torch.optim.Optimizer | None = None, generator: torch.Generator | None = None,
                    history: list | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": "cc2dkit-checkpoint-1",
        "config": cfg.to_dict(),
        "epoch": epoch,
        "model": model.trainable_state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "generator": generator.get_state() if generator is not None else None,
        "history": history or [],
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != "cc2dkit-checkpoint-1":
        raise ValueError(f"{path} is not a cc2dkit checkpoint")
    return state


def model_from_checkpoint(path: str | Path, cfg: Config | None = None) -> tuple[CC2D, Config, dict]:
    """Rebuild the model (backbone from ``cfg.backbone``) and load the trained decoder."""
    state = load_checkpoint(path)
    cfg = cfg or Config.from_dict(state["config"])
    model = CC2D(cfg.net, cfg.backbone)
    model.load_trainable_state_dict(state["model"])
    return model, cfg, state

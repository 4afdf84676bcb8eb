"""Rebuild a finished method run's predictor from its run folder (for predict / evaluate).

``sla`` / ``atd`` runs hold ``sla_set.pt`` (the K models and the template); the one-model methods
(cc2d, multi, wide, adapter) hold ``checkpoint.pt`` and take the template image from the
training split (the landmarks they were trained for are re-read from the config).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config import Config
from ..data.grid import GridImages
from ..network.adapter import build_model
from ..training import CHECKPOINT_NAME, load_checkpoint
from ..training.pseudo_labels import ModelPredictor
from .common import resolve_landmarks
from .sla import SLA_FILE, SLASet


def run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"no config.json in run folder {run_dir}")
    return Config.from_dict(json.loads(path.read_text()))


def load_predictor(run_dir: str | Path, train: GridImages, device: torch.device | str = "cpu"):
    """The trained predictor of ``run_dir`` (``predict(data)`` -> (N, L, 2) original pixels)."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    device = torch.device(device)
    if cfg.method.name in ("sla", "atd"):
        if not (run_dir / SLA_FILE).exists():
            raise FileNotFoundError(f"no {SLA_FILE} in {run_dir}: the {cfg.method.name} run did not finish")
        return SLASet.load(run_dir, device)
    landmarks = resolve_landmarks(cfg.method.landmarks, train.landmark_names)
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    model = build_model(cfg, len(landmarks))
    model.load_trainable_state_dict(state["model"])
    model = model.to(device)
    t = train.index(cfg.data.template)
    return ModelPredictor(model, train.images[t], train.landmarks[t], landmarks, device, cfg.eval.batch_size)

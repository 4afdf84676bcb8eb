"""The main job, step by step: prepare data and model, train, predict, evaluate.

Each function takes the config and writes its results into a run folder:

    config.json      the full configuration
    checkpoint.pt    trainable weights, optimizer, RNG state, epoch (resumable)
    history.csv      per-epoch loss and throughput
    predictions.csv  image, landmark, x, y in original pixels
    evaluation.csv / evaluation.json / errors.csv   metrics (see ``metrics``)
    predictions.png  a figure of predictions against ground truth
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import Config
from .data import build_datasets
from .data.grid import GridImages
from .inference import Template, predict_dataset, predictions_frame
from .metrics import per_landmark_table, prediction_gallery, radial_errors_mm, save_evaluation
from .network import CC2D
from .runtime import setup
from .training import CHECKPOINT_NAME, RandomPatchSource, Trainer, load_checkpoint


@dataclass
class Session:
    """Everything a run works on, built once from the config."""

    cfg: Config
    device: torch.device
    generator: torch.Generator
    train_data: GridImages
    test_data: GridImages
    model: CC2D

    def template(self) -> Template:
        return Template.from_data(self.model, self.train_data, self.cfg.data.template, self.device)


def prepare(cfg: Config, progress: bool = True) -> Session:
    device, gen = setup(cfg)
    train_set, test_set = build_datasets(cfg.data, cfg.seed)
    train_set.index(cfg.data.template)  # fail early on an unknown template id
    train = GridImages(train_set, cfg.data.grid, "train", progress)
    test = GridImages(test_set, cfg.data.grid, "test", progress)
    model = CC2D(cfg.net, cfg.backbone).to(device)
    return Session(cfg, device, gen, train, test, model)


def steps_per_epoch(cfg: Config, n_images: int) -> int:
    return cfg.train.steps_per_epoch or max(1, math.ceil(n_images / cfg.train.batch_size))


def train(session: Session, out_dir: str | Path | None, resume: bool = False, progress: bool = True) -> list[dict]:
    """Self-supervised CC2D training on the training split; returns the per-epoch history."""
    cfg = session.cfg
    source = RandomPatchSource(session.train_data, cfg.train)
    trainer = Trainer(session.model, cfg, source, session.device, session.generator,
                      steps_per_epoch(cfg, len(session.train_data)))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(cfg.to_json())
        ckpt = out / CHECKPOINT_NAME
        if resume and ckpt.exists():
            trainer.resume(ckpt)
    history = trainer.fit(cfg.train.epochs, out_dir, progress)
    if out_dir is not None:
        pd.DataFrame(history).to_csv(Path(out_dir) / "history.csv", index=False)
    return history


def load_trained(session: Session, run_dir: str | Path) -> int:
    """Load the trained decoder of ``run_dir`` into the session's model; returns its epoch."""
    state = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    session.model.load_trainable_state_dict(state["model"])
    return state["epoch"]


def predict(session: Session, split: str = "test", out_dir: str | Path | None = None,
            progress: bool = True) -> np.ndarray:
    """(N, L, 2) predictions in original pixels for ``split`` ("test" or "train")."""
    data = _split(session, split)
    pred = predict_dataset(session.model, session.template(), data, session.device,
                           session.cfg.eval.batch_size, progress)
    if out_dir is not None:
        predictions_frame(pred, data.ids, data.landmark_names).to_csv(Path(out_dir) / "predictions.csv", index=False)
    return pred


def evaluate(session: Session, pred: np.ndarray, split: str = "test", out_dir: str | Path | None = None):
    """Radial errors, the per-landmark table and (with ``out_dir``) files and a figure."""
    data = _split(session, split)
    if not data.labelled.all():
        missing = [data.ids[i] for i in np.flatnonzero(~data.labelled)][:5]
        raise ValueError(f"cannot evaluate split {split!r}: images without ground truth, e.g. {missing}")
    errors = radial_errors_mm(pred, data.original_landmarks, data.spacing_mm)
    table = per_landmark_table(errors, data.landmark_names, session.cfg.eval.radii_mm)
    if out_dir is not None:
        save_evaluation(errors, data.landmark_names, data.ids, session.cfg.eval.radii_mm, out_dir)
        _figure(session, data, pred, Path(out_dir) / "predictions.png")
    return errors, table


def _figure(session: Session, data: GridImages, pred: np.ndarray, path: Path) -> None:
    n = min(session.cfg.eval.figures, len(data))
    if n == 0:
        return
    fig = prediction_gallery([data.dataset[k].image for k in range(n)], pred[:n], data.original_landmarks[:n],
                             data.ids[:n])
    fig.savefig(path, dpi=80)


def _split(session: Session, split: str) -> GridImages:
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    return session.train_data if split == "train" else session.test_data


def run_all(cfg: Config, out_dir: str | Path, resume: bool = False, progress: bool = True):
    """Train, predict the test split, evaluate; everything written to ``out_dir``."""
    session = prepare(cfg, progress)
    history = train(session, out_dir, resume, progress)
    pred = predict(session, "test", out_dir, progress)
    errors, table = evaluate(session, pred, "test", out_dir)
    (Path(out_dir) / "timing.json").write_text(json.dumps({"train_seconds": sum(h["seconds"] for h in history)}))
    return session, history, table

"""The epoch loop: steps from a patch source, progress bar, checkpoints, resume."""
from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import Config
from ..network import CC2D
from .checkpoint import load_checkpoint, save_checkpoint
from .step import ssl_step

CHECKPOINT_NAME = "checkpoint.pt"


def make_optimizer(model: CC2D, cfg: Config) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.trainable_parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


class Trainer:
    """Trains ``model`` on batches from ``source`` (anything with ``sample(batch, generator)``)."""

    def __init__(self, model: CC2D, cfg: Config, source, device: torch.device, generator: torch.Generator,
                 steps_per_epoch: int):
        self.model = model.to(device)
        self.cfg = cfg
        self.source = source
        self.device = device
        self.generator = generator
        self.steps_per_epoch = steps_per_epoch
        self.optimizer = make_optimizer(model, cfg)
        self.epoch = 0
        self.history: list[dict] = []

    def resume(self, path: str | Path) -> None:
        state = load_checkpoint(path)
        self.model.load_trainable_state_dict(state["model"])
        if state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if state["generator"] is not None:
            self.generator.set_state(state["generator"])
        self.epoch = state["epoch"]
        self.history = list(state["history"])

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, self.model, self.cfg, self.epoch, self.optimizer, self.generator, self.history)

    def fit(self, epochs: int, out_dir: str | Path | None = None, progress: bool = True) -> list[dict]:
        """Train until ``epochs`` epochs are done in total (a resumed trainer continues)."""
        tc = self.cfg.train
        bar = tqdm(total=(epochs - self.epoch) * self.steps_per_epoch, desc="train", disable=not progress)
        while self.epoch < epochs:
            t0, losses = time.perf_counter(), []
            for _ in range(self.steps_per_epoch):
                batch = self.source.sample(tc.batch_size, self.generator)
                loss, _ = ssl_step(self.model, batch, self.optimizer, tc, self.device)
                losses.append(loss)
                bar.update(1)
                bar.set_postfix(epoch=self.epoch + 1, loss=f"{loss:.3f}")
            self.epoch += 1
            seconds = time.perf_counter() - t0
            self.history.append({"epoch": self.epoch, "loss": sum(losses) / len(losses), "seconds": seconds,
                                 "samples_per_s": len(losses) * tc.batch_size / seconds})
            if out_dir is not None and (self.epoch % tc.save_every == 0 or self.epoch == epochs):
                self.save(Path(out_dir) / CHECKPOINT_NAME)
        bar.close()
        return self.history

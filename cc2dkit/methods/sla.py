"""SLA (single-landmark PL training): one CC2D per trained landmark, any subset of the landmarks.

Each epoch, for every landmark k (models are independent; they share the frozen backbone and
its feature cache): Train-PL on patches centred at the PLs of landmark k, then Infer-PL of
landmark k with model k. The K models are one object, :class:`SLASet`, saved as ``sla_set.pt``
(+ a readable ``sla_set.json``) in the run folder. C-ATD (``atd.py``) adds a Train-Template stage.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import Config
from ..data.grid import GridImages
from ..data.template_aug import TemplatePatchSource, augment_template
from ..network import CC2D
from ..training import make_optimizer
from ..training.pseudo_labels import LandmarkTemplate, PLPatchSource, PLState, expand_original, infer_pseudo_labels
from .common import tracked_test_grid, EpochLog, MethodResult, RunContext, finish, prepare_context, share_frozen, train_stage

SLA_FILE = "sla_set.pt"
SLA_FORMAT = "cc2dkit-sla-set-1"


class SLASet:
    """K single-landmark CC2D models + the template they match against, used as one predictor."""

    def __init__(self, cfg: Config, models: list, landmark_indices: Sequence[int], template_image: torch.Tensor,
                 template_landmarks: np.ndarray, device: torch.device):
        if len(models) != len(landmark_indices):
            raise ValueError(f"{len(models)} models for {len(landmark_indices)} landmarks")
        self.cfg, self.models, self.device = cfg, list(models), device
        self.landmark_indices = [int(l) for l in landmark_indices]
        self.template_image = template_image.detach().cpu()
        self.template_landmarks = np.asarray(template_landmarks, dtype=np.float64)

    def predict_landmark(self, k: int, data: GridImages, image_indices=None, progress: bool = False) -> np.ndarray:
        """(N, 2) grid coordinates of landmark ``landmark_indices[k]`` by model k."""
        l = self.landmark_indices[k]
        t = LandmarkTemplate(self.models[k], self.template_image, self.template_landmarks[[l]], self.device)
        return infer_pseudo_labels(self.models[k], [t], data, [l], self.device, self.cfg.eval.batch_size,
                                   image_indices, progress)[:, 0]

    def predict_grid(self, data: GridImages, image_indices=None, progress: bool = False) -> np.ndarray:
        """(N, K, 2) grid coordinates of the K trained landmarks."""
        return np.stack([self.predict_landmark(k, data, image_indices, progress)
                         for k in range(len(self.models))], axis=1)

    def predict(self, data: GridImages, progress: bool = False) -> np.ndarray:
        """(N, L, 2) original pixels; NaN for the landmarks without a model."""
        return expand_original(data, self.landmark_indices, self.predict_grid(data, progress=progress))

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {"format": SLA_FORMAT, "config": self.cfg.to_dict(), "landmark_indices": self.landmark_indices,
                 "template_image": self.template_image, "template_landmarks": self.template_landmarks,
                 "models": [m.trainable_state_dict() for m in self.models]}
        tmp = d / (SLA_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(d / SLA_FILE)
        (d / "sla_set.json").write_text(json.dumps({"format": SLA_FORMAT, "landmark_indices": self.landmark_indices,
                                                    "models": len(self.models)}, indent=2))
        return d / SLA_FILE

    @classmethod
    def load(cls, directory: str | Path, device: torch.device | str = "cpu") -> "SLASet":
        path = Path(directory) / SLA_FILE
        if not path.exists():
            raise FileNotFoundError(f"no SLA set at {path}")
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("format") != SLA_FORMAT:
            raise ValueError(f"{path} is not a cc2dkit SLA set")
        cfg = Config.from_dict(state["config"])
        device = torch.device(device)
        models = []
        for sd in state["models"]:
            m = CC2D(cfg.net, cfg.backbone)
            m.load_trainable_state_dict(sd)
            models.append(m)
        share_frozen(models)
        return cls(cfg, [m.to(device) for m in models], state["landmark_indices"], state["template_image"],
                   state["template_landmarks"], device)


def run_per_landmark(cfg: Config, out_dir, data, progress: bool, with_templates: bool, name: str) -> MethodResult:
    """The SLA loop; ``with_templates``: a Train-Template stage before Train-PL every epoch (C-ATD)."""
    ctx = prepare_context(cfg, out_dir, data, progress)
    models = [CC2D(cfg.net, cfg.backbone) for _ in ctx.landmarks]
    share_frozen(models)
    models = [m.to(ctx.device) for m in models]
    optimizers = [make_optimizer(m, cfg) for m in models]
    copies = _template_copies(ctx, progress) if with_templates else None
    pl = PLState.random(ctx.train, ctx.unlabelled, ctx.landmarks, ctx.generator)
    pl.record(0, ctx.train)
    pl_sources = [PLPatchSource(ctx.train, cfg.train, cfg.method, pl, [l]) for l in ctx.landmarks]
    tpl_sources = [TemplatePatchSource(copies, cfg.train, cfg.method, [l]) for l in ctx.landmarks] if copies else None
    sla = SLASet(cfg, models, ctx.landmarks, ctx.template_image, ctx.template_landmarks, ctx.device)
    log = EpochLog(ctx)
    bar = tqdm(total=cfg.train.epochs * len(models), desc=name, disable=not progress)
    for epoch in range(1, cfg.train.epochs + 1):
        t0 = time.perf_counter()
        losses = {"template": np.zeros(len(models)), "pl": np.zeros(len(models))} if copies else \
            {"pl": np.zeros(len(models))}
        new = np.empty_like(pl.pls)
        for k, (model, opt) in enumerate(zip(models, optimizers)):
            if copies is not None:
                losses["template"][k] = train_stage(model, opt, tpl_sources[k], ctx)
            losses["pl"][k] = train_stage(model, opt, pl_sources[k], ctx)
            new[:, k] = sla.predict_landmark(k, ctx.train, ctx.unlabelled)
            bar.update(1)
        pl.pls = new
        pl.record(epoch, ctx.train)
        test = tracked_test_grid(ctx, sla, epoch)
        log.add(epoch, losses, test, time.perf_counter() - t0)
    bar.close()
    if ctx.out is not None:
        sla.save(ctx.out)
    result = finish(ctx, sla, pl, log, progress)
    result.extra["template_copies"] = copies
    return result


def _template_copies(ctx: RunContext, progress: bool):
    sample = ctx.train.dataset[ctx.template_index]
    return augment_template(sample.image, sample.landmarks, ctx.cfg.method, ctx.cfg.data.grid, ctx.generator, progress)


def run_sla(cfg: Config, out_dir=None, data=None, progress: bool = True) -> MethodResult:
    """SLA: each epoch Train-PL then Infer-PL, one model per landmark (see the module docstring)."""
    return run_per_landmark(cfg, out_dir, data, progress, with_templates=False, name="sla")

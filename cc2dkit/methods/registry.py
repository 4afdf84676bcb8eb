"""The methods, as data: what each trains, with which stages, through which kind of decoder.

=========  =================================================================  ======================
name       what is trained, each epoch                                        predictor
=========  =================================================================  ======================
cc2d       one CC2D, self-supervised on random patches (no pseudo-labels)     ModelPredictor
multi      one CC2D on PL-centred patches of all landmarks (seesaw baseline)  ModelPredictor
wide       ``multi`` with every decoder conv widened by ``net.extra_channels``  ModelPredictor
           (+16 when left at 0; the paper's +16 and +16x19 ablation)
sla        one CC2D per landmark on its own PL patches                        ModelSetPredictor
atd        C-ATD: ``sla`` with a Train-Template stage (augmented templates)   ModelSetPredictor
adapter    one C-Adapter model (``method.adapter_channels`` = C_A; 0: one      ModelPredictor
           shared model), Train-Template + Train-PL over all landmarks
=========  =================================================================  ======================

Stages (in this order within an epoch): ``ssl`` (random patches of every training image),
``template`` (patches at the augmented templates' landmarks), ``pl`` (patches at the
pseudo-labels). Methods with a ``pl`` stage re-infer the pseudo-labels after the stages
(Infer-PL). A new method is a new row here (and, if it needs one, a new kind of stage in
``run.py:stage_sources``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..config import Config
from ..inference import ModelPredictor, ModelSetPredictor, Predictor, Template
from ..network import CC2D, AdapterBlocks, PlainBlocks
from ..runtime import use_bf16

STAGES = ("ssl", "template", "pl")
WIDE_DEFAULT_EXTRA = 16


@dataclass(frozen=True)
class MethodSpec:
    name: str
    stages: tuple[str, ...]  # training stages of an epoch, in order
    per_landmark: bool = False  # one single-landmark model per trained landmark (else one model for all)
    adapters: bool = False  # the model has landmark-specific adapters (C_A = method.adapter_channels)

    @property
    def uses_pl(self) -> bool:
        return "pl" in self.stages

    @property
    def uses_templates(self) -> bool:
        return "template" in self.stages

    def build_model(self, cfg: Config, n_landmarks: int, shared: CC2D | None = None) -> CC2D:
        """One model of this method for K = ``n_landmarks`` trained landmarks (``shared``: reuse its
        frozen backbone and feature cache)."""
        blocks = AdapterBlocks(n_landmarks=n_landmarks, extra=cfg.method.adapter_channels) if self.adapters \
            else PlainBlocks()
        return CC2D(cfg.net, cfg.backbone, blocks, shared=shared)

    def build_models(self, cfg: Config, n_landmarks: int) -> list[CC2D]:
        """The method's models: K single-landmark models sharing one backbone, or one model."""
        first = self.build_model(cfg, n_landmarks)
        if not self.per_landmark:
            return [first]
        return [first] + [self.build_model(cfg, n_landmarks, shared=first) for _ in range(n_landmarks - 1)]

    def predictor(self, cfg: Config, models: Sequence[CC2D], template: Template, landmarks: Sequence[int],
                  device: torch.device) -> Predictor:
        """The trained ``models`` answering for ``landmarks`` as ``cfg.eval`` says (the one place
        a config becomes a predictor: a run's end, a run folder read back)."""
        e = cfg.eval
        settings = dict(subpixel=e.subpixel, template_copies=e.template_copies, poses=e.poses, centroid=e.centroid,
                        bf16=use_bf16(e.amp, torch.device(device)),
                        local=torch.device(device).type == "cpu" if e.local_finest is None else e.local_finest)
        if self.per_landmark:
            return ModelSetPredictor(models, template, landmarks, device, e.batch_size, cfg.method.stack_size,
                                     **settings)
        return ModelPredictor(models[0], template, landmarks, device, e.batch_size, **settings)


METHODS: dict[str, MethodSpec] = {s.name: s for s in (
    MethodSpec("cc2d", ("ssl",)),
    MethodSpec("multi", ("pl",)),
    MethodSpec("wide", ("pl",)),
    MethodSpec("sla", ("pl",), per_landmark=True),
    MethodSpec("atd", ("template", "pl"), per_landmark=True),
    MethodSpec("adapter", ("template", "pl"), adapters=True),
)}


def method_spec(cfg: Config) -> MethodSpec:
    name = cfg.method.name
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def method_config(cfg: Config) -> Config:
    """``cfg`` as the method runs it (``wide`` gets +16 channels when ``net.extra_channels`` is 0)."""
    if method_spec(cfg).name == "wide" and cfg.net.extra_channels == 0:
        return cfg.replace(**{"net.extra_channels": WIDE_DEFAULT_EXTRA})
    return cfg

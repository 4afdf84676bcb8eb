"""K independent CC2D models run as ONE network (batched SLA: one model per landmark).

SLA trains K single-landmark CC2D models; run one after the other they cost K passes of a small
network. :class:`StackedModels` holds their K decoders as one :class:`~cc2dkit.network.decoder.Decoder`
of :class:`~cc2dkit.network.blocks.StackedBlocks` (K times the width, layers that never mix the
models), so one forward/backward serves all K. The K models share the frozen backbone and its
feature cache: the K batches go through the backbone as K*B images and their taps are laid out
per model along the channels, ``(B, K*C, h, w)`` (:func:`stack_taps`); for inference all K models
embed the same images (:func:`repeat_taps`).

Weights move exactly both ways: every tensor of the stack is the concatenation along dim 0 of the
K decoders' tensors of the same name (``num_batches_tracked`` is shared).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..backbone import FeatureCache
from .blocks import StackedBlocks
from .decoder import Decoder
from .model import CC2D


def stack_taps(taps: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Taps of K*B images, model-major, [(K*B, C, h, w)] -> [(B, K*C, h, w)] (model k in block k)."""
    out = []
    for t in taps:
        kb, c, h, w = t.shape
        out.append(t.reshape(k, kb // k, c, h, w).transpose(0, 1).reshape(kb // k, k * c, h, w))
    return out


def repeat_taps(taps: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """The same images for every model: [(B, C, h, w)] -> [(B, K*C, h, w)]."""
    return [t.repeat(1, k, 1, 1) for t in taps]


class StackedModels(nn.Module):
    """The decoders of K plain CC2D models of one structure as one module (see the module docstring).

    Built from ``models`` (their weights are copied in; the new module has the device and dtype of
    the first decoder; the global RNG is left untouched). :meth:`to_models` copies the weights back.
    """

    def __init__(self, models: Sequence[CC2D]):
        super().__init__()
        if not models:
            raise ValueError("StackedModels needs at least one model")
        if any(m.n_landmarks for m in models):
            raise TypeError("StackedModels stacks plain CC2D models only (no landmark-specific weights)")
        first = models[0]
        self.k = len(models)
        self.cache: FeatureCache = first.cache  # shared, frozen: not a submodule of the stack
        with torch.random.fork_rng(devices=[]):  # fresh weights are overwritten: keep the global RNG
            self.decoder = Decoder(first.decoder.cfg, first.backbone.taps, StackedBlocks(k=self.k))
        self.to(next(first.decoder.parameters()))
        self.load_models(models)

    @property
    def strides(self) -> tuple[int, ...]:
        return self.decoder.strides

    @property
    def backbone(self) -> nn.Module:
        return self.cache.backbone

    n_landmarks = 0  # K plain models: no landmark-specific weights

    @property
    def n_models(self) -> int:
        return self.k

    @torch.no_grad()
    def load_models(self, models: Sequence[CC2D]) -> None:
        """Copy the K models' decoder weights and buffers into the stack (exactly)."""
        if len(models) != self.k:
            raise ValueError(f"{len(models)} models for a stack of {self.k}")
        states = [m.decoder.state_dict() for m in models]
        if any(s.keys() != states[0].keys() for s in states):
            raise ValueError("the models to stack differ in structure")
        own = self.decoder.state_dict()
        self.decoder.load_state_dict({name: (states[0][name] if own[name].ndim == 0 else
                                             torch.cat([s[name] for s in states])) for name in own})

    def model_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's decoder weights and buffers (detached copies), as its ``trainable_state_dict``."""
        if not 0 <= k < self.k:
            raise IndexError(f"model {k} of a stack of {self.k}")
        return {name: (t.detach().clone() if t.ndim == 0 else t.detach().chunk(self.k)[k].clone())
                for name, t in self.decoder.state_dict().items()}

    def to_models(self, models: Sequence[CC2D]) -> None:
        """Model k's weights into ``models[k]`` (in place)."""
        if len(models) != self.k:
            raise ValueError(f"{len(models)} models for a stack of {self.k}")
        for k, m in enumerate(models):
            m.load_trainable_state_dict(self.model_state_dict(k))

    def embed_groups(self, images: torch.Tensor, keys: list | None, landmark_ids=None,
                     crops=None) -> list[torch.Tensor]:
        """K batches of B images, model-major (K*B, 1, G, G) -> [(K, B, D, G/s, G/s)]: batch k through model k.
        ``crops`` (``train.crop_below``) are refused: sample b of every model shares one batch row."""
        if crops:
            raise ValueError("train.crop_below needs one model per step: the stacked models of method.batched=true "
                             "share each batch row; set method.batched=false or train.crop_below=null")
        taps = self.cache.features(keys, images) if keys is not None else self.cache.backbone(images)
        return self.decoder(stack_taps(taps, self.k))

    def forward(self, images: torch.Tensor, keys: list | None = None) -> list[torch.Tensor]:
        """The same images (B, 1, G, G) through all K models -> [(K, B, D, G/s, G/s)]."""
        taps = self.cache.features(keys, images) if keys is not None else self.cache.backbone(images)
        return self.decoder(repeat_taps(taps, self.k))


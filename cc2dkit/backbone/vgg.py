"""Frozen VGG encoder returning the features after each of its 5 max-pools.

The tap points are data (``FEATURE_INFO``), in the spirit of timm's ``feature_info``: for every
architecture, the index in ``torchvision``'s ``vgg.features`` of each max-pool, its stride and its
channel count. The encoder is *frozen*: no parameter needs a gradient, it stays in eval mode even
when a parent module calls ``.train()``, it is never handed to an optimizer, and its weights are
kept out of checkpoints (see ``network/model.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import BackboneConfig
from .weights import VGG_LAYOUTS, build_vgg_features, vgg_layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class FeatureTap:
    module_index: int  # index of the max-pool in ``vgg.features``; the tap is its output
    stride: int  # input pixels per feature cell
    channels: int


def feature_info(arch: str) -> tuple[FeatureTap, ...]:
    """The taps of ``arch``, read off torchvision's layer list (as timm's ``feature_info``).

    In ``vgg.features`` each 3x3 conv is followed by a ReLU (2 modules) and each ``"M"`` is one
    max-pool module; a tap is the output of a max-pool: its index, its stride (x2 per pool) and
    the channels of the conv before it.
    """
    taps, index, channels, stride = [], 0, 3, 1
    for v in vgg_layers(arch):
        if v == "M":
            stride *= 2
            taps.append(FeatureTap(index, stride, channels))
            index += 1
        else:
            channels, index = int(v), index + 2
    return tuple(taps)


FEATURE_INFO: dict[str, tuple[FeatureTap, ...]] = {arch: feature_info(arch) for arch in VGG_LAYOUTS}


class FrozenVGG(nn.Module):
    """Grayscale images in [0, 1] -> 5 feature maps at strides 2, 4, 8, 16, 32."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        if cfg.arch not in FEATURE_INFO:
            raise ValueError(f"unknown backbone arch {cfg.arch!r}; choose one of {sorted(FEATURE_INFO)}")
        self.arch = cfg.arch
        self.taps = FEATURE_INFO[cfg.arch]
        features = build_vgg_features(cfg.arch, cfg.weights, cfg.weights_sha256)
        self.features = features[: self.taps[-1].module_index + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(t.stride for t in self.taps)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(t.channels for t in self.taps)

    def train(self, mode: bool = True) -> "FrozenVGG":
        return super().train(False)  # frozen: always eval

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, 1, H, W) in [0, 1], H and W multiples of 32 -> [(B, C_i, H/s_i, W/s_i)] x 5."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected grayscale images of shape (B, 1, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of 32")
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std  # (B, 3, H, W)
        taps, want = [], {t.module_index for t in self.taps}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in want:
                taps.append(x)
        return taps

"""CC2D = frozen VGG taps -> trainable decoder -> 5 embeddings (strides 32, 16, 8, 4, 2)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..backbone import FeatureCache, FrozenVGG
from ..config import BackboneConfig, NetConfig
from .decoder import CC2DDecoder


class CC2D(nn.Module):
    def __init__(self, net: NetConfig, backbone: BackboneConfig):
        super().__init__()
        self.backbone = FrozenVGG(backbone)
        self.decoder = CC2DDecoder(net, self.backbone.channels, self.backbone.strides)
        self.cache = FeatureCache(self.backbone, backbone)

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides of the embeddings, coarse to fine."""
        return self.decoder.strides

    def trainable_parameters(self):
        return self.decoder.parameters()

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: the decoder only (the backbone is frozen and rebuilt)."""
        return self.decoder.state_dict()

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.decoder.load_state_dict(state)

    def forward(self, images: torch.Tensor, keys: list | None = None,
                landmark_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
        """images (B, 1, G, G) in [0, 1] -> embeddings [(B, D, G/s, G/s)] for s = 32 ... 2.

        With ``keys`` (ids of *un-augmented* images) the frozen features come from the cache.
        ``landmark_ids`` (B,) selects per-sample landmark adapters; the plain CC2D decoder has
        none and refuses them.
        """
        taps = self.cache.features(keys, images) if keys is not None else self.backbone(images)
        if landmark_ids is not None:
            raise ValueError("this CC2D decoder has no landmark adapters; landmark_ids must be None")
        return self.decoder(taps)

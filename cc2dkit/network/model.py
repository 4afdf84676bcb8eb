"""CC2D = frozen VGG taps -> trainable decoder -> 5 embeddings (strides 32, 16, 8, 4, 2).

One model class for every method: the decoder's block kind decides whether it is plain CC2D
(:class:`~cc2dkit.network.blocks.PlainBlocks`) or the C-Adapter
(:class:`~cc2dkit.network.blocks.AdapterBlocks`, which needs each sample's landmark id).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..backbone import FeatureCache, FrozenVGG
from ..config import BackboneConfig, NetConfig
from .blocks import PlainBlocks
from .decoder import Decoder, check_landmark_ids
from .sampling import Crop


class CC2D(nn.Module):
    """``shared``: another model whose frozen backbone and feature cache this one uses (K models need one)."""

    def __init__(self, net: NetConfig, backbone: BackboneConfig, blocks: PlainBlocks = PlainBlocks(),
                 shared: "CC2D | None" = None):
        super().__init__()
        self.backbone = FrozenVGG(backbone) if shared is None else shared.backbone
        self.decoder = Decoder(net, self.backbone.taps, blocks)
        self.cache = FeatureCache(self.backbone, backbone) if shared is None else shared.cache

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides of the embeddings, coarse to fine."""
        return self.decoder.strides

    n_models = 1  # models trained by one step (``StackedModels``: K)

    @property
    def n_landmarks(self) -> int:
        """K when the decoder has landmark-specific weights (then ``forward`` needs ids), else 0."""
        return self.decoder.blocks.n_landmarks if self.decoder.blocks.extra else 0

    def trainable_parameters(self):
        return self.decoder.parameters()

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: the decoder only (the backbone is frozen and rebuilt)."""
        return self.decoder.state_dict()

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.decoder.load_state_dict(state)

    def forward(self, images: torch.Tensor, keys: list | None = None,
                landmark_ids: torch.Tensor | Sequence[int] | int | None = None,
                crops: dict[int, Crop] | None = None) -> list[torch.Tensor]:
        """images (B, 1, G, G) in [0, 1] -> embeddings [(B, D, G/s, G/s)] for s = 32 ... 2.

        With ``keys`` (ids of *un-augmented* images) the frozen features come from the cache.
        ``landmark_ids`` (B,), a sequence or one int for the batch: each sample's landmark in
        [0, K), required by landmark-specific decoders, refused by plain ones. ``crops``: the
        finest stages on each sample's square only (the training step's ``train.crop_below``;
        :meth:`Decoder.forward <cc2dkit.network.decoder.Decoder.forward>`).
        """
        if landmark_ids is not None and not self.n_landmarks:
            raise ValueError("this decoder has no landmark-specific weights; landmark_ids must be None")
        if self.n_landmarks and landmark_ids is None:  # fail before the backbone pass
            check_landmark_ids(None, images.shape[0], self.n_landmarks)
        return self.decoder(self.taps(images, keys), landmark_ids, crops)

    def taps(self, images: torch.Tensor, keys: list | None = None) -> list[torch.Tensor]:
        """The frozen backbone's features (from the cache with ``keys``): fine -> coarse."""
        return self.cache.features(keys, images) if keys is not None else self.backbone(images)

    def embed_groups(self, images: torch.Tensor, keys: list | None, landmark_ids: torch.Tensor | None,
                     crops: dict[int, Crop] | None = None):
        """:meth:`forward` with a leading model axis of 1: [(1, B, D, h, w)] (see ``StackedModels``)."""
        return [e[None] for e in self(images, keys, landmark_ids, crops)]

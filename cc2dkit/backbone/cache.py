"""Memory-bounded cache of frozen-backbone features of un-augmented images.

The backbone never changes during training, so the features of an un-augmented image are the
same at every step: compute them once per image and reuse them. Entries are stored (optionally)
as float16 on the CPU; once ``max_mb`` is reached new images are computed but not stored.
Freshly computed features are computed image by image and rounded to the storage dtype too, so
results do not depend on whether an image was already cached, nor on its batch (a resumed run
continues exactly).
"""
from __future__ import annotations

import torch

from ..config import BackboneConfig
from .vgg import FrozenVGG


class FeatureCache:
    def __init__(self, backbone: FrozenVGG, cfg: BackboneConfig):
        self.backbone = backbone
        self.enabled = cfg.cache_features
        self.dtype = torch.float16 if cfg.cache_fp16 else torch.float32
        self.max_bytes = cfg.cache_max_mb * 2**20
        self._store: dict[object, list[torch.Tensor]] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()
        self.bytes = 0

    def features(self, keys: list, images: torch.Tensor) -> list[torch.Tensor]:
        """Backbone taps for a batch; ``keys[i]`` identifies the un-augmented ``images[i]``.

        images: (B, 1, G, G) on the compute device -> [(B, C_s, G/s, G/s)] x 5, float32.
        """
        if not self.enabled:
            return self.backbone(images)
        device = images.device
        missing = [i for i, k in enumerate(keys) if k not in self._store]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            # one image at a time, so the bits of an image's features do not depend on which images
            # share its batch (a resumed run, the ranks of a torchrun run); rounded to the storage
            # dtype so a hit and a miss give identical numbers
            alone = [self.backbone(images[i:i + 1]) for i in missing]
            fresh = [torch.cat(level).to(self.dtype).float() for level in zip(*alone)]
            for j, i in enumerate(missing):
                entry = [f[j].to("cpu", self.dtype) for f in fresh]
                size = sum(t.numel() * t.element_size() for t in entry)
                if self.bytes + size <= self.max_bytes:
                    self._store[keys[i]] = entry
                    self.bytes += size
            if len(missing) == len(keys):
                return fresh
            fresh_by_index = {i: [f[j] for f in fresh] for j, i in enumerate(missing)}
        else:
            fresh_by_index = {}
        per_image = [
            fresh_by_index[i] if i in fresh_by_index else [t.to(device, torch.float32) for t in self._store[k]]
            for i, k in enumerate(keys)
        ]
        return [torch.stack(level) for level in zip(*per_image)]

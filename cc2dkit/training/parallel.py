"""Data-parallel training of one network over the ranks of a ``torchrun`` run.

The SSL step runs the image and the patch through the network; :class:`PairEmbed` makes that one
``forward`` so DistributedDataParallel can wrap it (DDP sums gradients in the backward of what its
``forward`` returned). The network's batch norms are synced (``network.sync_batch_norm``): N ranks
with B / N samples each compute what one process computes on B.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..distributed import Dist
from ..network import sync_batch_norm


class PairEmbed(nn.Module):
    """``forward(images, patches, keys, ids, partners, partner_keys, crops, patch_crops)`` -> (image embeddings, patch
    embeddings, the round trip's partners' embeddings or None) of ``net``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor, patches: torch.Tensor, keys: list | None, ids: torch.Tensor | None,
                partners: torch.Tensor | None = None, partner_keys: list | None = None, crops: dict | None = None,
                patch_crops: dict | None = None):
        mates = None if partners is None else self.net.embed_groups(partners, partner_keys, ids)
        return (self.net.embed_groups(images, keys, ids, crops), self.net.embed_groups(patches, None, ids, patch_crops),
                mates)


@dataclass
class DataParallel:
    """How one rank trains its share of every global batch: rank ``rank`` of ``world``, through ``module``
    (DDP over :class:`PairEmbed`)."""

    rank: int
    world: int
    module: nn.Module

    def share(self, n: int) -> slice:
        """This rank's samples of a global batch of ``n`` (``n`` divisible by the world size)."""
        if n % self.world:
            raise ValueError(f"train.batch_size={n} must be divisible by the {self.world} processes of the run")
        per = n // self.world
        return slice(self.rank * per, (self.rank + 1) * per)


def data_parallel(net: nn.Module, d: Dist, device: torch.device, fmt: torch.memory_format) -> DataParallel | None:
    """``net`` wrapped for data-parallel training over ``d``'s ranks (None in one process); its weights
    are laid out in ``fmt`` first (DDP's gradient buckets follow the layout they are built with)."""
    if not d.active:
        return None
    for p in net.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=fmt)
    sync_batch_norm(net)
    ids = [device.index] if device.type == "cuda" else None
    # buffers (batch-norm running statistics) stay equal: every rank computes them from the same global batch
    module = torch.nn.parallel.DistributedDataParallel(PairEmbed(net), device_ids=ids, forward_sync_buffers=False)
    return DataParallel(d.rank, d.world, module)

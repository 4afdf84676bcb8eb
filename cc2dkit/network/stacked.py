"""K independent CC2D decoders fused into ONE module (batched SLA: one model per landmark).

SLA trains K single-landmark CC2D models; run one after the other they cost K forward/backward
passes of a small network. :class:`StackedDecoder` holds the K decoders as one network of K times
the width whose layers never mix the models, so one forward/backward trains all K at once:

- every ``nn.Conv2d`` (groups g) becomes a grouped conv with groups ``K * g``: model k owns the
  k-th block of input and output channels, its weight is the k-th block of the out-channels;
- every ``nn.BatchNorm2d`` becomes one BN over ``K * C`` channels: a channel of model k only sees
  model k's samples, so the batch statistics and running stats are model k's own;
- concatenations (U-Net skips, RFB branches) are done per model (:func:`group_cat`); bilinear
  upsampling and ReLU act per channel and are unchanged.

Layout: model k's sample b lives in channels ``[k*C, (k+1)*C)`` of row b. The module tree (and so
the state dict) mirrors ``CC2DDecoder``'s names; every tensor of it is the concatenation along
dim 0 of the K decoders' tensors (``num_batches_tracked`` is shared), so weights move exactly
both ways (:meth:`StackedDecoder.from_decoders`, :meth:`decoder_state_dict`, :meth:`to_decoders`).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import RFB, ConvBNReLU, DoubleConv
from .decoder import CC2DDecoder

_CONTAINERS = (nn.Sequential, ConvBNReLU, DoubleConv)  # exact types: children applied in order


def group_cat(tensors: list[torch.Tensor], k: int) -> torch.Tensor:
    """Per-model channel concatenation: [(B, K*C_i, H, W)] -> (B, K*sum(C_i), H, W)."""
    b, _, h, w = tensors[0].shape
    parts = [t.reshape(b, k, -1, h, w) for t in tensors]  # [(B, K, C_i, H, W)]
    return torch.cat(parts, dim=2).reshape(b, -1, h, w)


def stack_module(m: nn.Module, k: int) -> nn.Module:
    """The K-model version of a decoder part (structure only, fresh weights)."""
    if isinstance(m, nn.Conv2d):
        return nn.Conv2d(k * m.in_channels, k * m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                         k * m.groups, m.bias is not None, m.padding_mode)
    if isinstance(m, nn.BatchNorm2d):
        return nn.BatchNorm2d(k * m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
    if type(m) in (nn.ReLU, nn.Identity):
        return copy.deepcopy(m)
    if type(m) is RFB:
        return StackedRFB(m, k)
    if type(m) in _CONTAINERS:
        return nn.Sequential(*(stack_module(c, k) for c in m))
    if type(m) is nn.ModuleList:
        return nn.ModuleList(stack_module(c, k) for c in m)
    raise TypeError(f"cannot stack a {type(m).__name__} (only plain CC2D decoder parts)")


class StackedRFB(nn.Module):
    """RFB of K models: branches, fuse and shortcut grouped, the branch concatenation per model."""

    def __init__(self, rfb: RFB, k: int):
        super().__init__()
        self.k = k
        self.branches = stack_module(rfb.branches, k)
        self.fuse = stack_module(rfb.fuse, k)
        self.shortcut = stack_module(rfb.shortcut, k)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = group_cat([b(x) for b in self.branches], self.k)  # (B, K*4*c_b, H, W)
        return self.act(self.fuse(y) + self.shortcut(x))


class StackedDecoder(nn.Module):
    """K ``CC2DDecoder`` of one structure as one module (see the module docstring).

    ``StackedDecoder(decoders)`` copies the K decoders' weights and buffers (the new module has the
    device and dtype of ``decoders[0]``; the global RNG is left untouched). forward: taps fine->coarse
    [(B, K*C_s, H/s, W/s)] (model k's taps in channel block k) -> embeddings coarse->fine
    [(K, B, D, H/s, W/s)], the k-th slice being model k's embedding.
    """

    def __init__(self, decoders: list[CC2DDecoder]):
        super().__init__()
        if not decoders:
            raise ValueError("StackedDecoder needs at least one decoder")
        if any(type(d) is not CC2DDecoder for d in decoders):
            raise TypeError("StackedDecoder stacks plain CC2DDecoder modules only")
        first = decoders[0]
        self.k = len(decoders)
        self.strides = first.strides
        self.widths = first.widths
        self.embed_dim = first.heads[0].out_channels
        self._blueprint = (copy.deepcopy(first).cpu(),)  # a tuple: not a submodule, not in the state dict
        with torch.random.fork_rng(devices=[]):  # fresh weights are overwritten: keep the global RNG
            self.lateral = stack_module(first.lateral, self.k)
            self.stages = stack_module(first.stages, self.k)
            self.heads = stack_module(first.heads, self.k)
        self.to(next(first.parameters()))  # device and dtype of the decoders
        self.load_decoders(decoders)

    @classmethod
    def from_decoders(cls, decoders: list[CC2DDecoder]) -> "StackedDecoder":
        return cls(decoders)

    @torch.no_grad()
    def load_decoders(self, decoders: list[CC2DDecoder]) -> None:
        """Copy the K decoders' weights and buffers into this module (exactly)."""
        if len(decoders) != self.k:
            raise ValueError(f"{len(decoders)} decoders for a stack of {self.k}")
        states = [d.state_dict() for d in decoders]
        if any(s.keys() != states[0].keys() for s in states):
            raise ValueError("the decoders to stack differ in structure")
        own = self.state_dict()
        fused = {name: (states[0][name] if own[name].ndim == 0 else torch.cat([s[name] for s in states]))
                 for name in own}
        self.load_state_dict(fused)

    def decoder_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights and buffers as a ``CC2DDecoder`` state dict (detached copies)."""
        if not 0 <= k < self.k:
            raise IndexError(f"model {k} of a stack of {self.k}")
        return {name: (t.detach().clone() if t.ndim == 0 else t.detach().chunk(self.k)[k].clone())
                for name, t in self.state_dict().items()}

    def to_decoders(self, decoders: list[CC2DDecoder] | None = None) -> list[CC2DDecoder]:
        """Model k's weights into ``decoders[k]`` (in place), or into K new decoders (this device, dtype)."""
        if decoders is None:
            like = next(self.parameters())
            decoders = [copy.deepcopy(self._blueprint[0]).to(like) for _ in range(self.k)]
        if len(decoders) != self.k:
            raise ValueError(f"{len(decoders)} decoders for a stack of {self.k}")
        for k, d in enumerate(decoders):
            d.load_state_dict(self.decoder_state_dict(k))
        return decoders

    def forward(self, taps: list[torch.Tensor]) -> list[torch.Tensor]:
        """taps fine->coarse [(B, K*C_s, h, w)] -> embeddings coarse->fine [(K, B, D, h, w)]."""
        taps = taps[::-1]
        x, out = None, []
        for i, (lat, stage, head) in enumerate(zip(self.lateral, self.stages, self.heads)):
            skip = lat(taps[i])  # (B, K*c_lat, h, w)
            if x is None:
                x = stage(skip)
            else:
                up = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                x = stage(group_cat([up, skip], self.k))  # (B, K*(w_{i-1} + c_lat), h, w)
            emb = head(x)  # (B, K*D, h, w)
            out.append(emb.reshape(emb.shape[0], self.k, -1, *emb.shape[-2:]).transpose(0, 1))  # (K, B, D, h, w)
        return out

"""The decoder's building blocks, and the three kinds of them.

(One module of ~330 lines on purpose: a kind is a small table of these primitives and blocks, and
the three kinds must stay interchangeable in the one decoder; they are read and changed together.)

Primitives (every block is made of these):

- :class:`ConvBN`: conv (no bias), batch norm, optional ReLU; ``groups`` > 1 runs K models at once.
- :class:`LandmarkConvBN`: K convs and K batch norms stored stacked; sample b uses those of
  landmark ``ids[b]`` (one grouped conv, no Python loop over samples).
- Both batch norms (:class:`BatchNorm2d`, :class:`LandmarkBatchNorm2d`) can be *synced*
  (:func:`sync_batch_norm`): in data-parallel training their statistics are those of every rank's
  batch together, so N ranks compute what one process computes on the global batch.

Blocks (what the decoder is built from; every block is called as ``block(x, ids)``):

- :class:`Chain`: convs one after the other (the U-Net double conv, an RFB branch).
- :class:`RFB`: the Receptive Field Block, written once for every kind of conv.
- :class:`Beside`: a shared block and a landmark-specific block side by side, outputs concatenated
  (the C-Adapter).

Kinds (a *block factory* hands the decoder its convs, RFBs, heads and concatenation):

- :class:`PlainBlocks`: CC2D.
- :class:`AdapterBlocks`: every conv (and RFB) gets a landmark-specific companion of ``C_A`` output
  channels beside it; ``C_A = 0`` is exactly :class:`PlainBlocks`.
- :class:`StackedBlocks`: K independent CC2D decoders as one module of K times the width whose
  layers never mix the models (grouped convs, per-model concatenation); batched SLA.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..distributed import all_reduce_sum


def _pair(kernel) -> tuple[int, int]:
    return (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)


def _same_padding(kernel: tuple[int, int], dilation: int) -> tuple[int, int]:
    return dilation * (kernel[0] - 1) // 2, dilation * (kernel[1] - 1) // 2


# -- primitives --------------------------------------------------------------------------------

class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (the same parameters, buffers and results) that, when ``synced``, trains on
    the statistics of every rank's batch (two passes: the mean, then the variance about it)."""

    synced = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.synced and self.training):
            return super().forward(x)
        x = x.float()  # as autocast runs batch norm
        c = x.shape[1]
        packed = all_reduce_sum(torch.cat([x.sum((0, 2, 3)), x.new_tensor([x.numel() / c])]))
        count, mean = packed[-1], packed[:-1] / packed[-1]
        var = all_reduce_sum((x - mean[None, :, None, None]).square().sum((0, 2, 3))) / count  # biased
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean)
            self.running_var.mul_(1 - m).add_(m * var * count / (count - 1))
            self.num_batches_tracked.add_(1)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale[None, :, None, None] + (self.bias - mean * scale)[None, :, None, None]


def sync_batch_norm(module: nn.Module, on: bool = True) -> nn.Module:
    """Make every batch norm of ``module`` use (``on``) or not the statistics over all ranks."""
    for m in module.modules():
        if isinstance(m, (BatchNorm2d, LandmarkBatchNorm2d)):
            m.synced = on
    return module


class ConvBN(nn.Module):
    """kh x kw conv (no bias), batch norm, optional ReLU; 'same' padding for any dilation.

    With ``groups=K`` (and K times the channels) it is K independent convs: model k owns the k-th
    block of input and output channels, and batch norm statistics are per channel, so per model.
    """

    def __init__(self, c_in: int, c_out: int, kernel=3, dilation: int = 1, relu: bool = True, groups: int = 1):
        super().__init__()
        kernel = _pair(kernel)
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=_same_padding(kernel, dilation), dilation=dilation,
                              groups=groups, bias=False)
        self.bn = BatchNorm2d(c_out)
        self.relu = relu

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return F.relu(y, inplace=True) if self.relu else y


class LandmarkConv2d(nn.Module):
    """K stacked convs (no bias); sample b is convolved with conv ``ids[b]``.

    Weight ``(K, C_out, C_in, kh, kw)``; in training a batch gathers ``weight[ids]`` and applies it as
    one grouped conv (``groups=B``); in eval a batch of one landmark (inference embeds one landmark
    at a time) is one plain conv. The gather's backward is a scatter-add, so the conv of a landmark
    absent from the batch gets an exactly zero gradient.

    Training takes the grouped path whatever the ids, so a sample's output and input gradient are
    bitwise those it has in any other batch, and returns NCHW, so the layout does not depend on B:
    N ranks with B / N samples each then compute what one process computes on B up to the rounding
    of the sums over the batch (tests/test_distributed.py). The plain conv rounds differently, and
    the NHWC output's strides depend on B, which changes the rounding of the reductions after it.
    """

    def __init__(self, n_landmarks: int, c_in: int, c_out: int, kernel=3, dilation: int = 1):
        super().__init__()
        self.c_in, self.c_out, self.kernel_size = c_in, c_out, _pair(kernel)
        self.dilation = dilation
        self.padding = _same_padding(self.kernel_size, dilation)
        self.weight = nn.Parameter(torch.empty(n_landmarks, c_out, c_in, *self.kernel_size))
        bound = 1.0 / math.sqrt(c_in * self.kernel_size[0] * self.kernel_size[1])  # nn.Conv2d's default
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W), ids (B,) long -> (B, C_out, H, W)."""
        b, c, h, w = x.shape
        if not self.training and (b == 1 or bool((ids == ids[0]).all())):  # a plain conv, 2x the grouped one's speed
            return F.conv2d(x, self.weight[ids[0]], padding=self.padding, dilation=self.dilation)
        weight = self.weight[ids].reshape(b * self.c_out, c, *self.kernel_size)  # (B*C_out, C_in, kh, kw)
        x = x.reshape(1, b * c, h, w)
        nhwc = x.device.type == "cpu"  # oneDNN's grouped conv backward is 2-4x faster NHWC (RESULTS, "Cheaper steps")
        if nhwc:
            x, weight = (t.contiguous(memory_format=torch.channels_last) for t in (x, weight))
        y = F.conv2d(x, weight, padding=self.padding, dilation=self.dilation, groups=b).reshape(b, self.c_out, h, w)
        return y.contiguous() if nhwc else y  # NCHW: strides that do not depend on B


class LandmarkBatchNorm2d(nn.Module):
    """Batch norm with per-landmark affine parameters and running statistics, ``(K, C)`` each.

    Training: the statistics of landmark k are those of the batch's samples of landmark k (what an
    ``nn.BatchNorm2d`` would compute on that sub-batch), computed for all landmarks at once as a
    one-hot matrix product ``(K, B) @ (B, C)`` (deterministic on CUDA, unlike ``index_add_``), in
    two passes for stability. Running statistics (momentum, unbiased variance, as
    ``nn.BatchNorm2d``) move only for the landmarks present. Eval: each sample uses its landmark's
    running statistics, so its output does not depend on the rest of the batch.
    """

    synced = False  # statistics over every rank's batch (sync_batch_norm)

    def __init__(self, n_landmarks: int, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.n_landmarks, self.channels, self.eps, self.momentum = n_landmarks, channels, eps, momentum
        self.weight = nn.Parameter(torch.ones(n_landmarks, channels))
        self.bias = nn.Parameter(torch.zeros(n_landmarks, channels))
        self.register_buffer("running_mean", torch.zeros(n_landmarks, channels))
        self.register_buffer("running_var", torch.ones(n_landmarks, channels))
        self.register_buffer("num_batches_tracked", torch.zeros(n_landmarks, dtype=torch.long))

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), ids (B,) long -> (B, C, H, W)."""
        if self.training:
            mean, var = self._batch_stats(x, ids)  # (K, C) each
            mean_b, var_b = mean[ids], var[ids]  # (B, C)
        else:
            mean_b, var_b = self.running_mean[ids], self.running_var[ids]
        scale = self.weight[ids] * torch.rsqrt(var_b + self.eps)  # (B, C)
        shift = self.bias[ids] - mean_b * scale
        return x * scale[:, :, None, None] + shift[:, :, None, None]

    def _batch_stats(self, x: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reduce = all_reduce_sum if self.synced else (lambda t: t)
        onehot_t = F.one_hot(ids, self.n_landmarks).to(x.dtype).t()  # (K, B)
        count = onehot_t.sum(1) * x.shape[2] * x.shape[3]  # (K,) values per channel of each landmark
        packed = reduce(torch.cat([onehot_t @ x.sum((2, 3)), count[:, None]], dim=1))  # (K, C + 1)
        sums, count = packed[:, :-1], packed[:, -1]
        denom = count.clamp(min=1)[:, None]
        mean = sums / denom  # (K, C)
        var = reduce(onehot_t @ (x - mean[ids][:, :, None, None]).square().sum((2, 3))) / denom  # (K, C), biased
        with torch.no_grad():
            present = (count > 0)[:, None]
            unbiased = var * (count / (count - 1).clamp(min=1))[:, None]
            m = self.momentum
            self.running_mean.copy_(torch.where(present, (1 - m) * self.running_mean + m * mean, self.running_mean))
            self.running_var.copy_(torch.where(present, (1 - m) * self.running_var + m * unbiased, self.running_var))
            self.num_batches_tracked.add_(present[:, 0].long())
        return mean, var

    def extra_repr(self) -> str:
        return f"K={self.n_landmarks}, {self.channels}, eps={self.eps}, momentum={self.momentum}"


class LandmarkConvBN(nn.Module):
    """Per-landmark conv, per-landmark BN, optional ReLU (the landmark-specific ``ConvBN``)."""

    def __init__(self, n_landmarks: int, c_in: int, c_out: int, kernel=3, dilation: int = 1, relu: bool = True):
        super().__init__()
        self.conv = LandmarkConv2d(n_landmarks, c_in, c_out, kernel, dilation)
        self.bn = LandmarkBatchNorm2d(n_landmarks, c_out)
        self.relu = relu

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x, ids), ids)
        return F.relu(y) if self.relu else y


# -- blocks ------------------------------------------------------------------------------------

ConvFactory = Callable[..., nn.Module]  # (c_in, c_out, kernel=3, dilation=1, relu=True) -> block(x, ids)
Cat = Callable[[list], torch.Tensor]  # channel concatenation of a kind's tensors


def channel_cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(tensors, dim=1)


class Chain(nn.ModuleList):
    """Blocks applied one after the other, each called as ``m(x, ids)``."""

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        for m in self:
            x = m(x, ids)
        return x


class RFB(nn.Module):
    """Receptive Field Block: four branches of growing receptive field, fused, plus a shortcut.

    Branch k (k = 0..3): a 1x1 reduce to ``max(c_out // 4, 1)`` channels, then for k > 0 a
    1x(2k+1) conv, a (2k+1)x1 conv and a 3x3 conv with dilation 2k+1. The branches are concatenated,
    fused by a 3x3 conv and added to a 1x1 shortcut; ReLU. ``conv`` and ``cat`` come from the block
    kind, so the same topology serves CC2D, the adapters and K stacked models.
    """

    def __init__(self, c_in: int, c_out: int, conv: ConvFactory, cat: Cat = channel_cat):
        super().__init__()
        c_b = max(c_out // 4, 1)
        branches = [Chain([conv(c_in, c_b, 1)])]
        for k in (1, 2, 3):
            size = 2 * k + 1
            branches.append(Chain([conv(c_in, c_b, 1), conv(c_b, c_b, (1, size)), conv(c_b, c_b, (size, 1)),
                                   conv(c_b, c_b, 3, dilation=size, relu=False)]))
        self.branches = nn.ModuleList(branches)
        self.fuse = conv(4 * c_b, c_out, 3, relu=False)
        self.shortcut = conv(c_in, c_out, 1, relu=False)
        self.cat = cat

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        y = self.cat([b(x, ids) for b in self.branches])  # (B, 4*c_b, H, W) per model
        return F.relu(self.fuse(y, ids) + self.shortcut(x, ids))


class Beside(nn.Module):
    """A shared block and a landmark-specific block on the same input; outputs concatenated."""

    def __init__(self, shared: nn.Module, adapter: nn.Module):
        super().__init__()
        self.shared, self.adapter = shared, adapter

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([self.shared(x), self.adapter(x, ids)], dim=1)  # (B, c_out + C_A, H, W)


# -- kinds -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlainBlocks:
    """CC2D's decoder blocks."""

    extra = 0  # channels every block adds beside its c_out (class attributes here, fields in kin)
    n_landmarks = 0  # landmarks with landmark-specific weights

    def conv(self, c_in: int, c_out: int, kernel=3, dilation: int = 1, relu: bool = True) -> nn.Module:
        return ConvBN(c_in, c_out, kernel, dilation, relu)

    def rfb(self, c_in: int, c_out: int) -> nn.Module:
        return RFB(c_in, c_out, self.conv, self.cat)

    def head(self, c_in: int, c_out: int) -> nn.Module:
        return nn.Conv2d(c_in, c_out, 1)

    def cat(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return channel_cat(tensors)

    def split(self, emb: torch.Tensor) -> torch.Tensor:
        """A head's output as the decoder returns it: (B, D, h, w)."""
        return emb


@dataclass(frozen=True)
class AdapterBlocks(PlainBlocks):
    """C-Adapter blocks: every conv and RFB gets a landmark-specific one of ``extra`` (C_A) outputs
    beside it, so each block emits ``c_out + C_A`` channels and the next block's input grows by C_A.
    The 1x1 heads stay shared. ``extra = 0``: exactly the plain blocks (same names and modules)."""

    n_landmarks: int  # K: one adapter per landmark
    extra: int  # C_A: output channels of every adapter

    def __post_init__(self):
        if self.extra < 0:
            raise ValueError(f"adapter_channels must be >= 0, got {self.extra}")
        if self.extra > 0 and self.n_landmarks < 1:
            raise ValueError(f"the C-Adapter needs n_landmarks >= 1, got {self.n_landmarks}")

    def conv(self, c_in: int, c_out: int, kernel=3, dilation: int = 1, relu: bool = True) -> nn.Module:
        shared = ConvBN(c_in, c_out, kernel, dilation, relu)
        if not self.extra:
            return shared
        return Beside(shared, LandmarkConvBN(self.n_landmarks, c_in, self.extra, kernel, dilation, relu))

    def rfb(self, c_in: int, c_out: int) -> nn.Module:
        shared = RFB(c_in, c_out, PlainBlocks().conv)
        if not self.extra:
            return shared
        return Beside(shared, RFB(c_in, self.extra, lambda *a, **kw: LandmarkConvBN(self.n_landmarks, *a, **kw)))


@dataclass(frozen=True)
class StackedBlocks(PlainBlocks):
    """K plain decoders as one: grouped convs (groups K), BN over K*C channels, per-model concatenation.

    Layout: model k's sample b lives in channels ``[k*C, (k+1)*C)`` of row b. Channel counts given
    to the factory are per model. The module tree (so the state dict) has the plain decoder's
    names; each tensor is the concatenation along dim 0 of the K models' tensors.
    """

    k: int = 1

    def conv(self, c_in: int, c_out: int, kernel=3, dilation: int = 1, relu: bool = True) -> nn.Module:
        return ConvBN(self.k * c_in, self.k * c_out, kernel, dilation, relu, groups=self.k)

    def head(self, c_in: int, c_out: int) -> nn.Module:
        return nn.Conv2d(self.k * c_in, self.k * c_out, 1, groups=self.k)

    def cat(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return group_cat(tensors, self.k)

    def split(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, K*D, h, w) -> (K, B, D, h, w): model k's embedding in slice k."""
        return emb.reshape(emb.shape[0], self.k, -1, *emb.shape[-2:]).transpose(0, 1)


def group_cat(tensors: list[torch.Tensor], k: int) -> torch.Tensor:
    """Per-model channel concatenation: [(B, K*C_i, H, W)] -> (B, K*sum(C_i), H, W)."""
    b, _, h, w = tensors[0].shape
    parts = [t.reshape(b, k, -1, h, w) for t in tensors]  # [(B, K, C_i, H, W)]
    return torch.cat(parts, dim=2).reshape(b, -1, h, w)

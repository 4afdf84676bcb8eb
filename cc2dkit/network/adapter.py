"""The C-Adapter ("Landmarks Are Alike Yet Distinct", He et al.): one model for K landmarks.

Architecture
------------
The shared CC2D decoder (``decoder.py``) is kept and every trainable conv of it gets a
landmark-specific companion with ``C_A`` output channels whose output is concatenated to the shared
conv's output, so every layer emits ``w + C_A`` channels and the next layer's input grows by
``C_A``:

- each ConvBNReLU of each DoubleConv stage: ``Conv-A_k`` (same kernel, BN, ReLU) beside it;
- each RFB of the 3 coarsest laterals: ``RFB-A_k`` beside it (with ``net.use_rfb=False`` the
  lateral is a 3x3 ConvBNReLU and gets a 3x3 ``Conv-A_k``); the raw finer taps have no conv and
  get no adapter;
- the 1x1 embedding heads stay shared; their input is ``w + C_A``.

The shared convs see the adapter channels of the previous layer (their input is the full
concatenation). Only adapter ``k`` runs for a sample of landmark ``k``, in training and inference.
With ``C_A = 0`` no adapter module exists and the decoder is exactly ``CC2DDecoder`` (same
parameter names, shapes and outputs).

Mixed batches without a per-sample loop
---------------------------------------
All K adapters of one layer are stored stacked: conv weight ``(K, C_A, C_in, kh, kw)``. A batch
with landmark ids ``ids (B,)`` gathers ``weight[ids]`` and applies it as one grouped convolution:
input ``(1, B*C_in, H, W)``, weight ``(B*C_A, C_in, kh, kw)``, ``groups=B``. The gather's backward
is a scatter-add, so an adapter whose landmark is absent from the batch gets an exactly zero
gradient.

Per-landmark batch norm
-----------------------
``LandmarkBatchNorm2d`` keeps per-landmark affine parameters ``(K, C)`` and per-landmark running
statistics ``(K, C)``. In training, the statistics of landmark k are those of the samples of the
batch with id k (over batch and space), i.e. exactly what an ``nn.BatchNorm2d`` would compute on
the sub-batch of landmark k; each sample is normalised by the statistics of its own landmark.
The per-landmark sums are computed without any Python loop, as a one-hot matrix product
``onehot(ids)^T @ per-sample sums`` (``(K, B) @ (B, C)``; deterministic on CUDA too, unlike
``index_add_``), in two passes (mean, then centred squares) for numerical stability. Running
statistics (momentum 0.1, unbiased variance, as ``nn.BatchNorm2d``) are updated only for the
landmarks present in the batch. In eval mode the running statistics of each sample's landmark are
used, so a sample's output does not depend on the rest of the batch. Note that the *shared* BN
layers still use whole-batch statistics in training, as in CC2D.

``RFB-A_k`` is the RFB topology of ``blocks.RFB`` (4 branches with 1x1 reduce, 1x(2k+1),
(2k+1)x1, dilated 3x3; a 3x3 fuse; a 1x1 shortcut; ReLU of the sum) built from the per-landmark
conv-BN primitive, with branch width ``max(C_A // 4, 1)`` and ``C_A`` outputs.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..backbone import FeatureCache, FrozenVGG
from ..config import BackboneConfig, Config, NetConfig
from .blocks import RFB, ConvBNReLU, DoubleConv
from .decoder import N_RFB
from .model import CC2D

SHARED_METHODS = ("cc2d", "multi", "sla", "atd", "wide")
ADAPTER_METHODS = ("adapter",)


# -- per-landmark primitives -----------------------------------------------------------------

class LandmarkConv2d(nn.Module):
    """K stacked convs (no bias); sample b is convolved with conv ``ids[b]`` (one grouped conv)."""

    def __init__(self, n_landmarks: int, c_in: int, c_out: int, kernel=3, dilation: int = 1):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.c_in, self.c_out = c_in, c_out
        self.kernel_size = (kh, kw)
        self.dilation = dilation
        self.padding = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        self.weight = nn.Parameter(torch.empty(n_landmarks, c_out, c_in, kh, kw))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Conv2d's default (kaiming_uniform with a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        fan_in = self.c_in * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W), ids (B,) long -> (B, C_out, H, W)."""
        b, c, h, w = x.shape
        weight = self.weight[ids].reshape(b * self.c_out, c, *self.kernel_size)  # (B*C_out, C_in, kh, kw)
        y = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=self.padding, dilation=self.dilation,
                     groups=b)  # (1, B*C_out, H, W)
        return y.reshape(b, self.c_out, h, w)

    def extra_repr(self) -> str:
        k = self.weight.shape[0]
        return (f"K={k}, {self.c_in}, {self.c_out}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}")


class LandmarkBatchNorm2d(nn.Module):
    """Batch norm with per-landmark affine parameters and running statistics (see module doc)."""

    def __init__(self, n_landmarks: int, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.n_landmarks, self.channels = n_landmarks, channels
        self.eps, self.momentum = eps, momentum
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
        """Per-landmark mean and biased variance over the samples of each landmark (no loop)."""
        n_pix = x.shape[2] * x.shape[3]
        onehot_t = F.one_hot(ids, self.n_landmarks).to(x.dtype).t()  # (K, B)
        count = onehot_t.sum(1) * n_pix  # (K,) values per channel of each landmark
        denom = count.clamp(min=1)[:, None]
        mean = onehot_t @ x.sum((2, 3)) / denom  # (K, C)
        centred = x - mean[ids][:, :, None, None]
        var = onehot_t @ centred.square().sum((2, 3)) / denom  # (K, C), biased
        with torch.no_grad():
            present = count > 0
            unbiased = var * (count / (count - 1).clamp(min=1))[:, None]
            m = self.momentum
            self.running_mean.copy_(torch.where(present[:, None], (1 - m) * self.running_mean + m * mean,
                                                self.running_mean))
            self.running_var.copy_(torch.where(present[:, None], (1 - m) * self.running_var + m * unbiased,
                                               self.running_var))
            self.num_batches_tracked.add_(present.long())
        return mean, var

    def extra_repr(self) -> str:
        return f"K={self.n_landmarks}, {self.channels}, eps={self.eps}, momentum={self.momentum}"


class LandmarkConvBNReLU(nn.Module):
    """Per-landmark conv, per-landmark BN, optional ReLU ('same' padding, as ``ConvBNReLU``)."""

    def __init__(self, n_landmarks: int, c_in: int, c_out: int, kernel=3, dilation: int = 1,
                 relu: bool = True):
        super().__init__()
        self.conv = LandmarkConv2d(n_landmarks, c_in, c_out, kernel, dilation)
        self.bn = LandmarkBatchNorm2d(n_landmarks, c_out)
        self.relu = relu

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x, ids), ids)
        return F.relu(y) if self.relu else y


class LandmarkSequential(nn.ModuleList):
    """A chain of per-landmark modules, each called as ``m(x, ids)``."""

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        for m in self:
            x = m(x, ids)
        return x


class LandmarkRFB(nn.Module):
    """RFB-A_k: the ``blocks.RFB`` topology built from per-landmark conv-BN layers."""

    def __init__(self, n_landmarks: int, c_in: int, c_out: int):
        super().__init__()
        k_ = n_landmarks
        c_b = max(c_out // 4, 1)
        branches = [LandmarkSequential([LandmarkConvBNReLU(k_, c_in, c_b, 1)])]
        for k in (1, 2, 3):
            size = 2 * k + 1
            branches.append(LandmarkSequential([
                LandmarkConvBNReLU(k_, c_in, c_b, 1),
                LandmarkConvBNReLU(k_, c_b, c_b, (1, size)),
                LandmarkConvBNReLU(k_, c_b, c_b, (size, 1)),
                LandmarkConvBNReLU(k_, c_b, c_b, 3, dilation=size, relu=False),
            ]))
        self.branches = nn.ModuleList(branches)
        self.fuse = LandmarkConvBNReLU(k_, 4 * c_b, c_out, 3, relu=False)
        self.shortcut = LandmarkConvBNReLU(k_, c_in, c_out, 1, relu=False)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        y = torch.cat([b(x, ids) for b in self.branches], dim=1)  # (B, 4*c_b, H, W)
        return F.relu(self.fuse(y, ids) + self.shortcut(x, ids))


# -- the adapter decoder ---------------------------------------------------------------------

class AdapterDecoder(nn.Module):
    """CC2D decoder with per-landmark C-Adapters; ``adapter_channels=0`` is ``CC2DDecoder``.

    Shared modules keep ``CC2DDecoder``'s names (``lateral``, ``stages``, ``heads``); the adapters
    live in ``lateral_adapters`` (one per convolutional lateral) and ``stage_adapters`` (stage i:
    a list of 2 ``LandmarkConvBNReLU`` beside the 2 convs of its DoubleConv; empty for stage 0),
    both empty when ``adapter_channels == 0``.
    """

    def __init__(self, cfg: NetConfig, tap_channels: tuple[int, ...], tap_strides: tuple[int, ...],
                 n_landmarks: int, adapter_channels: int):
        super().__init__()
        if len(cfg.decoder_widths) != len(tap_channels):
            raise ValueError(f"net.decoder_widths has {len(cfg.decoder_widths)} entries, "
                             f"the backbone has {len(tap_channels)} taps")
        if adapter_channels < 0:
            raise ValueError(f"adapter_channels must be >= 0, got {adapter_channels}")
        if adapter_channels > 0 and n_landmarks < 1:
            raise ValueError(f"the C-Adapter needs n_landmarks >= 1, got {n_landmarks}")
        a = adapter_channels
        self.adapter_channels = a
        self.n_landmarks = n_landmarks
        self.n_adapters = n_landmarks if a > 0 else 0
        chans = tuple(reversed(tap_channels))  # coarse -> fine
        self.strides = tuple(reversed(tap_strides))
        widths = tuple(w + cfg.extra_channels for w in cfg.decoder_widths)
        self.widths = widths
        lateral, lateral_out, lateral_adapters = [], [], []
        for i, c in enumerate(chans):
            if i < N_RFB:
                lateral.append(RFB(c, widths[i]) if cfg.use_rfb else ConvBNReLU(c, widths[i]))
                lateral_out.append(widths[i] + a)
                if a:
                    lateral_adapters.append(LandmarkRFB(n_landmarks, c, a) if cfg.use_rfb
                                            else LandmarkConvBNReLU(n_landmarks, c, a))
            else:
                lateral.append(nn.Identity())
                lateral_out.append(c)
        self.lateral = nn.ModuleList(lateral)
        self.lateral_adapters = nn.ModuleList(lateral_adapters)
        stages: list[nn.Module] = [nn.Identity()]
        stage_adapters = [nn.ModuleList()] if a else []
        for i in range(1, len(chans)):
            c_in = widths[i - 1] + a + lateral_out[i]
            stage = DoubleConv(c_in, widths[i])
            if a:
                stage[1] = ConvBNReLU(widths[i] + a, widths[i])  # its input holds the adapter channels
                stage_adapters.append(nn.ModuleList([LandmarkConvBNReLU(n_landmarks, c_in, a),
                                                     LandmarkConvBNReLU(n_landmarks, widths[i] + a, a)]))
            stages.append(stage)
        self.stages = nn.ModuleList(stages)
        self.stage_adapters = nn.ModuleList(stage_adapters)
        self.heads = nn.ModuleList(nn.Conv2d(w + a, cfg.embed_dim, 1) for w in widths)

    def forward(self, taps: list[torch.Tensor], landmark_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
        """taps fine->coarse [(B, C_s, H/s, W/s)], ids (B,) -> embeddings coarse->fine [(B, D, H/s, W/s)].

        ``landmark_ids`` is validated by ``check_landmark_ids``; it is ignored when the decoder has
        no adapters.
        """
        a = self.adapter_channels
        if a:
            landmark_ids = check_landmark_ids(landmark_ids, taps[0].shape[0], self.n_adapters, taps[0].device)
        taps = taps[::-1]
        x, out = None, []
        for i, (lat, stage, head) in enumerate(zip(self.lateral, self.stages, self.heads)):
            skip = lat(taps[i])
            if a and i < len(self.lateral_adapters):
                skip = torch.cat([skip, self.lateral_adapters[i](taps[i], landmark_ids)], dim=1)
            if x is None:
                x = skip  # stage 0 is the identity
            else:
                up = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                x = torch.cat([up, skip], dim=1)  # (B, w_{i-1} + C_A + c_lat, H/s, W/s)
                if a:
                    for conv, adapter in zip(stage, self.stage_adapters[i]):
                        x = torch.cat([conv(x), adapter(x, landmark_ids)], dim=1)  # (B, w_i + C_A, ...)
                else:
                    x = stage(x)
            out.append(head(x))
        return out


def check_landmark_ids(landmark_ids, batch: int, n_landmarks: int, device=None) -> torch.Tensor:
    """Validate and normalise landmark ids to a (B,) long tensor on ``device``.

    Accepts a (B,) integer tensor, a sequence of B ints, or one int (used for the whole batch).
    """
    if landmark_ids is None:
        raise ValueError(f"landmark_ids is required by the C-Adapter model ({n_landmarks} adapters), got None")
    ids = torch.as_tensor(landmark_ids, device=device)
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"landmark_ids must be integers, got dtype {ids.dtype}")
    if ids.ndim == 0:
        ids = ids.expand(batch)
    if ids.ndim != 1 or ids.shape[0] != batch:
        raise ValueError(f"landmark_ids must have shape ({batch},), got {tuple(ids.shape)}")
    bad = (ids < 0) | (ids >= n_landmarks)
    if bool(bad.any()):
        value = int(ids[bad][0])
        raise ValueError(f"landmark_ids must lie in [0, {n_landmarks}) (one adapter per landmark); "
                         f"got landmark id {value}")
    return ids.long()


class AdapterCC2D(CC2D):
    """CC2D with the C-Adapter decoder: K landmarks, ``adapter_channels`` (C_A) per adapter.

    Same API as ``CC2D``; ``forward`` needs ``landmark_ids`` (B,) in [0, K) when C_A > 0 (one
    int is broadcast to the batch). With C_A = 0 the decoder is the shared CC2D decoder and
    ``landmark_ids`` is optional and ignored.
    """

    def __init__(self, net: NetConfig, backbone: BackboneConfig, n_landmarks: int, adapter_channels: int):
        nn.Module.__init__(self)  # CC2D.__init__ would build a CC2DDecoder we do not use
        self.backbone = FrozenVGG(backbone)
        self.decoder = AdapterDecoder(net, self.backbone.channels, self.backbone.strides,
                                      n_landmarks, adapter_channels)
        self.cache = FeatureCache(self.backbone, backbone)

    @property
    def n_landmarks(self) -> int:
        return self.decoder.n_landmarks

    @property
    def adapter_channels(self) -> int:
        return self.decoder.adapter_channels

    @property
    def n_adapters(self) -> int:
        """K when the model has adapters (C_A > 0), else 0."""
        return self.decoder.n_adapters

    def forward(self, images: torch.Tensor, keys: list | None = None,
                landmark_ids: torch.Tensor | Sequence[int] | int | None = None) -> list[torch.Tensor]:
        """images (B, 1, G, G) in [0, 1], landmark_ids (B,) -> embeddings [(B, D, G/s, G/s)], s = 32 ... 2."""
        ids = None
        if self.n_adapters:
            ids = check_landmark_ids(landmark_ids, images.shape[0], self.n_adapters, images.device)
        taps = self.cache.features(keys, images) if keys is not None else self.backbone(images)
        return self.decoder(taps, ids)


def build_model(cfg: Config, n_landmarks: int) -> CC2D:
    """The model of ``cfg.method.name``: CC2D for the shared methods, AdapterCC2D for "adapter"."""
    name = cfg.method.name
    if name in SHARED_METHODS:
        return CC2D(cfg.net, cfg.backbone)
    if name in ADAPTER_METHODS:
        return AdapterCC2D(cfg.net, cfg.backbone, n_landmarks, cfg.method.adapter_channels)
    raise ValueError(f"unknown method {name!r}; choose one of {sorted(SHARED_METHODS + ADAPTER_METHODS)}")

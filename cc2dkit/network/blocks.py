"""Building blocks of the CC2D decoder: conv-BN-ReLU, the U-Net double conv, and RFB."""
from __future__ import annotations

import torch
import torch.nn as nn


class ConvBNReLU(nn.Sequential):
    """k x k (or kh x kw) conv, batch norm, ReLU; 'same' padding for any dilation."""

    def __init__(self, c_in: int, c_out: int, kernel=3, dilation: int = 1, relu: bool = True):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        pad = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        layers = [nn.Conv2d(c_in, c_out, (kh, kw), padding=pad, dilation=dilation, bias=False),
                  nn.BatchNorm2d(c_out)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU, the U-Net decoder stage."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(ConvBNReLU(c_in, c_out), ConvBNReLU(c_out, c_out))


class RFB(nn.Module):
    """Receptive Field Block: four branches of growing receptive field, fused, plus a shortcut.

    Branch k (k = 0..3): 1x1 reduce, then for k > 0 a 1x(2k+1) conv, a (2k+1)x1 conv and a 3x3 conv
    with dilation 2k+1. Branches are concatenated, fused by a 3x3 conv, added to a 1x1 shortcut.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        c_b = max(c_out // 4, 1)
        branches = [ConvBNReLU(c_in, c_b, 1)]
        for k in (1, 2, 3):
            size = 2 * k + 1
            branches.append(nn.Sequential(
                ConvBNReLU(c_in, c_b, 1),
                ConvBNReLU(c_b, c_b, (1, size)),
                ConvBNReLU(c_b, c_b, (size, 1)),
                ConvBNReLU(c_b, c_b, 3, dilation=size, relu=False),
            ))
        self.branches = nn.ModuleList(branches)
        self.fuse = ConvBNReLU(4 * c_b, c_out, 3, relu=False)
        self.shortcut = ConvBNReLU(c_in, c_out, 1, relu=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([b(x) for b in self.branches], dim=1)  # (B, 4*c_b, H, W)
        return self.act(self.fuse(y) + self.shortcut(x))

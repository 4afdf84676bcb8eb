"""The CC2D decoder: U-Net over the 5 frozen VGG taps, RFB on the 3 coarsest, 1x1 embedding heads.

Stages run coarse to fine (strides 32, 16, 8, 4, 2). Stage 0 turns the stride-32 tap into the
first decoder map; every later stage upsamples the previous map x2 (bilinear), concatenates the
lateral input of its stride (an RFB of the tap for the 3 coarsest, the raw tap otherwise) and
applies a double 3x3 conv. Each stage's output goes through a 1x1 head to the embedding.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import NetConfig
from .blocks import RFB, ConvBNReLU, DoubleConv

N_RFB = 3  # RFB blocks on the 3 coarsest taps


class CC2DDecoder(nn.Module):
    def __init__(self, cfg: NetConfig, tap_channels: tuple[int, ...], tap_strides: tuple[int, ...]):
        super().__init__()
        if len(cfg.decoder_widths) != len(tap_channels):
            raise ValueError(f"net.decoder_widths has {len(cfg.decoder_widths)} entries, "
                             f"the backbone has {len(tap_channels)} taps")
        # coarse -> fine order of the taps
        chans = tuple(reversed(tap_channels))
        self.strides = tuple(reversed(tap_strides))
        widths = tuple(w + cfg.extra_channels for w in cfg.decoder_widths)
        self.widths = widths
        lateral, lateral_out = [], []
        for i, c in enumerate(chans):
            if i < N_RFB:
                lateral.append(RFB(c, widths[i]) if cfg.use_rfb else ConvBNReLU(c, widths[i]))
                lateral_out.append(widths[i])
            else:
                lateral.append(nn.Identity())
                lateral_out.append(c)
        self.lateral = nn.ModuleList(lateral)
        stages = [nn.Identity()]  # stage 0: the stride-32 lateral output is the first map
        for i in range(1, len(chans)):
            stages.append(DoubleConv(widths[i - 1] + lateral_out[i], widths[i]))
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(nn.Conv2d(w, cfg.embed_dim, 1) for w in widths)

    def forward(self, taps: list[torch.Tensor]) -> list[torch.Tensor]:
        """taps fine->coarse [(B, C_s, H/s, W/s)] -> embeddings coarse->fine [(B, D, H/s, W/s)]."""
        taps = taps[::-1]
        x, out = None, []
        for i, (lat, stage, head) in enumerate(zip(self.lateral, self.stages, self.heads)):
            skip = lat(taps[i])
            if x is None:
                x = stage(skip)
            else:
                up = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                x = stage(torch.cat([up, skip], dim=1))  # (B, w_{i-1} + c_lat, H/s, W/s)
            out.append(head(x))
        return out

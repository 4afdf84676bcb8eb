"""The one CC2D decoder: U-Net over the 5 frozen VGG taps, RFB on the 3 coarsest, 1x1 embedding heads.

Stages run coarse to fine (strides 32, 16, 8, 4, 2). Stage 0 turns the stride-32 tap into the
first decoder map (its lateral block's output); every later stage upsamples the previous map x2
(bilinear), concatenates the lateral input of its stride (an RFB of the tap for the 3 coarsest,
the raw tap otherwise) and applies a double 3x3 conv. Each stage's map goes through a 1x1 head to
the embedding.

The convs, RFBs, heads and the concatenation come from a block kind (``blocks.py``): plain CC2D,
the C-Adapter (every block emits ``C_A`` landmark-specific channels beside its own), or K
stacked models. The forward loop is the same for all three.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..backbone import FeatureTap
from ..config import NetConfig
from .blocks import Chain, PlainBlocks
from .sampling import Crop

N_RFB = 3  # RFB blocks on the 3 coarsest taps


class Decoder(nn.Module):
    """taps fine->coarse [(B, C_s, H/s, W/s)] -> embeddings coarse->fine, one per tap.

    ``taps``: the backbone's :class:`~cc2dkit.backbone.FeatureTap` s (fine to coarse). ``blocks``: the
    block kind (:class:`~cc2dkit.network.blocks.PlainBlocks` and its kin).
    """

    def __init__(self, cfg: NetConfig, taps: Sequence[FeatureTap], blocks: PlainBlocks = PlainBlocks()):
        super().__init__()
        if len(cfg.decoder_widths) != len(taps):
            raise ValueError(f"net.decoder_widths has {len(cfg.decoder_widths)} entries, "
                             f"the backbone has {len(taps)} taps")
        self.cfg, self.blocks = cfg, blocks
        coarse_first = tuple(reversed(tuple(taps)))
        self.strides = tuple(t.stride for t in coarse_first)
        self.widths = tuple(w + cfg.extra_channels for w in cfg.decoder_widths)
        self.embed_dim = cfg.embed_dim
        a = blocks.extra  # every block's output carries a channels beside its own width
        lateral, lateral_out = [], []
        for i, tap in enumerate(coarse_first):
            if i < N_RFB:
                w = self.widths[i]
                lateral.append(blocks.rfb(tap.channels, w) if cfg.use_rfb else blocks.conv(tap.channels, w))
                lateral_out.append(w + a)
            else:
                lateral.append(nn.Identity())
                lateral_out.append(tap.channels)
        self.lateral = nn.ModuleList(lateral)
        stages: list[nn.Module] = [nn.Identity()]  # stage 0: the stride-32 lateral output is the first map
        for i in range(1, len(coarse_first)):
            w = self.widths[i]
            stages.append(Chain([blocks.conv(self.widths[i - 1] + a + lateral_out[i], w), blocks.conv(w + a, w)]))
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(blocks.head(w + a, cfg.embed_dim) for w in self.widths)

    @property
    def croppable(self) -> tuple[int, ...]:
        """Strides of the stages that may run on crops (coarse to fine): those under the coarsest whose
        lateral input is the raw tap (no RFB or conv reads the whole map)."""
        return tuple(s for i, (s, lat) in enumerate(zip(self.strides, self.lateral))
                     if i and isinstance(lat, nn.Identity))

    def forward(self, taps: list[torch.Tensor], ids: torch.Tensor | None = None,
                crops: dict[int, Crop] | Callable[[list[torch.Tensor]], dict[int, Crop]] | None = None
                ) -> list[torch.Tensor]:
        """taps fine->coarse -> embeddings coarse->fine [(B, D, h, w)] (stacked: [(K, B, D, h, w)]).

        ``ids``: the landmark of each sample ((B,) ints, or one int for all), required by
        landmark-specific blocks and ignored by the others. ``crops``: stride -> :class:`Crop` (the
        training step's ``crop_plan``): those stages (the finest, whose lateral input is the raw
        tap) are computed only on each sample's square, their embeddings (B, D, size, size); the
        cells of a square more than ``CROP_MARGIN`` inside it (or at the map's edge) are those of the
        full map, up to float rounding and batch-norm statistics (of the squares, in training).
        ``crops`` may also be a function of the embeddings so far (coarse to fine) returning that
        dict, called before each croppable stage until it returns one that is not empty: inference
        decides from the coarser maps where to look (``inference/local.py``).
        """
        if self.blocks.extra:
            ids = check_landmark_ids(ids, taps[0].shape[0], self.blocks.n_landmarks, taps[0].device)
        plan = crops if callable(crops) else None
        taps, crops = taps[::-1], {} if plan else crops or {}
        x, at, out = None, None, []  # at: where x starts on its full map when x is a crop
        for i, (lat, stage, head) in enumerate(zip(self.lateral, self.stages, self.heads)):
            if plan is not None and i and isinstance(lat, nn.Identity):  # a croppable stage, none cropped yet
                crops = plan(out)
                plan = None if crops else plan
            crop = crops.get(self.strides[i])
            if crop is not None and (x is None or not isinstance(lat, nn.Identity)):
                raise ValueError(f"the decoder stage at stride {self.strides[i]} cannot be cropped (the coarsest "
                                 "stage and those with an RFB or conv lateral block need their whole map)")
            if crop is None and at is not None:
                raise ValueError("a decoder stage under a cropped one must be cropped too")
            full = taps[i].shape[-2:]
            skip = taps[i] if crop is None else crop.of(taps[i])
            skip = skip if isinstance(lat, nn.Identity) else lat(skip, ids)
            if x is None:
                x = skip
            else:
                up = F.interpolate(x, size=full if at is None else None, scale_factor=None if at is None else 2,
                                   mode="bilinear", align_corners=False)  # x2: the full map, or at 2 * at
                up = up if crop is None else crop.of(up, None if at is None else 2 * at)
                x = stage(self.blocks.cat([up, skip]), ids)  # (B, w_{i-1} + a + c_lat, h, w) in, (B, w_i + a) out
            at = None if crop is None else crop.origins
            out.append(self.blocks.split(head(x)))
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
        raise ValueError(f"landmark_ids must lie in [0, {n_landmarks}) (one adapter per landmark); "
                         f"got landmark id {int(ids[bad][0])}")
    return ids.long()

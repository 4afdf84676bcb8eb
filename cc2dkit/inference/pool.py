"""A template pool: the template's vectors joined by the model's own vectors at its answers on
unlabelled images (``eval.template_pool``).

One template shows one patient's landmark. Where a query patient's anatomy looks unlike the
template's (an unusual incisor, a soft-tissue chin), its best match can lie on the wrong structure.
The unlabelled training images show many patients; at a run's end the predictor answers on them
(as configured: fine stage and shape check included), and the model's unit vectors at those answers
are summed per landmark and scale. A query is then matched against the template's mean vector
(over the template and its ``eval.template_copies`` copies) plus the pool's mean vector, made unit
length: the appearance the model finds at that landmark across many patients, beside the
template's own, with equal weight (whatever the pool's size: a thousand unlabelled images do not
drown the one annotated template, whose answers the pool's come from). No label but the
template's is read.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TemplatePool:
    """Per scale the (K, D) sum of the unit vectors at the answers on ``images`` unlabelled images."""
    sums: tuple[torch.Tensor, ...]  # S x (K, D), float32, on the CPU
    images: int

    def __post_init__(self):
        if self.images < 1 or not self.sums or len({s.shape[0] for s in self.sums}) != 1:
            raise ValueError(f"a template pool needs >= 1 image and one (K, D) sum per scale, got {self.images} "
                             f"images and sums of shapes {[tuple(s.shape) for s in self.sums]}")

    @property
    def landmarks(self) -> int:
        return int(self.sums[0].shape[0])

    def of(self, landmarks: list[int], device: torch.device) -> list[torch.Tensor]:
        """The mean vectors of these landmark positions: S x (len(landmarks), D) on ``device``."""
        return [(s[landmarks] / self.images).to(device) for s in self.sums]

    def state(self) -> dict:
        """What a model file keeps."""
        return {"sums": [s.clone() for s in self.sums], "images": self.images}

    @classmethod
    def from_state(cls, state: dict) -> "TemplatePool":
        return cls(tuple(torch.as_tensor(s, dtype=torch.float32) for s in state["sums"]), int(state["images"]))

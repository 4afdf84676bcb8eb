"""An exponential moving average of a network's trained weights (``train.ema``).

The raw weights train; the average answers: Infer-PL, tracking and the final model. Small batches
throw a model's answers around from step to step (the PLs of a method then follow the last step's
noise); the average follows where the weights have been over the last steps instead. No label
enters it. Batch-norm running statistics are averaged like the weights (integer buffers copied).

Early on the average would remember the random initial weights, so the decay used at update n is
``min(decay, (1 + n) / (10 + n))`` (the ramp of TensorFlow's ``ExponentialMovingAverage`` with
``num_updates``): the average spans about the last tenth of the steps so far until ``decay`` caps it.
"""
from __future__ import annotations

import torch


class WeightAverage:
    """The average of ``net.decoder``'s state (a :class:`~cc2dkit.network.CC2D` or a stack of them)."""

    def __init__(self, net: torch.nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"train.ema must lie in (0, 1), got {decay!r}")
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in net.decoder.state_dict().items()}

    def rate(self) -> float:
        """The decay of the next update."""
        n = self.updates + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        """Move the average towards ``net``'s current weights (after an optimizer step)."""
        d = self.rate()
        for k, v in self._state(net).items():
            s = self.shadow[k]
            if s.is_floating_point():
                s.lerp_(v.to(s.dtype), 1 - d)
            else:
                s.copy_(v)
        self.updates += 1

    @torch.no_grad()
    def swap(self, net: torch.nn.Module) -> None:
        """Exchange ``net``'s weights with the average, in place (a second call swaps them back)."""
        for k, v in self._state(net).items():
            held = v.clone()
            v.copy_(self.shadow[k])
            self.shadow[k].copy_(held)

    def _state(self, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        # read afresh each time: the step may re-lay out a parameter (channels-last) between calls
        state = net.decoder.state_dict()
        if state.keys() != self.shadow.keys():
            raise ValueError("the weight average was built for another network")
        return state

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        if state["shadow"].keys() != self.shadow.keys():
            raise ValueError("the saved weight average belongs to another network")
        self.updates = int(state["updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)

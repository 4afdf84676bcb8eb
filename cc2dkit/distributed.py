"""Several processes, one run: ``torch.distributed`` as ``torchrun`` starts it.

``torchrun --nproc_per_node=N -m cc2dkit train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`init_distributed` joins them into one process group
(nccl on CUDA, each rank its own GPU ``cuda:LOCAL_RANK``; gloo on CPU). Every rank runs the same
program on the same seeded data; the methods divide the work (``methods/loop.py``):

- one model (cc2d, multi, wide, adapter): data parallel. Each rank draws the same global batch of
  ``train.batch_size`` samples and trains its own ``batch_size / N`` of them; gradients are summed
  by DistributedDataParallel and batch-norm statistics are those of the global batch, so the result
  is that of one process with the same batch (to float rounding).
- K single-landmark models (sla, atd): shared out, model (or stack) i to rank ``i % N``; each draws
  its batches from its own generator, so every model is exactly the one of a one-process run.

Rank 0 alone writes the run folder and shows progress. In one process (no ``torchrun``) every
function here is a no-op or the identity.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the run: rank ``rank`` of ``world`` (``local_rank`` on its machine)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, rows: list[int]) -> list[int]:
        """This rank's share of ``rows`` (every N-th, from its rank)."""
        return list(rows)[self.rank::self.world]


SINGLE = Dist()


def env_dist() -> Dist:
    """The ranks ``torchrun`` announces in the environment (one process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(device: torch.device, timeout_s: float = 1800) -> tuple[Dist, torch.device]:
    """Join the process group ``torchrun`` set up (once per process); returns the ranks and this
    rank's device (``cuda:LOCAL_RANK`` on CUDA). One process: (:data:`SINGLE`, ``device``)."""
    d = env_dist()
    if not d.active:
        return SINGLE, device
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=d.rank, world_size=d.world,
                                timeout=timedelta(seconds=timeout_s))
    return d, device


def current() -> Dist:
    """The ranks of the initialised process group (one process when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return Dist(dist.get_rank(), dist.get_world_size(), env_dist().local_rank)


class _SumOverRanks(torch.autograd.Function):
    """y = the sum over ranks of x; every rank's loss depends on every x, so the gradient of x is the
    sum over ranks of the gradients of y."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over the ranks, differentiable (the gradient flows back to every rank)."""
    if not current().active:
        return t
    return _SumOverRanks.apply(t.contiguous())


def sum_over_ranks(values: np.ndarray, d: Dist) -> np.ndarray:
    """Element-wise sum of a float array over the ranks (not differentiable)."""
    if not d.active:
        return values
    t = torch.as_tensor(np.asarray(values, dtype=np.float64), device=_collective_device())
    dist.all_reduce(t)
    return t.cpu().numpy()


def _collective_device() -> torch.device:
    """Where a tensor made for a collective must live: nccl reduces CUDA tensors only."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_objects(obj, d: Dist) -> list:
    """``obj`` of every rank, in rank order, on every rank."""
    if not d.active:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_tensors(tensors: list[torch.Tensor], src: int, d: Dist) -> None:
    """Overwrite ``tensors`` on every rank with rank ``src``'s, in place."""
    if not d.active:
        return
    for t in tensors:
        flat = t.data if t.is_contiguous() else t.data.contiguous()  # channels-last weights: a dense copy
        dist.broadcast(flat, src)
        if flat is not t.data:
            t.data.copy_(flat)


def shutdown() -> None:
    """Leave the process group (at the end of a command run by torchrun)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

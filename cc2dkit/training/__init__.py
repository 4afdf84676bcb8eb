"""Self-supervised CC2D training: patch sources, the loss, one step, the epoch loop, checkpoints."""
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .loss import cc2d_loss, sample_at, scale_loss
from .patches import (Augment, CentredPatchSource, PatchBatch, RandomPatchSource, augment_patch, centred_origin,
                      make_patch, patch_size)
from .step import ssl_step
from .trainer import CHECKPOINT_NAME, Trainer, make_optimizer

__all__ = [
    "Augment", "CHECKPOINT_NAME", "CentredPatchSource", "PatchBatch", "RandomPatchSource", "Trainer",
    "augment_patch", "cc2d_loss", "centred_origin",
    "load_checkpoint", "make_optimizer", "make_patch", "model_from_checkpoint", "patch_size", "sample_at",
    "save_checkpoint", "scale_loss", "ssl_step",
]

"""Self-supervised CC2D training: patch sources, pseudo-labels, the loss, one step, a stage of steps."""
from .average import WeightAverage
from .loss import cc2d_loss, scale_loss
from .patches import (Augment, CentredPatchSource, CropPatchSource, PatchBatch, RandomPatchSource,
                      TemplatePatchSource, augment_patch, centred_origin, make_patch, patch_size)
from .parallel import DataParallel, PairEmbed, data_parallel
from .pseudo_labels import PLPatchSource, PLState
from .stage import epoch_lr, make_optimizer, set_lr, stage_steps, train_stage
from .step import autocast, memory_format, ssl_step

__all__ = [
    "Augment", "CentredPatchSource", "DataParallel", "PairEmbed", "data_parallel", "CropPatchSource", "PLPatchSource", "PLState", "PatchBatch", "RandomPatchSource",
    "TemplatePatchSource", "WeightAverage", "augment_patch", "autocast", "cc2d_loss", "centred_origin", "epoch_lr", "make_optimizer",
    "make_patch", "memory_format", "patch_size", "scale_loss", "set_lr", "ssl_step", "stage_steps", "train_stage",
]

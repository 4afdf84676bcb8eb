"""The trainable part of CC2D: decoder blocks of three kinds, the one decoder, the model, K models stacked.

- ``blocks.py``: conv-BN primitives (plain, grouped, landmark-specific), RFB, and the block kinds
  ``PlainBlocks`` (CC2D), ``AdapterBlocks`` (C-Adapter), ``StackedBlocks`` (K models at once).
- ``decoder.py``: the U-Net decoder with RFB and 1x1 heads, built from any block kind.
- ``model.py``: ``CC2D`` = frozen backbone + decoder + feature cache.
- ``stacked.py``: ``StackedModels``, K plain models trained and run as one network.
- ``sampling.py``: embeddings read at grid points (the loss and the matcher use it); the cells the
  loss reads, which the decoder's cropped training pass computes (``crop_plan``).
- ``accounting.py``: parameter counts and training memory; ``legacy.py``: format-1 weights.
"""
from .blocks import RFB, AdapterBlocks, ConvBN, PlainBlocks, StackedBlocks, sync_batch_norm
from .decoder import Decoder, check_landmark_ids
from .model import CC2D
from .stacked import StackedModels

__all__ = ["CC2D", "AdapterBlocks", "ConvBN", "Decoder", "PlainBlocks", "RFB", "StackedBlocks", "StackedModels",
           "check_landmark_ids", "sync_batch_norm"]

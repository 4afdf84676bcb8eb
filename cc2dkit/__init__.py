"""cc2dkit: one-shot medical landmark detection (CC2D and its single-landmark / adapter extensions).

Layout: ``config`` (the frozen configuration and presets), ``data`` (datasets, grid resizing,
coordinates), ``backbone`` (frozen VGG, weights, feature cache), ``network`` (decoder, RFB, heads),
``training`` (patch sources, loss, step, loop, checkpoints), ``inference`` (cascade matching),
``metrics`` (errors, tables, figures), ``pipeline`` (the main job) and ``__main__`` (command line).
"""
from .config import Config, preset

__all__ = ["Config", "preset"]
__version__ = "0.2.0"

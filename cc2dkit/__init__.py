"""cc2dkit: one-shot medical landmark detection (CC2D and its single-landmark / adapter extensions).

Layers, lowest first (ARCHITECTURE.md; imports only run downwards): ``config``; ``metrics``
(scores); ``data`` (datasets, grid, coordinates); ``backbone`` (frozen VGG, weights, cache);
``network`` (the decoder and its block kinds, the model); ``inference`` (cascade matching, the
Predictor interface); ``training`` (patch sources, loss, step); ``methods`` (the methods as
data, the one epoch loop and run path, the run folder); ``analysis`` and ``viz`` (measures and
figures over runs); ``widgets``; ``cli`` and ``notebook``.
"""
from .config import Config, preset

__all__ = ["Config", "preset"]
__version__ = "0.2.0"

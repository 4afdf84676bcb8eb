"""CC2D network: decoder blocks, the U-Net decoder with RFB and heads, and the full model."""
from .blocks import RFB, ConvBNReLU, DoubleConv
from .decoder import CC2DDecoder
from .model import CC2D

__all__ = ["CC2D", "CC2DDecoder", "ConvBNReLU", "DoubleConv", "RFB"]

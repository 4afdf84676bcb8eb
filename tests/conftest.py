"""Shared fixtures: tiny configs, and paths to the optional real data in ../shared."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cc2dkit.config import preset

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
ISBI_ROOT = Path(os.environ.get("CC2DKIT_ISBI_ROOT", SHARED / "data" / "isbi2015"))
VGG16_WEIGHTS = SHARED / "weights" / "vgg16_hed_bsds_from_imagenet.pth"

# one torch thread per pytest-xdist worker (scripts/test.sh runs two on two cores, not four threads)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


def phantom_grids(cfg):
    """(train, test) GridImages of the phantom splits of ``cfg`` (the methods' ``data`` argument)."""
    from cc2dkit.data import make_phantom_splits
    from cc2dkit.data.grid import GridImages

    train, test = make_phantom_splits(cfg.data, cfg.seed)
    return (GridImages(train, cfg.data.grid, "train", progress=False),
            GridImages(test, cfg.data.grid, "test", progress=False))


TINY_METHODS = {"data.grid": 64, "data.phantom_size": 128, "data.phantom_train": 6, "data.phantom_test": 2,
                "net.embed_dim": 16, "net.decoder_widths": (32, 32, 16, 16, 16), "train.batch_size": 4,
                "train.epochs": 1, "train.steps_per_epoch": 1, "method.atd_copies": 3, "eval.batch_size": 4}


def intensity_network():
    """A 'network' whose embedding at every pixel is its 5x5 intensity pattern, mean removed (D = 25),
    the same map at all 5 scales: the cosine peaks where the pattern is the template's."""
    import torch.nn.functional as F

    from cc2dkit.config import BackboneConfig, NetConfig
    from cc2dkit.network import CC2D

    model = CC2D(NetConfig(embed_dim=8, decoder_widths=(8, 8, 8, 8, 8)), BackboneConfig(arch="vgg16", weights="none"))

    def forward(images, keys=None, landmark_ids=None):
        patches = F.unfold(images, 5, padding=2).reshape(len(images), 25, *images.shape[-2:])
        return [patches - patches.mean(dim=1, keepdim=True)] * 5

    model.forward = forward
    return model


def tiny_cfg(**overrides):
    """The ``smoke`` preset shrunk for method tests (grid 64, 6+2 phantom images, 1 step), then ``overrides``."""
    return preset("smoke", **{**TINY_METHODS, **overrides})


@pytest.fixture
def one_thread():
    """For a test whose config sets num_threads=1 (exact equality of two runs): the next tests get
    the suite's thread count back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def smoke_cfg():
    return preset("smoke")


def needs_isbi():
    return pytest.mark.skipif(not (ISBI_ROOT / "RawImage").exists(), reason=f"ISBI 2015 data not found at {ISBI_ROOT}")


def needs_weights():
    return pytest.mark.skipif(not VGG16_WEIGHTS.exists(), reason=f"VGG16 weights not found at {VGG16_WEIGHTS}")

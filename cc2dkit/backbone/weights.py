"""Where the frozen VGG's weights come from: ImageNet download, a local file, or none."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn as nn
import torchvision
from torchvision.models import vgg as vgg_module

from ..config import WEIGHTS_ENV
from ..paths import resolve_path

_BUILDERS = {"vgg16": torchvision.models.vgg16, "vgg19": torchvision.models.vgg19}
VGG_LAYOUTS = {"vgg16": "D", "vgg19": "E"}  # torchvision's names of the layer lists in ``vgg.cfgs``
_IMAGENET = {
    "vgg16": torchvision.models.VGG16_Weights.IMAGENET1K_V1,
    "vgg19": torchvision.models.VGG19_Weights.IMAGENET1K_V1,
}


def build_vgg_features(arch: str, weights: str, sha256: str | None = None) -> nn.Sequential:
    """``vgg.features`` of ``arch`` with weights ``"imagenet"``, ``"none"``, ``"env"`` or a file path.

    ``"env"`` reads the path from ``$CC2DKIT_WEIGHTS``. A file holds a torchvision state dict,
    keys with or without the ``features.`` prefix; classifier keys are ignored. ``sha256``: the
    file's recorded checksum (a run's); a file with another one is refused, naming both.
    """
    if arch not in _BUILDERS:
        raise ValueError(f"unknown backbone arch {arch!r}; choose one of {sorted(_BUILDERS)}")
    if weights == "imagenet":
        return _imagenet(arch)
    features = _random_features(arch)
    if weights == "none":
        return features
    path = weights_file(weights)
    if sha256 is not None and file_sha256(path) != sha256:
        raise ValueError(f"backbone weights {path} are not the run's (sha256 {file_sha256(path)[:12]}... against "
                         f"{sha256[:12]}...): pass the file it was trained with (--set backbone.weights=PATH)")
    load_features_state(features, path)
    return features


def weights_file(weights: str) -> Path:
    """The file of ``backbone.weights`` (a path, or ``"env"``: ``$CC2DKIT_WEIGHTS``), which must exist."""
    if weights == "env":
        if not os.environ.get(WEIGHTS_ENV):
            raise ValueError(f"backbone.weights='env' but ${WEIGHTS_ENV} is not set")
        weights = os.environ[WEIGHTS_ENV]
    return resolve_path(weights, what="backbone weights file")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_weights(weights: str) -> tuple[str, str | None]:
    """What a run records of ``backbone.weights``: the absolute file and its sha256 (or the word and None)."""
    if weights in ("imagenet", "none"):
        return weights, None
    path = weights_file(weights)
    return str(path), file_sha256(path)


RANDOM_SEED = 0  # the "none" backbone is always the same random VGG (it is never saved in checkpoints)


def vgg_layers(arch: str) -> list:
    """torchvision's layer list of ``arch``: output channels of each 3x3 conv, ``"M"`` for a max-pool."""
    if arch not in VGG_LAYOUTS:
        raise ValueError(f"unknown backbone arch {arch!r}; choose one of {sorted(VGG_LAYOUTS)}")
    return list(vgg_module.cfgs[VGG_LAYOUTS[arch]])


def _random_features(arch: str) -> nn.Sequential:
    """``vgg.features`` alone, initialised as torchvision does (skips the costly classifier).

    The initialisation draws from its own generator seeded with :data:`RANDOM_SEED`, so a model
    rebuilt from a checkpoint gets the same frozen random backbone it was trained with, whatever
    the global RNG state.
    """
    features = vgg_module.make_layers(vgg_layers(arch), batch_norm=False)
    gen = torch.Generator().manual_seed(RANDOM_SEED)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
            nn.init.zeros_(m.bias)
    return features


def load_features_state(features: nn.Sequential, path: Path) -> None:
    """Load a torchvision VGG state dict (``features.N.*`` or ``N.*`` keys) into ``features``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or not a state dict
        raise ValueError(f"cannot read backbone weights from {path}: {e}") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    stripped = {}
    for k, v in state.items():
        if k.startswith("classifier."):
            continue
        stripped[k[len("features."):] if k.startswith("features.") else k] = v
    expected = set(features.state_dict())
    missing, unexpected = expected - set(stripped), set(stripped) - expected
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match this VGG: missing keys {sorted(missing)[:6]}, "
            f"unexpected keys {sorted(unexpected)[:6]} (is it the right architecture?)"
        )
    for k, v in stripped.items():
        want = features.state_dict()[k].shape
        if tuple(v.shape) != tuple(want):
            raise ValueError(f"{path}: key {k!r} has shape {tuple(v.shape)}, this VGG needs {tuple(want)}")
    features.load_state_dict({k: v.float() for k, v in stripped.items()})


def _imagenet(arch: str) -> nn.Sequential:
    try:
        return _BUILDERS[arch](weights=_IMAGENET[arch]).features
    except Exception as e:  # offline: URLError / OSError / HTTP errors
        raise RuntimeError(
            f"could not download the ImageNet {arch} weights ({type(e).__name__}: {e}). Offline, "
            f"pass a local torchvision state dict instead: backbone.weights=/path/to/{arch}.pth "
            f"(CLI: --set backbone.weights=PATH) or set ${WEIGHTS_ENV} and use backbone.weights=env."
        ) from e

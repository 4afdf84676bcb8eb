"""One frozen configuration that flows top-down through the kit.

Every tunable number lives here; deep functions receive the sub-config they need and define no
defaults of their own. Presets:

- ``smoke``: procedural phantom, tiny grid and network, random backbone; seconds on a CPU.
- ``cpu``:   real ISBI 2015 data at a reduced grid (192), offline VGG16 weights; about 30 minutes
             of training on 2 CPU cores.
- ``paper``: the paper's protocol: 384x384, VGG19 ImageNet, 300 epochs; meant for a CUDA GPU.

Paths are never baked in: the ISBI root comes from ``data.root`` or the ``CC2DKIT_ISBI_ROOT``
environment variable, a weights file from ``backbone.weights`` or ``CC2DKIT_WEIGHTS``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

ISBI_ROOT_ENV = "CC2DKIT_ISBI_ROOT"
WEIGHTS_ENV = "CC2DKIT_WEIGHTS"


@dataclass(frozen=True)
class DataConfig:
    source: str = "phantom"  # "phantom" | "isbi" | "folder"
    root: str | None = None  # dataset folder; for "isbi" falls back to $CC2DKIT_ISBI_ROOT
    grid: int = 384  # model grid (square, images stretched as in CC2D); multiple of 64
    train_split: str = "train"  # split the model trains on (unlabelled except the template)
    test_split: str = "test1"  # split predictions are evaluated on
    template: str = "125"  # id of the one labelled image
    test_limit: int | None = None  # evaluate on the first N test images only (None: all)
    csv: str | None = None  # "folder" source: landmark CSV (default <root>/landmarks.csv)
    # phantom (procedural, embedded default data)
    phantom_train: int = 24
    phantom_test: int = 8
    phantom_landmarks: int = 6
    phantom_size: int = 256  # side of the generated images (pixels)
    phantom_spacing_mm: float = 0.1


@dataclass(frozen=True)
class BackboneConfig:
    arch: str = "vgg19"  # "vgg19" (paper) | "vgg16"
    weights: str = "imagenet"  # "imagenet" | "none" | path to a state dict ($CC2DKIT_WEIGHTS)
    cache_features: bool = True  # cache frozen features of un-augmented images
    cache_fp16: bool = True  # store cached features as float16
    cache_max_mb: int = 4096  # memory bound of the cache; images beyond it are recomputed


@dataclass(frozen=True)
class NetConfig:
    embed_dim: int = 64  # length of the embedding at every scale
    decoder_widths: tuple[int, ...] = (256, 256, 128, 64, 64)  # strides 32, 16, 8, 4, 2
    use_rfb: bool = True  # RFB blocks on the 3 coarsest taps
    extra_channels: int = 0  # added to every decoder conv's width (ablation: 16, 16*19)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 300
    steps_per_epoch: int | None = None  # None: one pass over the training images
    batch_size: int = 8
    lr: float = 1e-4
    lr_schedule: str = "constant"  # "constant" | "cosine": per epoch from lr down to lr * lr_final_frac
    lr_final_frac: float = 0.01
    weight_decay: float = 0.0
    temperature: float = 10.0  # cosine similarity scale inside the softmax
    window: int = 11  # half-size (cells) of the softmax window at strides finer than 32
    patch_frac: float = 0.5  # patch side as a fraction of the grid
    point_central: float = 0.8  # the point is drawn from the patch's central fraction
    rotation_deg: float = 20.0
    brightness: float = 0.3
    contrast: float = 0.3
    seed: int = 0
    save_every: int = 1  # checkpoint every N epochs (and always at the end)
    amp: str = "auto"  # mixed precision of the training step: "auto" (bf16 on CUDA, off on CPU) | "bf16" | "off"
    channels_last: bool | None = None  # NHWC convolutions in the training step (None: on CUDA only)


@dataclass(frozen=True)
class MethodConfig:
    """The paper's methods on top of CC2D (``methods/registry.py``); ``name="cc2d"`` is plain self-supervision."""

    name: str = "cc2d"  # "cc2d" | "multi" | "sla" | "atd" | "adapter" | "wide"
    landmarks: tuple[int | str, ...] | None = None  # landmarks trained, by index or name (None: all)
    pl_offset: float = 0.25  # random PL offset inside the patch, fraction of the patch half-size
    atd_copies: int = 500  # augmented templates (ATD)
    atd_shift: float = 0.02  # +- fraction of the image size
    atd_scale: float = 0.01  # scale 1 +- this
    atd_rotation_deg: float = 5.0
    adapter_channels: int = 16  # C_A of the C-Adapter (0: one shared model)
    batched: bool | None = None  # SLA/ATD: train the K decoders as one stacked module (None: on CUDA only)
    stack_size: int | None = None  # batched SLA/ATD: at most this many decoders per stack (None: all K)
    pl_images: int | None = None  # PL methods: the first N non-template training images carry PLs (None: all)


@dataclass(frozen=True)
class RefineConfig:
    """The high-resolution fine stage (``inference/refine.py``): a second, plain CC2D trained by the
    same self-supervision on windows of the images at ``scale`` x the grid, matched around every
    coarse answer."""

    enabled: bool = False
    scale: int = 4  # fine grid = scale x data.grid
    crop: int = 128  # side of the windows, fine-grid pixels (a multiple of 32)
    steps_per_epoch: int = 10  # fine-network steps per epoch (batch train.batch_size)


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 4  # query images per inference batch
    subpixel: bool = False  # sub-pixel peak (a parabola through the log-product), else the argmax pixel
    radii_mm: tuple[float, ...] = (2.0, 2.5, 3.0, 4.0)  # SDR radii
    figures: int = 4  # prediction figures written by ``evaluate``
    track_every: int = 1  # methods: per-landmark test error every N epochs (0: final only)
    track_images: int | None = None  # methods: test images tracked per epoch (None: all)


@dataclass(frozen=True)
class Config:
    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    net: NetConfig = field(default_factory=NetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    seed: int = 0
    num_threads: int | None = None  # torch CPU threads (None: torch's default)

    # -- helpers ---------------------------------------------------------------------------
    def replace(self, **overrides: Any) -> "Config":
        """Copy with dotted overrides, e.g. ``cfg.replace(**{"train.epochs": 2, "seed": 1})``."""
        return apply_overrides(self, overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Config":
        sub = {
            "data": DataConfig,
            "backbone": BackboneConfig,
            "net": NetConfig,
            "train": TrainConfig,
            "eval": EvalConfig,
            "method": MethodConfig,
            "refine": RefineConfig,
        }
        kwargs: dict[str, Any] = {}
        for k, v in d.items():
            if k in sub:
                kwargs[k] = _build(sub[k], v)
            else:
                kwargs[k] = v
        return _build(Config, kwargs)


_SECTIONS = ("data", "backbone", "net", "train", "eval", "method", "refine")


def _build(cls: type, values: dict[str, Any]):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {sorted(unknown)}; known: {sorted(names)}")
    fixed = {}
    for k, v in values.items():
        if isinstance(v, list):  # JSON turns tuples into lists
            v = tuple(v)
        fixed[k] = v
    return cls(**fixed)


def _coerce(value: Any, current: Any, annotation: str = "") -> Any:
    """Parse a command-line string into the type of the field's current value.

    ``annotation`` (the field's type as written) decides for fields that are None now: a
    ``tuple[int, ...] | None`` field takes ``1,3`` or ``[1,3]`` (or a single ``5``).
    """
    if not isinstance(value, str):
        return value
    if value.lower() in ("none", "null") and not isinstance(current, str):
        return None
    if current is None and annotation.startswith("tuple"):
        items = [x for x in value.strip("[]() ").split(",") if x.strip()]
        if "str" in annotation:  # e.g. landmarks by index or by name
            return tuple(int(x) if x.strip().lstrip("-").isdigit() else x.strip() for x in items)
        cast = float if "float" in annotation else int
        try:
            return tuple(cast(x) for x in items)
        except ValueError:
            raise ValueError(f"not a list of {cast.__name__}s: {value!r}") from None
    if isinstance(current, bool) or (current is None and annotation.startswith("bool")):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, tuple):
        cast = float if any(isinstance(x, float) for x in current) else int
        return tuple(cast(x) for x in value.split(","))
    if current is None:
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
    return value


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Return ``cfg`` with dotted-key overrides applied (strings are parsed to the field's type)."""
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) == 1:
            if not hasattr(cfg, key) or key in _SECTIONS:
                raise ValueError(f"unknown config key {key!r}")
            top[key] = _coerce(value, getattr(cfg, key))
        elif len(parts) == 2:
            section, name = parts
            sub = getattr(cfg, section, None)
            if sub is None or not dataclasses.is_dataclass(sub) or not hasattr(sub, name):
                raise ValueError(f"unknown config key {key!r}")
            annotation = str({f.name: f.type for f in dataclasses.fields(sub)}[name])
            sections.setdefault(section, {})[name] = _coerce(value, getattr(sub, name), annotation)
        else:
            raise ValueError(f"config keys have at most one dot: {key!r}")
    new_sections = {s: dataclasses.replace(getattr(cfg, s), **v) for s, v in sections.items()}
    return dataclasses.replace(cfg, **top, **new_sections)


def parse_sets(items: list[str]) -> dict[str, str]:
    """``["train.epochs=5", ...]`` (the command line's ``--set``) -> ``{"train.epochs": "5", ...}``."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


# -- presets -------------------------------------------------------------------------------

def _smoke() -> Config:
    return Config(
        name="smoke",
        data=DataConfig(source="phantom", grid=128, template="train_000", phantom_train=12,
                        phantom_test=6, phantom_landmarks=5, phantom_size=256),
        backbone=BackboneConfig(arch="vgg16", weights="none", cache_max_mb=512),
        net=NetConfig(embed_dim=32, decoder_widths=(64, 64, 32, 32, 16)),
        train=TrainConfig(epochs=3, batch_size=4, lr=1e-3, steps_per_epoch=3),
        device="cpu",
    )


def _cpu() -> Config:
    return Config(
        name="cpu",
        data=DataConfig(source="isbi", grid=192, template="125"),
        backbone=BackboneConfig(arch="vgg16", weights="env",
                                cache_max_mb=4096),
        net=NetConfig(embed_dim=64, decoder_widths=(256, 128, 128, 64, 64)),
        train=TrainConfig(epochs=30, batch_size=8, lr=3e-4, steps_per_epoch=30),
        device="cpu",
    )


def _paper() -> Config:
    return Config(
        name="paper",
        data=DataConfig(source="isbi", grid=384, template="125"),
        backbone=BackboneConfig(arch="vgg19", weights="imagenet", cache_max_mb=8192),
        net=NetConfig(embed_dim=64, decoder_widths=(256, 256, 128, 64, 64)),
        train=TrainConfig(epochs=300, batch_size=8, lr=1e-4),
        device="auto",
    )


PRESETS = {"smoke": _smoke, "cpu": _cpu, "paper": _paper}


def preset(name: str, **overrides: Any) -> Config:
    """A named preset, optionally with dotted overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    return apply_overrides(cfg, overrides) if overrides else cfg

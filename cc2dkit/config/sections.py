"""One frozen configuration that flows top-down through the kit.

Every tunable number lives here; deep functions receive the sub-config they need and define no
defaults of their own. Every field is checked (type and range) when the config is built, and an
error names the key (``rules.py``). Presets (``presets.py``):

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

from .rules import parse, rule, validate

ISBI_ROOT_ENV = "CC2DKIT_ISBI_ROOT"
WEIGHTS_ENV = "CC2DKIT_WEIGHTS"
METHOD_NAMES = ("cc2d", "multi", "wide", "sla", "atd", "adapter")  # rows of methods/registry.py
AMP_MODES = ("auto", "bf16", "off")  # train.amp, eval.amp (resolved on a device by runtime.use_bf16)
# The config's limit on the phantom's landmarks (data/phantom.py itself refuses only what it cannot
# place 1/8 of the image apart); benchmarks that want the phantom's most ask for this.
PHANTOM_MAX_LANDMARKS = 12


class _Checked:
    """Every section validates its fields when built (``rules.py``)."""

    _section = ""

    def __post_init__(self):
        validate(self, self._section)


@dataclass(frozen=True)
class DataConfig(_Checked):
    _section = "data"
    source: str = rule("phantom", choices=("phantom", "isbi", "folder"))
    root: str | None = rule(None, nonempty=True)  # dataset folder; for "isbi" falls back to $CC2DKIT_ISBI_ROOT
    grid: int = rule(384, lo=64, multiple=32)  # model grid (square, images stretched as in CC2D); VGG's stride 32
    train_split: str = rule("train", nonempty=True)  # split the model trains on (unlabelled except the template)
    test_split: str = rule("test1", nonempty=True)  # split predictions are evaluated on
    template: str = rule("125", nonempty=True)  # id of the one labelled image
    test_limit: int | None = rule(None, lo=1)  # evaluate on the first N test images only (None: all)
    csv: str | None = rule(None, nonempty=True)  # "folder" source: landmark CSV (default <root>/landmarks.csv)
    spacing_mm: float | None = rule(None, lo=0, lo_open=True)  # "folder": mm per pixel (None: a CSV column, else px)
    # phantom (procedural, embedded default data)
    phantom_train: int = rule(24, lo=2)
    phantom_test: int = rule(8, lo=1)
    phantom_landmarks: int = rule(6, lo=1, hi=PHANTOM_MAX_LANDMARKS)
    phantom_size: int = rule(256, lo=64)  # side of the generated images (pixels)
    phantom_spacing_mm: float = rule(0.1, lo=0, lo_open=True)


@dataclass(frozen=True)
class BackboneConfig(_Checked):
    _section = "backbone"
    arch: str = rule("vgg19", choices=("vgg16", "vgg19"))  # "vgg19" (paper) | "vgg16"
    weights: str = rule("imagenet", nonempty=True)  # "imagenet" | "none" | "env" ($CC2DKIT_WEIGHTS) | a state-dict path
    weights_sha256: str | None = rule(None, nonempty=True)  # a run records its weights file's checksum here
    cache_features: bool = True  # cache frozen features of un-augmented images
    cache_fp16: bool = True  # store cached features as float16
    cache_max_mb: int = rule(4096, lo=0)  # memory bound of the cache; images beyond it are recomputed


@dataclass(frozen=True)
class NetConfig(_Checked):
    _section = "net"
    embed_dim: int = rule(64, lo=1)  # length of the embedding at every scale
    decoder_widths: tuple[int, ...] = rule((256, 256, 128, 64, 64), lo=1, length=5)  # strides 32, 16, 8, 4, 2
    use_rfb: bool = True  # RFB blocks on the 3 coarsest taps
    extra_channels: int = rule(0, lo=0)  # added to every decoder conv's width (ablation: 16, 16*19)


@dataclass(frozen=True)
class TrainConfig(_Checked):
    _section = "train"
    epochs: int = rule(300, lo=1)
    steps_per_epoch: int | None = rule(None, lo=1)  # None: one pass over the training images
    batch_size: int = rule(8, lo=1)
    lr: float = rule(1e-4, lo=0, lo_open=True)
    lr_schedule: str = rule("constant", choices=("constant", "cosine"))  # cosine: per epoch, lr -> lr * lr_final_frac
    lr_final_frac: float = rule(0.01, lo=0, hi=1)
    weight_decay: float = rule(0.0, lo=0)
    temperature: float = rule(10.0, lo=0, lo_open=True)  # cosine similarity scale inside the softmax
    window: int = rule(11, lo=1)  # half-size (cells) of the softmax window at strides finer than 32
    patch_frac: float = rule(0.5, lo=0, hi=1, lo_open=True)  # patch side as a fraction of the grid
    point_central: float = rule(0.8, lo=0, hi=1, lo_open=True)  # the point is drawn from the patch's central fraction
    rotation_deg: float = rule(20.0, lo=0, hi=180)
    scale: float = rule(0.0, lo=0, hi=0.5, hi_open=True)  # patch zoom 1 +- this (0: none; subjects differ in size)
    brightness: float = rule(0.3, lo=0, hi=1, hi_open=True)
    contrast: float = rule(0.3, lo=0, hi=1, hi_open=True)
    save_every: int = rule(1, lo=1)  # checkpoint every N epochs (and always at the end)
    amp: str = rule("auto", choices=AMP_MODES)  # step, Infer-PL, tracking in bf16; "auto": where native
    channels_last: bool | None = None  # NHWC convolutions in the training step (None: on CUDA only)
    # the decoder's stages at strides <= this computed only on the cells the loss reads (+ a margin): the
    # image's window around each point, the patch's bilinear read (network/sampling.py, crop_plan); cheaper
    # steps, but batch-norm statistics are then the crops' (None: whole maps at every stride)
    crop_below: int | None = rule(None, choices=(2, 4))
    # an exponential moving average of each network's weights, this decay per step (training/average.py):
    # the raw weights train, the average answers (Infer-PL, tracking, the final model); None: off
    ema: float | None = rule(None, lo=0, hi=1, lo_open=True, hi_open=True)


@dataclass(frozen=True)
class MethodConfig(_Checked):
    """The paper's methods on top of CC2D (``methods/registry.py``); ``name="cc2d"`` is plain self-supervision."""

    _section = "method"
    name: str = rule("cc2d", choices=METHOD_NAMES)
    landmarks: tuple[int | str, ...] | None = rule(None, nonempty=True, distinct=True)  # by index or name (None: all)
    pl_offset: float = rule(0.25, lo=0, hi=1)  # random PL offset inside the patch, fraction of the patch half-size
    atd_copies: int = rule(500, lo=1)  # augmented templates (ATD)
    atd_shift: float = rule(0.02, lo=0, hi=0.5)  # +- fraction of the image size
    atd_scale: float = rule(0.01, lo=0, hi=0.5)  # scale 1 +- this
    atd_rotation_deg: float = rule(5.0, lo=0, hi=180)
    adapter_channels: int = rule(16, lo=0)  # C_A of the C-Adapter (0: one shared model)
    batched: bool | None = None  # SLA/ATD: the K decoders trained as one stack (None: on CUDA, unless train.crop_below)
    stack_size: int | None = rule(None, lo=1)  # batched SLA/ATD: at most this many decoders per stack (None: all K)
    pl_images: int | None = rule(None, lo=1)  # PL methods: the first N non-template training images carry PLs
    # PL methods: after the first Infer-PL, a PL moves at most this many grid px per epoch towards its new
    # answer (a label-free guard against models that jump; None: it takes the new answer)
    pl_max_move: float | None = rule(None, lo=0, lo_open=True)
    # with pl_max_move: a PL whose new answer lies within pl_max_move of its previous answer takes it whole (two
    # answers in a row agree: the model has settled there, not jumped; False: the cap holds every epoch)
    pl_agree: bool = False
    # PL methods with augmented templates (atd, adapter): this share of the PL stage's samples takes its patch
    # from an augmented template at the same landmark, the image and point staying the PL's: a pair across
    # two patients (every other loss compares a patch with its own image); 0: none
    pl_cross: float = rule(0.0, lo=0, hi=1)
    # PL methods: from the second Infer-PL on, the answers are read through the shape check of eval.shape_reach
    # (its prior and regression too) fitted to the previous Infer-PL's answers read without one, as a run's
    # final answers are through the one fitted to them (label-free); False: the plain grid argmax
    pl_shape: bool = False
    # PL methods with augmented templates (atd, adapter): every PL sample also walks from a random augmented
    # template's landmark to its image and back (a cycle-consistency loss across two patients, no PL point in
    # it), weighted by this beside the CC2D loss; 0: off. pl_walk_stride: the finest stride it reads
    pl_walk: float = rule(0.0, lo=0)
    pl_walk_stride: int = rule(8, choices=(2, 4, 8, 16, 32))


@dataclass(frozen=True)
class RefineConfig(_Checked):
    """The high-resolution fine stage (``inference/refine.py``): a second, plain CC2D trained by the
    same self-supervision on windows of the images at ``scale`` x the grid, matched around every
    coarse answer."""

    _section = "refine"
    enabled: bool = False
    scale: int = rule(4, lo=1, hi=16)  # fine grid = scale x data.grid
    crop: int = rule(128, lo=64, multiple=32)  # side of the windows, fine-grid pixels
    steps_per_epoch: int = rule(10, lo=1)  # fine-network steps per epoch (batch train.batch_size)
    # the fine network's patches rotated +- this (degrees); None: train.rotation_deg, as the coarse
    # network's (the coarse stage may want a wider pose range than the fine one matches at)
    rotation_deg: float | None = rule(None, lo=0, hi=180)
    coarse_gate: bool = True  # inference: the coarse product gates the fine maps (ungated: 3.32 vs 2.15 mm, RESULTS)
    # inference: the fine answer within max_move grid px of the coarse one (None: anywhere in the window)
    max_move: float | None = rule(None, lo=0, lo_open=True)
    whole_image: bool = True  # inference: the whole fine image embedded once, not K windows (same MRE, half the time)
    # inference: the fine stage's template vectors averaged over the eval.template_copies augmented
    # copies too (at the fine grid), as the coarse stage's are; False: the template alone
    template_copies: bool = False
    # inference: keep the coarse answer where the fine answer's back-match (its fine vector matched over
    # the template's window) lands over back_check grid px from the template's landmark and the coarse
    # answer's lands nearer (inference/refine.py); None: off
    back_check: float | None = rule(None, lo=0, lo_open=True)


@dataclass(frozen=True)
class EvalConfig(_Checked):
    _section = "eval"
    batch_size: int = rule(4, lo=1)  # query images per inference batch
    subpixel: bool = False  # sub-pixel peak (a parabola through the log-product), else the argmax pixel
    template_copies: int = rule(0, lo=0)  # template vectors averaged over this many augmented copies too
    # template poses: also match the template scaled / rotated (about its centre) by these; per query
    # image the pose whose landmarks match best answers (cascade.best_pose); (1.0,) x (0.0,): off
    pose_scales: tuple[float, ...] = rule((1.0,), lo=0.5, hi=2.0, nonempty=True, distinct=True)
    pose_rotations_deg: tuple[float, ...] = rule((0.0,), lo=-45.0, hi=45.0, nonempty=True, distinct=True)
    # the answer: the centroid of the cascade product above this fraction of its peak (cascade.top_centroid;
    # the middle of a ridge, not wherever its argmax falls), instead of the argmax; None: the argmax
    centroid: float | None = rule(None, lo=0, hi=1, lo_open=True, hi_open=True)
    # the networks' forward passes at inference in bfloat16 (embeddings back in float32 before the
    # cosines): "auto" = where the device computes bf16 natively (runtime.native_bf16), "bf16", "off"
    amp: str = rule("off", choices=AMP_MODES)
    # the shape check (inference/shape.py): an answer further than this x its spread (read across the
    # slide of its answers) from where its nearest landmarks put it is re-picked near that place; the
    # shape model is fitted to the predictor's own answers on the unlabelled training images (at a
    # run's end); None: off
    shape_reach: float | None = rule(None, lo=0, lo_open=True)
    # the shape check's prior: every answer it leaves alone is weighed too, by a Gaussian of this x its
    # spread around where its nearest landmarks put it (decides along a ridge of near-equal matches);
    # needs shape_reach; None: only the far answers are re-picked
    shape_prior: float | None = rule(None, lo=0, lo_open=True)
    # a C-Adapter's (SLA's, C-ATD's) two finest decoder stages run per landmark only around where the
    # coarse scales put the answer, checked per image and landmark to give the whole maps' answers,
    # else redone on the whole map (inference/local.py); False: the whole maps always (what the
    # widgets show anyway); None: on the CPU, where it was measured (not on CUDA: not measured there)
    local_finest: bool | None = None
    # the prior's spreads at most the median spread over the landmarks: a landmark whose answers stray
    # more than the typical one (they slide along a ridge) is held as firmly as the typical one; needs shape_prior
    shape_prior_cap: bool = False
    # the shape check's expected places from a regression on how the nearest landmarks sit (fitted to
    # the same unlabelled answers, inference/shape.py; a neighbour far from its rigid expectation is no
    # input), not the mean shape moved rigidly onto them; needs shape_reach
    shape_regression: bool = False
    # the template pool (inference/pool.py): the template's mean vector joined, with equal weight, by
    # the mean of the model's own vectors at its answers on up to this many unlabelled training images
    # (the first ones; fitted at a run's end, after the shape check); 0: the template's views alone
    template_pool: int = rule(0, lo=0)
    radii_mm: tuple[float, ...] = rule((2.0, 2.5, 3.0, 4.0), lo=0, lo_open=True, nonempty=True, distinct=True)
    figures: int = rule(4, lo=0)  # prediction figures written by ``evaluate``
    track_every: int = rule(1, lo=0)  # methods: per-landmark test error every N epochs (0: final only)
    track_images: int | None = rule(None, lo=1)  # methods: test images tracked per epoch (None: all)

    @property
    def poses(self) -> tuple[tuple[float, float], ...]:
        """(scale, degrees) of every template pose: ``pose_scales`` x ``pose_rotations_deg``."""
        return tuple((s, a) for s in self.pose_scales for a in self.pose_rotations_deg)


SECTIONS = {"data": DataConfig, "backbone": BackboneConfig, "net": NetConfig, "train": TrainConfig,
            "eval": EvalConfig, "method": MethodConfig, "refine": RefineConfig}
REMOVED = {"train": ("seed",)}  # fields of older config.json files, read and dropped (the top-level seed is used)
# Fields added since config.json files were first written, with the value that reproduces such a
# file's run when its section lacks them (a new default would change how an old run answers):
ADDED = {"refine": {"coarse_gate": False, "whole_image": False, "template_copies": False}, "eval": {"amp": "off"}}

# What may differ between a run's config and the config it is resumed / used for prediction with:
# (backbone.weights: the file may move, its sha256 may not)
RESUME_MAY_CHANGE = ("name", "train.epochs", "train.save_every", "train.amp", "eval.*", "refine.coarse_gate",
                     "refine.max_move", "refine.whole_image", "refine.back_check", "num_threads", "device",
                     "backbone.weights", "backbone.cache_*")  # train.amp: only as spelled, the precision may not (run.check_precision)
PREDICTION_KEEPS = ("data.grid", "backbone.arch", "backbone.weights_sha256", "net.*", "method.name",
                    "method.landmarks", "method.adapter_channels", "refine.enabled", "refine.scale", "refine.crop")


@dataclass(frozen=True)
class Config(_Checked):
    name: str = rule("custom", nonempty=True)
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    net: NetConfig = field(default_factory=NetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    device: str = rule("auto", nonempty=True)  # "auto" | "cpu" | "cuda" | "cuda:N"
    seed: int = rule(0, lo=0)
    num_threads: int | None = rule(None, lo=1)  # torch CPU threads (None: torch's default)

    def __post_init__(self):
        super().__post_init__()
        if not (self.device in ("auto", "cpu", "cuda") or (self.device.startswith("cuda:")
                                                            and self.device[5:].isdigit())):
            raise ValueError(f"config device={self.device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if int(self.data.grid * self.train.patch_frac) < 32:
            raise ValueError(f"config train.patch_frac={self.train.patch_frac} on data.grid={self.data.grid} "
                             "gives a patch under 32 pixels (the VGG stride): raise one of them")
        if self.method.pl_agree and self.method.pl_max_move is None:
            raise ValueError("config method.pl_agree=True needs method.pl_max_move (the cap it waives)")
        for name in ("pl_cross", "pl_walk"):  # both draw from the augmented templates in the PL stage
            if getattr(self.method, name) and self.method.name not in ("atd", "adapter"):
                raise ValueError(f"config method.{name}={getattr(self.method, name)} needs a method with augmented "
                                 f"templates and pseudo-labels (atd, adapter), got method.name={self.method.name!r}")
        crop, walk = self.train.crop_below, self.method.pl_walk_stride
        if crop is not None and self.method.pl_walk and walk <= crop:
            raise ValueError(f"config method.pl_walk_stride={walk} reads whole maps at a stride that "
                             f"train.crop_below={crop} crops: raise the walk's stride or lower the crop")
        if crop is not None and self.method.batched:
            raise ValueError(f"config train.crop_below={crop} needs one model per step: method.batched=true "
                             "stacks the models (set method.batched=false or train.crop_below=null)")
        if self.method.pl_shape and self.method.name == "cc2d":
            raise ValueError("config method.pl_shape=True needs a method with pseudo-labels, got method.name='cc2d'")
        if self.method.pl_shape and self.eval.shape_reach is None:
            raise ValueError("config method.pl_shape=True needs eval.shape_reach (the shape check Infer-PL reads through)")
        if self.eval.shape_prior is not None and self.eval.shape_reach is None:
            raise ValueError("config eval.shape_prior needs eval.shape_reach (the shape check it joins)")
        if self.eval.shape_prior_cap and self.eval.shape_prior is None:
            raise ValueError("config eval.shape_prior_cap=True needs eval.shape_prior (the prior it caps)")
        if self.eval.shape_regression and self.eval.shape_reach is None:
            raise ValueError("config eval.shape_regression=True needs eval.shape_reach (the shape check it fits)")
        if self.refine.enabled and self.refine.crop > self.refine.scale * self.data.grid:
            raise ValueError(f"config refine.crop={self.refine.crop}: larger than the fine grid "
                             f"(refine.scale x data.grid = {self.refine.scale * self.data.grid})")

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
        kwargs = {k: _build(SECTIONS[k], v, k) if k in SECTIONS else v for k, v in d.items()}
        return _build(Config, kwargs, "")

    def flat(self) -> dict[str, Any]:
        """``{"data.grid": 192, ..., "seed": 0}``: every field under its dotted key."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                out.update({f"{f.name}.{g.name}": getattr(value, g.name) for g in dataclasses.fields(value)})
            else:
                out[f.name] = value
        return out


def _build(cls: type, values: dict[str, Any], section: str):
    if not isinstance(values, dict):
        raise ValueError(f"config section {section!r} must be a mapping, got {values!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    values = {**ADDED.get(section, {}), **{k: v for k, v in values.items() if k not in REMOVED.get(section, ())}}
    unknown = set(values) - names
    if unknown:
        where = f"{section}." if section else ""
        raise ValueError(f"unknown config key(s) {sorted(where + u for u in unknown)}; "
                         f"known: {sorted(where + n for n in names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """``cfg`` with dotted-key overrides applied; strings (the command line's) are parsed to the field's type."""
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    types = {k: str(f.type) for k, f in _fields(cfg).items()}
    for key, value in overrides.items():
        if key not in types:
            raise ValueError(f"unknown config key {key!r}; e.g. {', '.join(sorted(types)[:6])}, ... "
                             "(python -m cc2dkit show-config lists them all)")
        if isinstance(value, str) and types[key].replace(" ", "") not in ("str",):
            value = parse(value, types[key], key)
        section, _, name = key.rpartition(".")
        (sections.setdefault(section, {}) if section else top)[name] = value
    new_sections = {s: dataclasses.replace(getattr(cfg, s), **v) for s, v in sections.items()}
    return dataclasses.replace(cfg, **top, **new_sections)


def _fields(cfg: Config) -> dict[str, dataclasses.Field]:
    out = {}
    for f in dataclasses.fields(cfg):
        if f.name in SECTIONS:
            out.update({f"{f.name}.{g.name}": g for g in dataclasses.fields(SECTIONS[f.name])})
        else:
            out[f.name] = f
    return out


def parse_sets(items: list[str]) -> dict[str, str]:
    """``["train.epochs=5", ...]`` (the command line's ``--set``) -> ``{"train.epochs": "5", ...}``."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def config_diff(a: Config, b: Config, allowed: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ between ``a`` and ``b``, those matching ``allowed`` left out
    (a key, or a prefix ending in ``*`` such as ``"eval.*"``)."""
    fa, fb = a.flat(), b.flat()
    return [k for k in fa if fa[k] != fb[k] and not matches(k, allowed)]


def matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(key == p or (p.endswith("*") and key.startswith(p[:-1])) for p in patterns)

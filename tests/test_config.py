import dataclasses

import pytest

from cc2dkit.config import PHANTOM_MAX_LANDMARKS, PRESETS, Config, RefineConfig, apply_overrides, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_frozen_and_round_trip_through_json(name):
    cfg = preset(name)
    assert cfg.name == name
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert cfg.data.grid % 32 == 0


def test_preset_protocols():
    paper, cpu = preset("paper"), preset("cpu")
    assert (paper.data.grid, paper.train.epochs, paper.backbone.arch, paper.backbone.weights) == (384, 300, "vgg19", "imagenet")
    assert paper.train.lr == 1e-4 and paper.train.batch_size == 8 and paper.net.embed_dim == 64
    assert cpu.data.source == "isbi" and cpu.data.grid == 192 and cpu.backbone.arch == "vgg16"
    # the best one-model recipe measured on 2 CPU cores (RESULTS.md, E1)
    assert (cpu.method.name, cpu.method.adapter_channels, cpu.method.pl_images) == ("adapter", 4, 60)
    assert (cpu.train.epochs, cpu.train.steps_per_epoch, cpu.train.lr_schedule) == (16, 20, "cosine")
    assert cpu.eval.subpixel and cpu.eval.template_copies == 8 and cpu.eval.centroid == 0.5
    assert cpu.eval.shape_reach == 3.0 and preset("paper").eval.shape_reach is None
    assert cpu.eval.shape_prior == 2.0 and preset("paper").eval.shape_prior is None
    assert not cpu.eval.shape_prior_cap and not paper.eval.shape_prior_cap  # an option (its rule failed)
    assert paper.eval.centroid is None  # the paper's argmax
    assert preset("smoke").data.source == "phantom"
    assert paper.eval.poses == ((1.0, 0.0),)  # template poses off unless asked for
    posed = preset("smoke", **{"eval.pose_scales": "0.9,1", "eval.pose_rotations_deg": "[-8, 8]"})
    assert posed.eval.poses == ((0.9, -8.0), (0.9, 8.0), (1.0, -8.0), (1.0, 8.0))


def test_dotted_overrides_parse_to_field_types():
    cfg = apply_overrides(preset("smoke"), {"train.epochs": "7", "train.lr": "0.01", "backbone.cache_features": "false",
                                            "net.decoder_widths": "8,8,8,8,8", "data.test_limit": "3",
                                            "eval.radii_mm": "1,2", "seed": "4"})
    assert cfg.train.epochs == 7 and cfg.train.lr == 0.01 and cfg.backbone.cache_features is False
    assert cfg.net.decoder_widths == (8, 8, 8, 8, 8) and cfg.data.test_limit == 3 and cfg.seed == 4
    assert cfg.eval.radii_mm == (1.0, 2.0)
    assert cfg.replace(**{"train.epochs": 2}).train.epochs == 2


@pytest.mark.parametrize("key", ["train.nope", "nope", "a.b.c", "data"])
def test_unknown_keys_are_errors(key):
    with pytest.raises(ValueError, match="unknown|at most one dot"):
        apply_overrides(preset("smoke"), {key: "1"})


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="unknown preset"):
        preset("fast")
    with pytest.raises(ValueError, match="bogus"):
        Config.from_dict({"train": {"bogus": 1}})


# every field with values it must refuse (table-driven: a new field must be added here)
BAD = {
    "name": [""], "device": ["gpu", "cuda:x"], "seed": [-1, 1.5, "x"], "num_threads": [0, "two"],
    "data.source": ["dicom"], "data.root": [""], "data.grid": [0, -64, 100, 32, "x"], "data.train_split": [""],
    "data.test_split": [""], "data.template": [""], "data.test_limit": [0], "data.csv": [""], "data.spacing_mm": [0.0, -1],
    "data.phantom_train": [1], "data.phantom_test": [0],
    "data.phantom_landmarks": [0, PHANTOM_MAX_LANDMARKS + 1], "data.phantom_size": [32],
    "data.phantom_spacing_mm": [0.0],
    "backbone.arch": ["resnet"], "backbone.weights": [""], "backbone.weights_sha256": [""],
    "backbone.cache_features": ["maybe", 2],
    "backbone.cache_fp16": [1], "backbone.cache_max_mb": [-1],
    "net.embed_dim": [0], "net.decoder_widths": [(8, 8), (8, 8, 8, 8, 0), "8,x"], "net.use_rfb": ["x"],
    "net.extra_channels": [-1],
    "train.epochs": [0, -2, "abc"], "train.steps_per_epoch": [0], "train.batch_size": [0], "train.lr": [0.0, -1],
    "train.lr_schedule": ["step"], "train.lr_final_frac": [1.5], "train.weight_decay": [-0.1],
    "train.temperature": [0], "train.window": [0], "train.patch_frac": [2, 0], "train.point_central": [0],
    "train.rotation_deg": [-1, 200], "train.scale": [-0.1, 0.5], "train.brightness": [1.0], "train.contrast": [-0.1], "train.save_every": [0],
    "train.amp": ["fp8"], "train.channels_last": ["x"], "train.crop_below": [8, 3, 0, 2.5], "train.ema": [0, 1, 1.5, -0.1, "x"],
    "method.name": ["nope"], "method.landmarks": [(), (1, 1)], "method.pl_offset": [1.5], "method.atd_copies": [0],
    "method.atd_shift": [0.6], "method.atd_scale": [-0.1], "method.atd_rotation_deg": [-5],
    "method.adapter_channels": [-1], "method.batched": ["x"], "method.stack_size": [0], "method.pl_images": [0],
    "method.pl_max_move": [0, -1.0, "x"], "method.pl_agree": ["x", True],  # True without pl_max_move
    "method.pl_cross": [-0.1, 1.5, 0.5],  # 0.5 with the smoke preset's method (cc2d: no templates, no PLs)
    "method.pl_shape": ["x", True],  # True: the smoke preset has no shape check
    "method.pl_walk": [-1.0, "x", 1.0],  # 1.0 with the smoke preset's method (cc2d: no templates, no PLs)
    "method.pl_walk_stride": [3, 64, "x"],
    "refine.enabled": ["x"], "refine.scale": [0], "refine.crop": [100, 32], "refine.steps_per_epoch": [0], "refine.coarse_gate": ["x"],
    "refine.max_move": [0, -1.0, "x"], "refine.whole_image": ["x"], "refine.template_copies": ["x", 8],
    "refine.back_check": [0, -1.0, "x"], "refine.rotation_deg": [-1.0, 181.0, "x"],
    "eval.batch_size": [0], "eval.subpixel": ["x"], "eval.amp": ["fp16", ""], "eval.template_copies": [-1], "eval.radii_mm": [(), (2.0, 2.0), (-1.0,)], "eval.figures": [-1],
    "eval.track_every": [-1], "eval.track_images": [0],
    "eval.centroid": [0.0, 1.0, -0.5, "x"], "eval.shape_reach": [0.0, -1.0, "x"],
    "eval.shape_prior": [0.0, -1.0, "x", 2.0],  # 2.0: the smoke preset has no shape check to join
    "eval.shape_prior_cap": ["x", True],  # True: no prior to cap
    "eval.local_finest": ["x", 2],
    "eval.shape_regression": ["x", True],  # True: no shape check to fit
    "eval.template_pool": [-1, 1.5, "x"],
    "eval.pose_scales": [(), (0.0,), (1.0, 1.0), (3.0,), ("x",)], "eval.pose_rotations_deg": [(), (90.0,), (0.0, 0.0)],
}


def test_the_table_covers_every_field():
    assert set(BAD) == set(preset("smoke").flat())


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in BAD.items() for v in vs])
def test_every_field_is_checked_when_built_naming_the_key(key, value):
    with pytest.raises(ValueError) as err:
        preset("smoke").replace(**{key: value})
    message = str(err.value)
    assert key in message and "\n" not in message, message


def test_cross_field_checks():
    with pytest.raises(ValueError, match="train.patch_frac=0.2 on data.grid=128"):
        preset("smoke").replace(**{"train.patch_frac": 0.2})
    with pytest.raises(ValueError, match="refine.crop=512"):
        preset("smoke").replace(**{"refine.enabled": True, "refine.scale": 2, "refine.crop": 512})
    with pytest.raises(ValueError, match="pl_agree=True needs method.pl_max_move"):
        preset("smoke").replace(**{"method.pl_agree": True})
    assert preset("smoke").replace(**{"method.pl_agree": True, "method.pl_max_move": 2}).method.pl_agree
    with pytest.raises(ValueError, match="eval.shape_prior needs eval.shape_reach"):
        preset("smoke").replace(**{"eval.shape_prior": 2.0})
    assert preset("cpu").replace(**{"eval.shape_prior": 2.0}).eval.shape_prior == 2.0
    with pytest.raises(ValueError, match="eval.shape_prior_cap=True needs eval.shape_prior"):
        preset("cpu").replace(**{"eval.shape_prior": None, "eval.shape_prior_cap": True})
    assert preset("cpu").replace(**{"eval.shape_prior_cap": True}).eval.shape_prior_cap
    with pytest.raises(ValueError, match="eval.shape_regression=True needs eval.shape_reach"):
        preset("smoke").replace(**{"eval.shape_regression": True})


def test_old_config_files_still_read():
    """cc2dkit 0.1 wrote train.seed (never used; the top-level seed is) and had no refine section."""
    d = preset("cpu").to_dict()
    d["train"]["seed"] = 0
    del d["refine"]
    assert Config.from_dict(d) == dataclasses.replace(preset("cpu"), refine=RefineConfig())  # the defaults
    # a refine section written before coarse_gate / whole_image existed answers as it did then
    d["refine"] = {"enabled": True, "scale": 2, "crop": 128, "steps_per_epoch": 50}
    old = Config.from_dict(d).refine
    assert (old.enabled, old.coarse_gate, old.whole_image, old.max_move, old.template_copies) == (
        True, False, False, None, False)
    del d["eval"]["amp"]  # an eval section from before eval.amp: float32, as that run answered
    assert Config.from_dict(d).eval.amp == "off" and preset("cpu").eval.amp == "auto"
    assert Config.from_dict(preset("cpu").to_dict()) == preset("cpu")  # written now: read back as written


def test_config_diff_names_the_changed_keys():
    from cc2dkit.config import config_diff

    a = preset("smoke")
    b = a.replace(**{"data.grid": 64, "train.epochs": 9, "eval.batch_size": 2})
    assert config_diff(a, b) == ["data.grid", "train.epochs", "eval.batch_size"]
    assert config_diff(a, b, ("train.epochs", "eval.*")) == ["data.grid"]

import dataclasses

import pytest

from cc2dkit.config import PRESETS, Config, apply_overrides, preset


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
    assert preset("smoke").data.source == "phantom"


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

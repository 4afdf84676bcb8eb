"""Run folders of cc2dkit 0.1 (format 1): their decoder weights load into the current decoder."""
import json
from pathlib import Path

import pytest
import torch

from cc2dkit.backbone import FEATURE_INFO
from cc2dkit.config import NetConfig
from cc2dkit.network import AdapterBlocks, Decoder, PlainBlocks
from cc2dkit.network.legacy import upgrade_decoder_state

# names and shapes of format-1 decoders, written by cc2dkit 0.1 itself (tiny configs, vgg16 taps)
FORMAT1 = json.loads((Path(__file__).parent / "data" / "format1_decoders.json").read_text())["decoders"]


def _decoder(d: dict, widths=None) -> Decoder:
    net = NetConfig(embed_dim=d["embed_dim"], decoder_widths=tuple(widths or d["decoder_widths"]), use_rfb=d["use_rfb"])
    a = d["adapter_channels"]
    return Decoder(net, FEATURE_INFO["vgg16"], AdapterBlocks(n_landmarks=d["n_landmarks"], extra=a) if a else PlainBlocks())


def _old_state(d: dict) -> dict:
    g = torch.Generator().manual_seed(0)
    return {k: torch.rand(shape, generator=g) for k, shape in d["tensors"]}


@pytest.mark.parametrize("name", sorted(FORMAT1))
def test_format1_weights_fill_the_current_decoder_one_to_one(name):
    d = FORMAT1[name]
    dec, old = _decoder(d), _old_state(d)
    new = upgrade_decoder_state(old, dec, "run/checkpoint.pt")
    assert set(new) == set(dec.state_dict())
    assert sorted(id(t) for t in new.values()) == sorted(id(t) for t in old.values())  # each old tensor once
    dec.load_state_dict(new)


def test_format1_names_keep_their_meaning():
    plain, adapter = FORMAT1["plain"], FORMAT1["adapter"]
    old = _old_state(plain)
    new = upgrade_decoder_state(old, _decoder(plain), "x")
    assert new["lateral.0.branches.1.2.conv.weight"] is old["lateral.0.branches.1.2.0.weight"]
    assert new["stages.1.0.bn.running_var"] is old["stages.1.0.1.running_var"]
    assert new["heads.4.bias"] is old["heads.4.bias"]
    old = _old_state(adapter)
    new = upgrade_decoder_state(old, _decoder(adapter), "x")
    assert new["lateral.2.adapter.fuse.bn.weight"] is old["lateral_adapters.2.fuse.bn.weight"]
    assert new["lateral.0.shared.shortcut.bn.bias"] is old["lateral.0.shortcut.1.bias"]
    assert new["stages.3.1.adapter.conv.weight"] is old["stage_adapters.3.1.conv.weight"]
    assert new["stages.4.1.shared.conv.weight"] is old["stages.4.1.0.weight"]


def test_format1_weights_of_another_config_are_refused_naming_the_file():
    d = FORMAT1["plain"]
    with pytest.raises(ValueError, match="run/checkpoint.pt.*another config"):
        upgrade_decoder_state(_old_state(d), _decoder(d, widths=(8, 8, 8, 8, 8)), "run/checkpoint.pt")
    with pytest.raises(ValueError, match="unknown tensor 'foo.weight'"):
        upgrade_decoder_state({"foo.weight": torch.zeros(1)}, _decoder(d), "run/checkpoint.pt")

import pytest
import torch

from cc2dkit.config import BackboneConfig, NetConfig
from cc2dkit.backbone import FEATURE_INFO
from cc2dkit.network import CC2D, RFB, Decoder, PlainBlocks

BB = BackboneConfig(arch="vgg16", weights="none")


@pytest.mark.parametrize("grid", [64, 96, 128, 192])
def test_embedding_shapes_at_several_grids(grid):
    net = NetConfig(embed_dim=16, decoder_widths=(32, 32, 16, 16, 8))
    model = CC2D(net, BB)
    out = model(torch.rand(2, 1, grid, grid))
    assert model.strides == (32, 16, 8, 4, 2)
    assert [tuple(o.shape) for o in out] == [(2, 16, grid // s, grid // s) for s in (32, 16, 8, 4, 2)]


def test_rfb_keeps_spatial_size_and_sets_width():
    rfb = RFB(64, 40, PlainBlocks().conv)
    y = rfb(torch.rand(1, 64, 12, 10))
    assert y.shape == (1, 40, 12, 10)
    assert len(rfb.branches) == 4
    dilations = sorted({m.dilation[0] for m in rfb.modules() if isinstance(m, torch.nn.Conv2d)})
    assert dilations == [1, 3, 5, 7]


def test_extra_channels_widen_every_decoder_conv():
    taps = FEATURE_INFO["vgg16"]
    base = Decoder(NetConfig(embed_dim=8, decoder_widths=(16, 16, 16, 16, 16)), taps)
    wide = Decoder(NetConfig(embed_dim=8, decoder_widths=(16, 16, 16, 16, 16), extra_channels=16), taps)
    assert wide.widths == tuple(w + 16 for w in base.widths)
    for stage in list(wide.stages)[1:]:
        assert all(m.out_channels == 32 for m in stage.modules() if isinstance(m, torch.nn.Conv2d))


def test_without_rfb():
    model = CC2D(NetConfig(embed_dim=8, decoder_widths=(16, 16, 16, 16, 16), use_rfb=False), BB)
    assert not any(isinstance(m, RFB) for m in model.modules())
    assert model(torch.rand(1, 1, 64, 64))[0].shape == (1, 8, 2, 2)


def test_wrong_number_of_widths_is_an_error():
    with pytest.raises(ValueError, match="decoder_widths"):
        CC2D(NetConfig(decoder_widths=(16, 16)), BB)


def test_feature_taps_are_read_off_the_layer_list():
    """The 5 taps (after each max-pool) of torchvision's VGG16/19 module lists."""
    for arch, pools in (("vgg16", (4, 9, 16, 23, 30)), ("vgg19", (4, 9, 18, 27, 36))):
        taps = FEATURE_INFO[arch]
        assert tuple(t.module_index for t in taps) == pools
        assert tuple(t.stride for t in taps) == (2, 4, 8, 16, 32)
        assert tuple(t.channels for t in taps) == (64, 128, 256, 512, 512)

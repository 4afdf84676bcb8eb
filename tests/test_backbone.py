import pytest
import torch
import torchvision

from cc2dkit.backbone import FEATURE_INFO, FeatureCache, FrozenVGG
from cc2dkit.config import BackboneConfig, NetConfig
from cc2dkit.network import CC2D

from .conftest import VGG16_WEIGHTS, needs_weights


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_taps_are_the_max_pools(arch):
    vgg = getattr(torchvision.models, arch)(weights=None).features
    for tap in FEATURE_INFO[arch]:
        assert isinstance(vgg[tap.module_index], torch.nn.MaxPool2d)
    bb = FrozenVGG(BackboneConfig(arch=arch, weights="none"))
    feats = bb(torch.rand(1, 1, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(c, 64 // s, 96 // s) for c, s in zip(bb.channels, bb.strides)]


def test_frozen_backbone_gets_no_gradient_and_stays_in_eval():
    model = CC2D(NetConfig(embed_dim=8, decoder_widths=(16, 16, 16, 16, 16)), BackboneConfig(arch="vgg16", weights="none"))
    model.train()
    assert not model.backbone.training
    assert all(not p.requires_grad for p in model.backbone.parameters())
    out = model(torch.rand(2, 1, 64, 64))
    sum(o.sum() for o in out).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.trainable_parameters())
    trainable = {id(p) for p in model.trainable_parameters()}
    assert not trainable & {id(p) for p in model.backbone.parameters()}
    assert not any(k.startswith("backbone") for k in model.trainable_state_dict())


def test_bad_input_shape():
    bb = FrozenVGG(BackboneConfig(arch="vgg16", weights="none"))
    with pytest.raises(ValueError, match="grayscale"):
        bb(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="multiple of 32"):
        bb(torch.rand(1, 1, 70, 64))


def test_weights_file_with_and_without_prefix(tmp_path):
    ref = torchvision.models.vgg16(weights=None)
    full = {k: v for k, v in ref.state_dict().items()}
    (tmp_path / "a.pth").write_bytes(b"")
    torch.save(full, tmp_path / "a.pth")
    torch.save({k[len("features."):]: v for k, v in full.items() if k.startswith("features.")}, tmp_path / "b.pth")
    for name in ("a.pth", "b.pth"):
        bb = FrozenVGG(BackboneConfig(arch="vgg16", weights=str(tmp_path / name)))
        assert torch.equal(bb.features[0].weight, ref.features[0].weight)


def test_bad_weights_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        FrozenVGG(BackboneConfig(arch="vgg16", weights=str(tmp_path / "nope.pth")))
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), tmp_path / "v16.pth")
    with pytest.raises(ValueError, match="v16.pth"):
        FrozenVGG(BackboneConfig(arch="vgg19", weights=str(tmp_path / "v16.pth")))
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        FrozenVGG(BackboneConfig(arch="vgg16", weights=str(tmp_path / "junk.pth")))


def test_imagenet_offline_error_says_how_to_pass_a_file(monkeypatch):
    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.VGG19_Weights.IMAGENET1K_V1, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="backbone.weights="):
        FrozenVGG(BackboneConfig(arch="vgg19", weights="imagenet"))


@needs_weights()
def test_shared_vgg16_weights_load():
    bb = FrozenVGG(BackboneConfig(arch="vgg16", weights=str(VGG16_WEIGHTS)))
    assert bb.features[0].weight.dtype == torch.float32
    assert bb.features[0].weight.abs().sum() > 0


def test_feature_cache_matches_backbone_and_respects_bound():
    cfg = BackboneConfig(arch="vgg16", weights="none", cache_fp16=False, cache_max_mb=1)
    bb = FrozenVGG(cfg)
    cache = FeatureCache(bb, cfg)
    x = torch.rand(3, 1, 64, 64)
    first = cache.features(["a", "b", "c"], x)
    again = cache.features(["a", "b", "c"], x)
    ref = bb(x)
    for f, g, r in zip(first, again, ref):
        assert torch.allclose(f, r, atol=1e-5) and torch.allclose(g, r, atol=1e-5)
    assert len(cache) == 2  # each entry is ~0.5 MB: the 1 MB bound stores two of the three
    assert cache.hits == 2 and cache.misses == 4
    assert cache.bytes <= 2**20
    tiny = FeatureCache(bb, BackboneConfig(arch="vgg16", weights="none", cache_max_mb=0))
    tiny.features(["a"], x[:1])
    assert len(tiny) == 0  # over the bound: computed, not stored
    off = FeatureCache(bb, BackboneConfig(arch="vgg16", weights="none", cache_features=False))
    off.features(["a"], x[:1])
    assert len(off) == 0


def test_fp16_cache_is_close():
    cfg = BackboneConfig(arch="vgg16", weights="none", cache_fp16=True)
    bb = FrozenVGG(cfg)
    cache = FeatureCache(bb, cfg)
    x = torch.rand(2, 1, 64, 64)
    first = cache.features(["a", "b"], x)  # misses
    cached = cache.features(["a", "b"], x)  # hits
    for f, c in zip(first, cached):
        assert torch.equal(f, c)  # a hit and a miss give identical numbers
    for c, r in zip(cached, bb(x)):
        assert c.dtype == torch.float32
        assert torch.allclose(c, r, rtol=1e-2, atol=1e-2)

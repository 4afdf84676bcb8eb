import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cc2dkit.config import preset
from cc2dkit.data import make_phantom_splits
from cc2dkit.data.grid import GridImages
from cc2dkit.network import CC2D
from cc2dkit.training import (Augment, RandomPatchSource, augment_patch, make_optimizer, make_patch, patch_size,
                              scale_loss, ssl_step, train_stage)
from cc2dkit.training.patches import draw_augment


def _phantom(cfg):
    train, _ = make_phantom_splits(cfg.data, cfg.seed)
    return GridImages(train, cfg.data.grid, "train", progress=False)


def _dot_image(size, x, y):
    img = torch.zeros(1, 1, size, size)
    img[0, 0, y, x] = 1.0
    return F.avg_pool2d(F.pad(img, (2, 2, 2, 2)), 5, 1)[0]  # a 5x5 blob centred on (x, y)


def _centroid(img):
    w = img[0]
    ys, xs = torch.meshgrid(torch.arange(w.shape[0]), torch.arange(w.shape[1]), indexing="ij")
    return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())


@pytest.mark.parametrize("angle,scale", [(0.0, 1.0), (17.0, 1.0), (-13.0, 1.0), (90.0, 1.0), (0.0, 1.2),
                                         (17.0, 0.85), (-40.0, 1.15)])
def test_augmented_point_follows_the_image(angle, scale):
    img = _dot_image(64, 20, 13)
    patch, moved = augment_patch(img, torch.tensor([20.0, 13.0]), Augment(angle, 1.0, 1.0, scale))
    cx, cy = _centroid(patch)
    assert abs(cx - float(moved[0])) < 0.2 and abs(cy - float(moved[1])) < 0.2
    # the zoom is about the patch centre (31.5, 31.5): the dot's distance from it scales
    dist = float(torch.linalg.vector_norm(moved - 31.5))
    assert dist == pytest.approx(scale * float(torch.linalg.vector_norm(torch.tensor([20.0, 13.0]) - 31.5)), rel=1e-3)


def test_the_zoom_draws_only_when_on():
    gen = torch.Generator().manual_seed(0)
    cfg = preset("smoke").train
    plain = [draw_augment(cfg, gen) for _ in range(20)]
    gen.manual_seed(0)
    zoomed = [draw_augment(dataclasses.replace(cfg, scale=0.1), gen) for _ in range(20)]
    assert all(a.scale == 1.0 for a in plain) and all(0.9 <= a.scale <= 1.1 for a in zoomed)
    assert len({a.scale for a in zoomed}) == 20 and plain[0] == dataclasses.replace(zoomed[0], scale=1.0)
    assert plain[1] != dataclasses.replace(zoomed[1], scale=1.0)  # the extra draw moves the stream on


def test_make_patch_crops_at_origin_and_rejects_out_of_grid():
    img = _dot_image(96, 50, 40)
    patch, p = make_patch(img, (30, 20), torch.tensor([50.0, 40.0]), 32, Augment(0.0, 1.0, 1.0))
    assert p.tolist() == [20.0, 20.0]
    assert _centroid(patch) == pytest.approx((20.0, 20.0), abs=1e-4)
    with pytest.raises(ValueError, match="leaves"):
        make_patch(img, (80, 0), torch.tensor([50.0, 40.0]), 32, Augment(0.0, 1.0, 1.0))


def test_random_patch_source_points_match(smoke_cfg):
    data = _phantom(smoke_cfg)
    src = RandomPatchSource(data, smoke_cfg.train)
    batch = src.sample(6, torch.Generator().manual_seed(0))
    p = patch_size(smoke_cfg.data.grid, smoke_cfg.train.patch_frac)
    assert batch.patches.shape == (6, 1, p, p) and batch.images.shape == (6, 1, 128, 128)
    assert ((batch.patch_points >= 0) & (batch.patch_points <= p - 1)).all()
    assert ((batch.image_points >= 0) & (batch.image_points <= 127)).all()
    assert all(k.startswith("train/") for k in batch.keys)
    again = src.sample(6, torch.Generator().manual_seed(0))
    assert torch.equal(batch.patches, again.patches) and batch.keys == again.keys


def test_patch_size_rounds_to_stride():
    assert patch_size(384, 0.5) == 192 and patch_size(192, 0.5) == 96 and patch_size(128, 0.5) == 64
    with pytest.raises(ValueError):
        patch_size(64, 0.25)


def test_scale_loss_window_targets_the_true_cell():
    emb = torch.randn(1, 8, 40, 40)
    # a patch vector equal to the image embedding at the true cell and a huge temperature:
    # the softmax puts all mass on the target, so the loss is ~0 only if the target index is right
    for x, y in [(3.0, 5.0), (60.0, 70.0), (157.0, 158.0)]:
        cell = (int((x + 0.5) // 4), int((y + 0.5) // 4))
        vec = emb[:, :, cell[1], cell[0]]
        loss = scale_loss(emb, vec, torch.tensor([[x, y]]), 4, temperature=1000.0, window=11)
        assert float(loss) < 1e-3
        full = scale_loss(emb, vec, torch.tensor([[x, y]]), 4, temperature=1000.0, window=None)
        assert float(full) < 1e-3


def test_few_training_steps_lower_the_loss(smoke_cfg):
    cfg = smoke_cfg.replace(**{"train.lr": 1e-3})
    torch.manual_seed(0)
    data = _phantom(cfg)
    model = CC2D(cfg.net, cfg.backbone)
    opt = make_optimizer(model, cfg)
    src = RandomPatchSource(data, cfg.train)
    gen = torch.Generator().manual_seed(0)
    fixed = src.sample(8, torch.Generator().manual_seed(123))

    def eval_loss():
        from cc2dkit.training import cc2d_loss
        model.train()  # batch statistics: running BN statistics lag behind after a few steps
        with torch.no_grad():
            loss, _ = cc2d_loss(model(fixed.images), model(fixed.patches), fixed.image_points, fixed.patch_points,
                                model.strides, fixed.patches.shape[-1], cfg.train.temperature, cfg.train.window)
        return float(loss)

    before = eval_loss()
    for _ in range(20):
        ssl_step(model, [src.sample(8, gen)], opt, cfg.train, torch.device("cpu"))
    after = eval_loss()
    assert after < before * 0.9, (before, after)


def test_training_is_reproducible_on_cpu(smoke_cfg):
    cfg = smoke_cfg.replace(**{"train.epochs": 1, "train.steps_per_epoch": 2})
    data = _phantom(cfg)
    runs = []
    for _ in range(2):
        torch.manual_seed(cfg.seed)
        model = CC2D(cfg.net, cfg.backbone)
        loss = train_stage(model, make_optimizer(model, cfg), [RandomPatchSource(data, cfg.train)], cfg,
                           torch.Generator().manual_seed(cfg.seed), torch.device("cpu"))
        runs.append((loss, [p.detach().clone() for p in model.trainable_parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_bf16_autocast_step_is_close_to_float32(smoke_cfg):
    from cc2dkit.runtime import native_bf16
    from cc2dkit.training.step import autocast
    from .conftest import tiny_cfg
    small = tiny_cfg()  # grid 64: bf16 is emulated (slow) on a CPU without it
    data = _phantom(small)
    batch = RandomPatchSource(data, small.train).sample(4, torch.Generator().manual_seed(0))
    losses = {}
    for amp in ("off", "bf16"):
        cfg = small.replace(**{"train.amp": amp})
        torch.manual_seed(0)
        model = CC2D(cfg.net, cfg.backbone)
        (losses[amp],) = ssl_step(model, [batch], make_optimizer(model, cfg), cfg.train, torch.device("cpu"))
    assert np.isfinite(losses["bf16"]) and losses["bf16"] == pytest.approx(losses["off"], rel=0.05)
    cpu = torch.device("cpu")
    assert autocast(smoke_cfg.train, cpu).__class__.__name__ == "nullcontext"  # smoke: "off", exact float32
    auto = autocast(smoke_cfg.replace(**{"train.amp": "auto"}).train, cpu)  # bf16 where the CPU has it natively
    assert (auto.__class__.__name__ == "nullcontext") != native_bf16(cpu)
    assert preset("cpu").train.amp == "auto"
    with pytest.raises(ValueError, match="'fp8'"):
        autocast(smoke_cfg.replace(**{"train.amp": "fp8"}).train, torch.device("cpu"))


def test_channels_last_changes_the_layout_not_the_step():
    """train.channels_last lays the weights out NHWC; the step's loss and updated weights are those of
    the NCHW step (float64, so only the summation order differs)."""
    import dataclasses

    from cc2dkit.training.step import memory_format
    from .conftest import tiny_cfg

    cpu = torch.device("cpu")
    base = tiny_cfg(**{"backbone.cache_features": False})  # the cache stores float32
    batch = RandomPatchSource(_phantom(base), base.train).sample(4, torch.Generator().manual_seed(0))
    batch = dataclasses.replace(batch, images=batch.images.double(), patches=batch.patches.double())
    out = {}
    for on in (False, True):
        cfg = base.replace(**{"train.channels_last": on})
        torch.manual_seed(0)
        model = CC2D(cfg.net, cfg.backbone).double()
        opt = make_optimizer(model, cfg)
        losses = [ssl_step(model, [batch], opt, cfg.train, cpu)[0] for _ in range(2)]  # 2nd: Adam's moments
        convs = [p for p in model.parameters() if p.dim() == 4]
        assert all(p.is_contiguous(memory_format=memory_format(cfg.train, cpu)) for p in convs)
        assert any(not p.is_contiguous() for p in convs) == on  # 3x3 convs really are NHWC when on
        out[on] = losses, [p.detach().clone() for p in model.trainable_parameters()]
    np.testing.assert_allclose(out[True][0], out[False][0], rtol=1e-6)  # the loss is float32
    for a, b in zip(out[True][1], out[False][1]):  # far below one Adam step (~lr): no update flipped
        torch.testing.assert_close(a, b, atol=1e-3 * base.train.lr, rtol=1e-6)
    assert base.train.channels_last is None  # default: NHWC on CUDA only
    assert memory_format(base.train, cpu) == torch.contiguous_format
    assert memory_format(base.train, torch.device("cuda")) == torch.channels_last
    assert memory_format(base.replace(**{"train.channels_last": "on"}).train, cpu) == torch.channels_last


def test_crop_source_windows_and_patches(smoke_cfg):
    from cc2dkit.training import CropPatchSource

    cfg = smoke_cfg.replace(**{"train.rotation_deg": 0.0, "train.brightness": 0.0, "train.contrast": 0.0})
    images = torch.rand(3, 1, 128, 128)
    src = CropPatchSource(images, 64, cfg.train)
    batch = src.sample(6, torch.Generator().manual_seed(0))
    assert batch.keys is None and batch.images.shape == (6, 1, 64, 64) and batch.patches.shape == (6, 1, 32, 32)
    for i in range(6):  # each window is a piece of some image, the patch a piece of the window at the point
        window = batch.images[i, 0]
        assert any(torch.equal(window, img[0, y:y + 64, x:x + 64]) for img in images
                   for y in range(65) for x in range(65) if img[0, y, x] == window[0, 0])
        x0, y0 = (batch.image_points[i] - batch.patch_points[i]).round().long().tolist()
        assert torch.equal(batch.patches[i, 0], window[y0:y0 + 32, x0:x0 + 32])
    with pytest.raises(ValueError, match="refine.crop"):
        CropPatchSource(images, 48, cfg.train)
    model = CC2D(cfg.net, cfg.backbone)
    losses = ssl_step(model, [batch], make_optimizer(model, cfg), cfg.train, torch.device("cpu"))  # uncached
    assert np.isfinite(losses).all() and len(model.cache) == 0


def test_cosine_learning_rate_per_epoch(smoke_cfg):
    from cc2dkit.training import epoch_lr

    cfg = smoke_cfg.replace(**{"train.lr": 1e-3, "train.epochs": 5, "train.lr_schedule": "cosine",
                               "train.lr_final_frac": 0.1})
    lrs = [epoch_lr(cfg, e) for e in range(1, 6)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4) and lrs == sorted(lrs, reverse=True)
    assert lrs[2] == pytest.approx(1e-4 + 0.9e-3 * 0.5)
    assert epoch_lr(cfg.replace(**{"train.lr_schedule": "constant"}), 4) == 1e-3
    with pytest.raises(ValueError, match="lr_schedule"):
        epoch_lr(cfg.replace(**{"train.lr_schedule": "step"}), 1)


def _distinct(b, d, h, seed=0):
    """(B, D, h, h) embeddings whose cells are orthogonal one-hots (D >= h*h): every cell told apart."""
    perm = torch.stack([torch.randperm(d, generator=torch.Generator().manual_seed(seed + i))[:h * h] for i in range(b)])
    return F.one_hot(perm, d).float().permute(0, 2, 1).reshape(b, d, h, h)


def test_walk_comes_home_wherever_the_image_puts_the_match():
    from cc2dkit.training.loss import walk_scale_loss
    tmpl = _distinct(2, 40, 6)
    points = torch.tensor([[11.5, 19.5], [43.5, 3.5]])  # cell centres of a 48-px image at stride 8
    same = walk_scale_loss(tmpl, tmpl.clone(), points, 8, 48, 50.0)
    assert float(same) < 1e-4  # one-to-one and sharp: the walk returns for sure
    # the image's cells shuffled: still one-to-one, so the trip still comes home (consistency, not position)
    shuffled = tmpl.flatten(2)[:, :, torch.randperm(36, generator=torch.Generator().manual_seed(3))].reshape(tmpl.shape)
    assert float(walk_scale_loss(tmpl, shuffled, points, 8, 48, 50.0)) < 1e-4
    # a template cell that looks like the point's: the way back splits between the two, P(home) = 1/2
    twin = tmpl.clone()
    for b, (x, y) in enumerate([(1, 2), (5, 0)]):  # the points' cells (col, row) at stride 8
        twin[b, :, 5 - y, 5 - x] = twin[b, :, y, x]
    assert float(walk_scale_loss(twin, twin.clone(), points, 8, 48, 50.0)) == pytest.approx(np.log(2), abs=1e-4)


def test_walk_loss_reads_the_coarse_strides_and_trains_both_ends():
    from cc2dkit.training.loss import Walk, walk_loss
    gen = torch.Generator().manual_seed(0)
    strides = (32, 16, 8, 4, 2)
    tmpl = [torch.randn(2, 8, 64 // s, 64 // s, generator=gen, requires_grad=True) for s in strides]
    img = [torch.randn(2, 8, 64 // s, 64 // s, generator=gen, requires_grad=True) for s in strides]
    points = torch.tensor([[10.0, 20.0], [40.0, 50.0]])
    loss = walk_loss(tmpl, img, points, strides, 64, 10.0, Walk(0.5, 16))
    loss.backward()
    assert float(loss) > 0
    for i, s in enumerate(strides):  # only the strides >= 16 reach the loss, both ends of them
        for t in (tmpl[i], img[i]):
            assert (t.grad is not None and t.grad.abs().sum() > 0) == (s >= 16)
    with pytest.raises(ValueError, match="pl_walk_stride=64"):
        walk_loss(tmpl, img, points, strides, 64, 10.0, Walk(1.0, 64))


def test_ssl_step_wants_partners_and_the_walk_together(smoke_cfg):
    from cc2dkit.training.loss import Walk
    data = _phantom(smoke_cfg)
    model = CC2D(smoke_cfg.net, smoke_cfg.backbone)
    opt = make_optimizer(model, smoke_cfg)
    batch = RandomPatchSource(data, smoke_cfg.train).sample(4, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="round trip"):
        ssl_step(model, [batch], opt, smoke_cfg.train, torch.device("cpu"), walk=Walk(1.0, 8))
    batch.partners, batch.partner_keys = data.images[:4], data.keys[:4]
    batch.partner_points = torch.full((4, 2), 30.0)
    with pytest.raises(ValueError, match="round trip"):
        ssl_step(model, [batch], opt, smoke_cfg.train, torch.device("cpu"))
    (loss,) = ssl_step(model, [batch], opt, smoke_cfg.train, torch.device("cpu"), walk=Walk(1.0, 8))
    assert np.isfinite(loss)

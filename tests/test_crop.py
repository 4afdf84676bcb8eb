"""The decoder's cropped training pass (``train.crop_below``): the same cells where the loss reads them."""
import pytest
import torch

from cc2dkit.config import BackboneConfig, NetConfig, preset
from cc2dkit.data import make_phantom_splits
from cc2dkit.data.grid import GridImages
from cc2dkit.methods import batched_training
from cc2dkit.network import CC2D, AdapterBlocks, StackedModels
from cc2dkit.network.sampling import CROP_MARGIN, crop_plan, loss_cells, window_bounds
from cc2dkit.training import RandomPatchSource, cc2d_loss, make_optimizer, ssl_step

BB = BackboneConfig(arch="vgg16", weights="none")
NET = NetConfig(embed_dim=8, decoder_widths=(16, 16, 16, 16, 8))
GRID, HALF = 128, 5  # maps 4, 8, 16, 32, 64 cells: windows of 11 cells, crops of 17


def _points(b: int, gen: torch.Generator) -> torch.Tensor:
    """Random grid points, the first four at the corners (crops clipped to the map's edges)."""
    pts = torch.rand(b, 2, generator=gen) * (GRID - 1)
    pts[:4] = torch.tensor([[0.0, 0.0], [GRID - 1.0, 0.0], [0.0, GRID - 1.0], [GRID - 1.0, GRID - 1.0]])
    return pts


def test_crop_plan_covers_each_window_and_its_margin():
    pts = _points(8, torch.Generator().manual_seed(0))
    plan = crop_plan(pts, (32, 16, 8, 4, 2), GRID, HALF, 4)
    assert sorted(plan) == [2, 4]  # never the coarsest (its softmax spans the map), never above crop_below
    assert crop_plan(pts, (32, 16, 8, 4, 2), GRID, HALF, None) == {}
    for s, crop in plan.items():
        n = GRID // s
        assert crop.size == min(2 * HALF + 1 + 2 * CROP_MARGIN, n)
        for i in (0, 1):
            start = window_bounds(loss_cells(pts, s, GRID)[:, i], HALF, n)
            o = crop.origins[:, i]
            assert bool((o >= 0).all()) and bool((o + crop.size <= n).all())
            inner = (start - o >= CROP_MARGIN) | (o == 0)  # the margin, or the map's edge
            outer = (o + crop.size - (start + 2 * HALF + 1) >= CROP_MARGIN) | (o + crop.size == n)
            assert bool(inner.all()) and bool(outer.all())


@pytest.mark.parametrize("below", [2, 4])
@pytest.mark.parametrize("adapter", [False, True])
def test_cropped_decoder_gives_the_full_maps_cells_in_every_window(below, adapter):
    """Batch norm on running statistics (eval): the cropped pass equals the whole-image pass on
    every window the loss reads, at the map's edges too; so does the loss, with the patch cropped too."""
    torch.manual_seed(0)
    blocks = AdapterBlocks(n_landmarks=3, extra=2) if adapter else None
    model = CC2D(NET, BB, blocks) if blocks else CC2D(NET, BB)
    model.eval()
    gen = torch.Generator().manual_seed(1)
    images, pts = torch.rand(6, 1, GRID, GRID, generator=gen), _points(6, gen)
    ids = torch.tensor([0, 2, 1, 1, 0, 2]) if adapter else None
    plan = crop_plan(pts, model.strides, GRID, HALF, below)
    with torch.no_grad():
        full, cropped = model(images, None, ids), model(images, None, ids, plan)
    for s, f, c in zip(model.strides, full, cropped):
        if s not in plan:
            torch.testing.assert_close(c, f)
            continue
        crop, n, span = plan[s], GRID // s, 2 * HALF + 1
        assert c.shape == (6, NET.embed_dim, crop.size, crop.size)
        cells = loss_cells(pts, s, GRID)
        for b in range(6):
            x0, y0 = (int(window_bounds(cells[b:b + 1, i], HALF, n)) for i in (0, 1))
            ox, oy = crop.origins[b].tolist()
            torch.testing.assert_close(c[b, :, y0 - oy:y0 - oy + span, x0 - ox:x0 - ox + span],
                                       f[b, :, y0:y0 + span, x0:x0 + span], rtol=1e-4, atol=1e-5)
    patches, patch_pts = torch.rand(6, 1, 64, 64, generator=gen), torch.rand(6, 2, generator=gen) * 63
    patch_pts[0], patch_pts[1] = torch.tensor([0.0, 63.0]), torch.tensor([63.0, 0.2])  # reads at the edges
    patch_plan = crop_plan(patch_pts, model.strides, 64, 1, below)  # the bilinear read's neighbours
    with torch.no_grad():
        p, p_cropped = model(patches, None, ids), model(patches, None, ids, patch_plan)
        args = (pts, patch_pts, model.strides, 64, 10.0, HALF)
        torch.testing.assert_close(cc2d_loss(cropped, p_cropped, *args, plan, GRID, patch_plan)[0],
                                   cc2d_loss(full, p, *args)[0], rtol=1e-5, atol=1e-5)


def test_a_step_with_crops_lowers_the_loss(smoke_cfg):
    """Trained on crops (batch norm on the crops' statistics), the whole-image loss still falls."""
    cfg = smoke_cfg.replace(**{"train.lr": 1e-3, "train.crop_below": 4, "train.window": HALF})
    torch.manual_seed(0)
    data = GridImages(make_phantom_splits(cfg.data, cfg.seed)[0], cfg.data.grid, "train", progress=False)
    model = CC2D(cfg.net, cfg.backbone)
    opt, src = make_optimizer(model, cfg), RandomPatchSource(data, cfg.train)
    gen, fixed = torch.Generator().manual_seed(0), src.sample(8, torch.Generator().manual_seed(123))

    def whole_image_loss():
        model.train()
        with torch.no_grad():
            return float(cc2d_loss(model(fixed.images), model(fixed.patches), fixed.image_points, fixed.patch_points,
                                   model.strides, fixed.patches.shape[-1], cfg.train.temperature, HALF)[0])
    before = whole_image_loss()
    for _ in range(20):
        ssl_step(model, [src.sample(8, gen)], opt, cfg.train, torch.device("cpu"))
    assert whole_image_loss() < before * 0.9


def test_crops_refused_where_a_stage_needs_its_whole_map():
    model = CC2D(NET, BB)
    pts = _points(4, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="stride 8 cannot be cropped"):
        model(torch.rand(4, 1, GRID, GRID), None, None, crop_plan(pts, model.strides, GRID, HALF, 8))
    stack = StackedModels([CC2D(NET, BB), CC2D(NET, BB)])
    with pytest.raises(ValueError, match="method.batched"):
        stack.embed_groups(torch.rand(8, 1, GRID, GRID), None, None, crop_plan(pts, model.strides, GRID, HALF, 4))


def test_config_checks_crop_below(smoke_cfg):
    with pytest.raises(ValueError, match="train.crop_below"):
        smoke_cfg.replace(**{"train.crop_below": 8})
    with pytest.raises(ValueError, match="method.batched"):
        smoke_cfg.replace(**{"train.crop_below": 4, "method.batched": True})
    with pytest.raises(ValueError, match="pl_walk_stride"):
        smoke_cfg.replace(**{"train.crop_below": 4, "method.name": "adapter", "method.pl_walk": 0.5,
                             "method.pl_walk_stride": 4})
    assert smoke_cfg.replace(**{"train.crop_below": 2}).train.crop_below == 2


def test_cpu_preset_crops_and_its_per_landmark_methods_train_one_model_per_step():
    cpu = preset("cpu")
    assert cpu.train.crop_below == 4
    sla = preset("cpu", **{"method.name": "sla", "device": "cuda"})
    assert not batched_training(sla, torch.device("cuda"))  # CUDA's default stack gives way to the crop
    with pytest.raises(ValueError, match="train.crop_below=null"):
        preset("cpu", **{"method.name": "atd", "method.batched": True})

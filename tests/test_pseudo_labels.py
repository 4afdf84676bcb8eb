import numpy as np
import pytest
import torch

from cc2dkit.config import preset
from cc2dkit.data import make_phantom_splits
from cc2dkit.data.grid import GridImages
from cc2dkit.network import CC2D
from cc2dkit.training import patch_size
from cc2dkit.training.pseudo_labels import (LandmarkTemplate, PLPatchSource, PLState, infer_pseudo_labels,
                                            landmark_templates, make_template)

TINY = {"data.grid": 64, "data.phantom_size": 128, "data.phantom_train": 6, "data.phantom_test": 2,
        "net.embed_dim": 16, "net.decoder_widths": (32, 32, 16, 16, 16), "train.batch_size": 4}


@pytest.fixture(scope="module")
def tiny():
    cfg = preset("smoke", **TINY)
    train, _ = make_phantom_splits(cfg.data, cfg.seed)
    return cfg, GridImages(train, cfg.data.grid, "train", progress=False)


@pytest.fixture(scope="module")
def model(tiny):
    torch.manual_seed(0)
    return CC2D(tiny[0].net, tiny[0].backbone)


def test_random_pls_inside_the_grid_and_reproducible(tiny):
    cfg, data = tiny
    a = PLState.random(data, [1, 2, 3], [0, 4], torch.Generator().manual_seed(0))
    b = PLState.random(data, [1, 2, 3], [0, 4], torch.Generator().manual_seed(0))
    assert a.pls.shape == (3, 2, 2) and np.array_equal(a.pls, b.pls)
    assert (a.pls >= 0).all() and (a.pls <= data.grid - 1).all()
    assert a.landmark_names == [data.landmark_names[0], data.landmark_names[4]]


def test_history_records_movement_and_error(tiny):
    cfg, data = tiny
    rows, lms = [1, 2, 3], [0, 2]
    pl = PLState(data.landmarks[np.ix_(rows, lms)], rows, lms, ["a", "b"])
    pl.record(0, data)
    assert np.allclose(pl.history[0]["pl_error_mm"], 0.0, atol=1e-9)
    assert np.isnan(pl.history[0]["movement_mm"]).all()
    pl.pls = pl.pls + np.array([3.0, 4.0])  # 5 grid px; the phantom is square: 128 / 64 = 2 px per cell
    pl.record(1, data)
    h = pl.history[1]
    assert h["movement_px"] == pytest.approx([5.0, 5.0])
    mm = 5.0 * 2 * data.spacing_mm
    assert h["movement_mm"] == pytest.approx([mm, mm]) and h["pl_error_mm"] == pytest.approx([mm, mm])
    assert not np.shares_memory(h["pls"], pl.pls)
    frame = pl.history_frame()
    assert list(frame.columns) == ["epoch", "landmark", "landmark_index", "movement_px", "movement_mm", "pl_error_mm"]
    assert len(frame) == 4 and frame["epoch"].tolist() == [0, 0, 1, 1] and frame["landmark"].tolist() == ["a", "b"] * 2


def test_pl_error_is_nan_without_ground_truth(tiny):
    cfg, data = tiny
    pl = PLState.random(data, [1, 2], [0], torch.Generator().manual_seed(0))
    saved = data.original_landmarks.copy()
    try:
        data.original_landmarks[[1, 2]] = np.nan
        assert np.isnan(pl.record(0, data)["pl_error_mm"]).all()
    finally:
        data.original_landmarks[:] = saved


def test_pl_patch_source_centres_patches_on_pls(tiny):
    cfg, data = tiny
    cfg = cfg.replace(**{"train.rotation_deg": 0.0, "train.brightness": 0.0, "train.contrast": 0.0,
                         "method.pl_offset": 0.25})
    rows, lms = [1, 2, 3, 4], [0, 1, 3]
    pl = PLState.random(data, rows, lms, torch.Generator().manual_seed(3))
    pl.pls[0, 0] = [0.0, 63.0]  # corners: the patch must stay in the grid, the point inside it
    pl.pls[1, 1] = [63.0, 0.0]
    src = PLPatchSource(data, cfg.train, cfg.method, pl, [1, 3], [1, 2])
    assert len(src) == 4
    p = patch_size(data.grid, cfg.train.patch_frac)
    batch = src.sample(32, torch.Generator().manual_seed(0))
    assert batch.patches.shape == (32, 1, p, p) and set(batch.landmark_ids.tolist()) <= {1, 2}
    for i in range(32):
        row = rows.index(data.keys.index(batch.keys[i]))
        assert row in (0, 1)
        assert batch.image_points[i].tolist() == pytest.approx(pl.pls[row, int(batch.landmark_ids[i])].tolist())
        x0, y0 = (batch.image_points[i] - batch.patch_points[i]).round().long().tolist()
        assert 0 <= x0 <= data.grid - p and 0 <= y0 <= data.grid - p
        img = data.images[data.keys.index(batch.keys[i])]
        assert torch.allclose(batch.patches[i], img[:, y0:y0 + p, x0:x0 + p])  # no augmentation
        assert ((batch.patch_points[i] >= 0) & (batch.patch_points[i] <= p - 1)).all()
        clamped = x0 in (0, data.grid - p) or y0 in (0, data.grid - p)
        if not clamped:
            assert (batch.patch_points[i] - (p - 1) / 2).abs().max() <= 0.25 * p / 2 + 0.5
    again = src.sample(32, torch.Generator().manual_seed(0))
    assert torch.equal(batch.patches, again.patches) and torch.equal(batch.landmark_ids, again.landmark_ids)


def test_pl_patch_source_with_augmentation_keeps_points_inside(tiny):
    cfg, data = tiny
    pl = PLState.random(data, [1, 2, 3], [0, 1], torch.Generator().manual_seed(0))
    src = PLPatchSource(data, cfg.train, cfg.method.__class__(pl_offset=1.0), pl)
    batch = src.sample(16, torch.Generator().manual_seed(1))
    p = patch_size(data.grid, cfg.train.patch_frac)
    assert ((batch.patch_points >= 0) & (batch.patch_points <= p - 1)).all()


class IdRecorder(CC2D):
    """A stand-in adapter model: needs landmark ids, records them, otherwise plain CC2D."""

    def __init__(self, net, backbone, n):
        super().__init__(net, backbone)
        self.n_adapters = n
        self.seen = []

    def forward(self, images, keys=None, landmark_ids=None):
        assert landmark_ids is not None and landmark_ids.shape == (images.shape[0],)
        assert ((landmark_ids >= 0) & (landmark_ids < self.n_adapters)).all()
        self.seen.append(landmark_ids.tolist())
        return super().forward(images, keys)


def test_infer_pseudo_labels_shared_and_per_landmark_templates_agree(tiny, model):
    cfg, data = tiny
    t = data.index(cfg.data.template)
    dev = torch.device("cpu")
    shared = make_template(model, data.images[t], data.landmarks[t], [3, 1], dev)
    assert isinstance(shared, LandmarkTemplate)
    a = infer_pseudo_labels(model, shared, data, [3, 1], dev, 4, image_indices=[1, 2, 3])
    per = landmark_templates(model, data.images[t], data.landmarks[t], [3, 1], dev)
    b = infer_pseudo_labels(model, per, data, [3, 1], dev, 2, image_indices=[1, 2, 3])
    assert a.shape == (3, 2, 2) and np.array_equal(a, b)
    assert ((a >= 0) & (a <= data.grid - 1)).all()
    assert np.array_equal(a[0], infer_pseudo_labels(model, shared, data, [3, 1], dev, 4, image_indices=[1])[0])


def test_infer_pseudo_labels_uses_adapter_k_for_landmark_k(tiny, model):
    cfg, data = tiny
    plain = model
    model = IdRecorder(cfg.net, cfg.backbone, 2)
    t = data.index(cfg.data.template)
    dev = torch.device("cpu")
    with pytest.raises(ValueError, match="one template per landmark"):
        infer_pseudo_labels(model, LandmarkTemplate(model, data.images[t], data.landmarks[t], dev, 0), data,
                            [4, 2], dev, 4)
    model.seen.clear()
    per = make_template(model, data.images[t], data.landmarks[t], [4, 2], dev)
    assert model.seen == [[0], [1]]  # the template of landmark k through adapter k
    model.seen.clear()
    out = infer_pseudo_labels(model, per, data, [4, 2], dev, 4, image_indices=[1, 2, 3, 4, 5])
    assert out.shape == (5, 2, 2)
    assert model.seen == [[0] * 4, [0], [1] * 4, [1]]
    with pytest.raises(ValueError, match="landmark_ids must be None"):
        plain(data.images[:1], landmark_ids=torch.zeros(1, dtype=torch.long))

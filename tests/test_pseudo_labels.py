import numpy as np
import pytest
import torch

from cc2dkit.training import patch_size
from cc2dkit.training.pseudo_labels import PLPatchSource, PLState

from .conftest import phantom_grids, tiny_cfg


@pytest.fixture(scope="module")
def tiny():
    cfg = tiny_cfg()
    return cfg, phantom_grids(cfg)[0]


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
    assert np.allclose(pl.history[0]["pl_error"], 0.0, atol=1e-9)
    assert np.isnan(pl.history[0]["movement"]).all()
    pl.pls = pl.pls + np.array([3.0, 4.0])  # 5 grid px; the phantom is square: 128 / 64 = 2 px per cell
    pl.record(1, data)
    h = pl.history[1]
    assert h["movement_grid"] == pytest.approx([5.0, 5.0])
    mm = 5.0 * 2 * data.dataset.spacing_mm
    assert h["movement"] == pytest.approx([mm, mm]) and h["pl_error"] == pytest.approx([mm, mm])
    assert not np.shares_memory(h["pls"], pl.pls)
    frame = pl.history_frame()
    assert list(frame.columns) == ["epoch", "landmark", "landmark_index", "movement_grid", "movement_mm", "pl_error_mm",
                                   "pl_capped", "pl_reread"]
    assert frame["pl_capped"].tolist() == [0] * 4 and frame["pl_reread"].tolist() == [0] * 4
    assert len(frame) == 4 and frame["epoch"].tolist() == [0, 0, 1, 1] and frame["landmark"].tolist() == ["a", "b"] * 2


def test_update_caps_moves_after_the_first_update(tiny):
    cfg, data = tiny
    rows, lms = [1, 2], [0, 2]
    pl = PLState(np.full((2, 2, 2), 10.0), rows, lms, ["a", "b"])
    pl.record(0, data)
    far = np.full((2, 2, 2), 10.0)
    far[0, 0] = [40.0, 50.0]  # 50 grid px away
    assert pl.update(far, max_move=3.0).tolist() == [0, 0]  # the first update leaves the random start freely
    assert np.array_equal(pl.pls, far)
    pl.record(1, data)
    new = far.copy()
    new[0, 0] = [40.0 - 30.0, 50.0 + 40.0]  # 50 px: capped to 3 along the same direction
    new[1, 1] = [12.0, 10.0]  # 2 px: under the cap, taken as is
    assert pl.update(new, max_move=3.0).tolist() == [1, 0]
    assert pl.pls[0, 0] == pytest.approx([40.0 - 1.8, 50.0 + 2.4])
    assert np.array_equal(pl.pls[1, 1], [12.0, 10.0]) and np.array_equal(pl.pls[0, 1], far[0, 1])
    pl.record(2, data)
    assert pl.history[2]["capped"].tolist() == [1, 0] and pl.history[2]["movement_grid"][0] == pytest.approx(1.5)
    frame = pl.history_frame()
    assert frame[frame["epoch"] == 2]["pl_capped"].tolist() == [1, 0]
    del pl.history[2]["capped"]  # a checkpoint written before the cap existed
    assert pl.history_frame()["pl_capped"].tolist() == [0] * 6
    pl.update(new)  # no cap: the new answer as is
    assert np.array_equal(pl.pls, new)
    with pytest.raises(ValueError, match="shape"):
        pl.update(new[:1])


def test_update_with_agree_lets_a_pl_follow_two_answers_in_a_row(tiny):
    cfg, data = tiny
    rows, lms = [1, 2], [0, 2]
    start = np.full((2, 2, 2), 10.0)
    pl, held = PLState(start, rows, lms, ["a", "b"]), PLState(start, rows, lms, ["a", "b"])
    for p in (pl, held):
        p.record(0, data)
        p.update(start, max_move=3.0, agree=True)  # the first update: free
        p.record(1, data)
    jump = start.copy()
    jump[0, 0] = [10.0, 30.0]  # 20 px away: capped, however it is read
    jump[1, 1] = [30.0, 10.0]
    for p in (pl, held):
        assert p.update(jump, max_move=3.0, agree=True).tolist() == [1, 1]
        p.record(2, data)
    assert pl.pls[0, 0] == pytest.approx([10.0, 13.0]) and np.array_equal(pl.history[2]["answers"], jump)
    again = jump.copy()
    again[0, 0] = [11.0, 31.0]  # within 3 px of the last answer: two answers agree, the PL takes it whole
    again[1, 1] = [10.0, 10.0]  # back where it was: within 3 px of the PL, free anyway
    assert pl.update(again, max_move=3.0, agree=True).tolist() == [0, 0]
    assert np.array_equal(pl.pls, again)
    assert held.update(again, max_move=3.0).tolist() == [1, 0]  # without agree the cap holds
    assert held.pls[0, 0] == pytest.approx([10.0 + 3 / np.sqrt(325), 13.0 + 54 / np.sqrt(325)])  # 3 px along (1, 18)
    held.record(3, data)
    del held.history[3]["answers"]  # a checkpoint written before agree existed: the cap holds
    assert held.update(again, max_move=3.0, agree=True).tolist() == [1, 0]


def test_pl_error_is_nan_without_ground_truth(tiny):
    cfg, data = tiny
    pl = PLState.random(data, [1, 2], [0], torch.Generator().manual_seed(0))
    saved = data.original_landmarks.copy()
    try:
        data.original_landmarks[[1, 2]] = np.nan
        assert np.isnan(pl.record(0, data)["pl_error"]).all()
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


def test_pl_cross_takes_that_share_of_patches_from_the_templates(tiny):
    from cc2dkit.data.template_aug import TemplateCopies
    cfg, data = tiny
    cfg = cfg.replace(**{"train.rotation_deg": 0.0, "train.brightness": 0.0, "train.contrast": 0.0,
                         "method.name": "adapter"})
    g, n_all = data.grid, data.landmarks.shape[1]
    ramp = (torch.arange(g * g, dtype=torch.float32).reshape(1, g, g) + 1) / (g * g)  # a pixel's value names it
    marks = np.random.default_rng(0).uniform(5, g - 6, size=(3, n_all, 2))
    copies = TemplateCopies(ramp.expand(3, 1, g, g).clone(), marks, [("copy", c) for c in range(3)],
                            np.zeros((3, 2)), np.zeros((3, 4)))
    pl = PLState.random(data, [1, 2, 3], [0, 2], torch.Generator().manual_seed(0))
    plain = PLPatchSource(data, cfg.train, cfg.method, pl).sample(64, torch.Generator().manual_seed(5))
    for share in (1.0, 0.5):
        src = PLPatchSource(data, cfg.train, cfg.method.__class__(name="adapter", pl_cross=share), pl, copies=copies)
        batch = src.sample(64, torch.Generator().manual_seed(5))
        # the images, their points and landmarks are the PL draw's; only (some) patches change
        assert batch.keys == plain.keys and torch.equal(batch.image_points, plain.image_points)
        assert torch.equal(batch.landmark_ids, plain.landmark_ids)
        crossed = [j for j in range(64) if not torch.equal(batch.patches[j], plain.patches[j])]
        assert (len(crossed) == 64) if share == 1.0 else (10 < len(crossed) < 54)
        for j in crossed:  # a crop of a template copy with its landmark at the patch point
            x, y = batch.patch_points[j].round().long().tolist()
            at = int(round(float(batch.patches[j][0, y, x]) * g * g)) - 1  # the copy's pixel under the point
            lm = pl.landmark_indices[int(batch.landmark_ids[j])]
            assert any(np.allclose((at % g, at // g), marks[c, lm].round(), atol=0.5) for c in range(3))
    with pytest.raises(ValueError, match="needs the augmented templates"):
        PLPatchSource(data, cfg.train, cfg.method.__class__(name="adapter", pl_cross=0.5), pl)


def test_pl_walk_gives_each_sample_a_template_copy_and_its_landmark(tiny):
    from cc2dkit.data.template_aug import TemplateCopies
    cfg, data = tiny
    g, n_all = data.grid, data.landmarks.shape[1]
    marks = np.random.default_rng(0).uniform(-3, g + 2, size=(4, n_all, 2))  # some outside the grid
    copies = TemplateCopies(torch.rand(4, 1, g, g), marks, [("copy", c) for c in range(4)],
                            np.zeros((4, 2)), np.zeros((4, 4)))
    pl = PLState.random(data, [1, 2, 3], [0, 2], torch.Generator().manual_seed(0))
    plain = PLPatchSource(data, cfg.train, cfg.method, pl).sample(32, torch.Generator().manual_seed(5))
    assert plain.partners is None
    src = PLPatchSource(data, cfg.train, cfg.method.__class__(name="adapter", pl_walk=1.0), pl, copies=copies)
    batch = src.sample(32, torch.Generator().manual_seed(5))
    # the PL draw is the same; the partners come after it
    assert batch.keys == plain.keys and torch.equal(batch.patches, plain.patches)
    assert torch.equal(batch.image_points, plain.image_points)
    assert batch.partners.shape == (32, 1, g, g) and len(batch.partner_keys) == 32
    for j in range(32):
        c = batch.partner_keys[j][1]
        lm = pl.landmark_indices[int(batch.landmark_ids[j])]
        assert torch.equal(batch.partners[j], copies.images[c])
        assert np.allclose(batch.partner_points[j].numpy(), np.clip(marks[c, lm], 0, g - 1), atol=1e-4)
    assert len({k[1] for k in batch.partner_keys}) > 1
    half = batch.part(slice(0, 16))
    assert half.partners.shape[0] == 16 and half.partner_keys == batch.partner_keys[:16]
    with pytest.raises(ValueError, match="pl_walk.*needs the augmented templates"):
        PLPatchSource(data, cfg.train, cfg.method.__class__(name="adapter", pl_walk=1.0), pl)


def test_pl_shape_flags_counts_the_pls_a_shape_check_doubts(tiny):
    from cc2dkit.analysis import pl_shape_flags
    cfg, data = tiny
    rows, lms = [1, 2, 3, 4, 5], [0, 1, 2, 3, 4]
    pl = PLState(PLState.random(data, rows, lms, torch.Generator().manual_seed(0)).pls, rows, lms,
                 [data.landmark_names[k] for k in lms])
    pl.record(0, data)
    pl.pls = data.landmarks[np.ix_(rows, lms)].copy()
    pl.pls[2, 3] += [20.0, -15.0]  # 25 grid px = 5 mm on the phantom: another structure
    pl.record(1, data)
    reference = data.landmarks[0, lms]
    table = pl_shape_flags(pl, data, reference, 3.0, wrong_mm=2.0, right_mm=1.0)
    assert table.index.tolist() == [1]  # the random start is not read
    row = table.loc[1]
    assert row["PLs"] == 25 and row["wrong"] == 1 and row["wrong_flagged"] == 1
    assert row["flagged"] >= 1 and row["right_flagged"] == row["flagged"] - 1  # every other PL is the truth
    alone = pl_shape_flags(pl, data, reference, 3.0, landmarks=[data.landmark_names[3]], wrong_mm=2.0).loc[1]
    assert alone["PLs"] == 5 and alone["wrong_flagged"] == 1
    with pytest.raises(ValueError, match="past the random start"):
        pl_shape_flags(PLState(pl.pls, rows, lms, pl.landmark_names), data, reference)

import numpy as np
import pytest
import torch

from cc2dkit.config import MethodConfig, preset
from cc2dkit.data.template_aug import affine_image_and_points, augment_template
from cc2dkit.training import TemplatePatchSource
from cc2dkit.training import patch_size


def _blob(h, w, x, y, sigma=2.5):
    ys, xs = np.mgrid[0:h, 0:w]
    return np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)).astype(np.float32)


def _centroid(img):
    img = np.asarray(img, dtype=np.float64)
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return np.array([(img * xs).sum() / img.sum(), (img * ys).sum() / img.sum()])


def _affine(p, angle, shift, scale, h, w):
    """The expected map: about the centre ((W-1)/2, (H-1)/2) in the pixel-centre convention."""
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    t = np.deg2rad(angle)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return c + scale * (r @ (np.asarray(p) - c)) + np.asarray(shift)


@pytest.mark.parametrize("angle,shift,scale", [(0.0, (0.0, 0.0), 1.0), (17.0, (6.0, -4.0), 1.1),
                                               (-9.0, (-3.5, 2.0), 0.93)])
def test_point_transform_is_exact_and_follows_the_image(angle, shift, scale):
    h, w, p = 90, 110, (41.3, 37.6)
    img, pts = affine_image_and_points(torch.from_numpy(_blob(h, w, *p))[None], torch.tensor([p], dtype=torch.float64),
                                       angle, shift, scale)
    assert pts[0].numpy() == pytest.approx(_affine(p, angle, shift, scale, h, w), abs=1e-4)
    assert np.abs(_centroid(img[0].numpy()) - pts[0].numpy()).max() < 0.15


def test_augmented_copies_at_grid_keep_the_dot_on_the_landmark():
    h, w, grid = 200, 160, 64
    lms = np.array([[61.2, 90.7]])
    method = MethodConfig(atd_copies=4, atd_shift=0.05, atd_scale=0.05, atd_rotation_deg=15.0)
    copies = augment_template(_blob(h, w, *lms[0], sigma=4.0), lms, method, grid, torch.Generator().manual_seed(0))
    assert copies.images.shape == (4, 1, grid, grid) and copies.landmarks.shape == (4, 1, 2)
    assert copies.keys == ["atd/0000", "atd/0001", "atd/0002", "atd/0003"] and copies.labelled.all()
    assert (np.abs(copies.params[:, 0]) <= 15).all() and (np.abs(copies.params[:, 3] - 1) <= 0.05).all()
    assert (np.abs(copies.params[:, 1]) <= 0.05 * w).all() and (np.abs(copies.params[:, 2]) <= 0.05 * h).all()
    assert np.ptp(copies.landmarks[:, 0, 0]) > 0.5  # the copies differ
    for i in range(4):
        assert np.abs(_centroid(copies.images[i, 0].numpy()) - copies.landmarks[i, 0]).max() < 1.0
    again = augment_template(_blob(h, w, *lms[0], sigma=4.0), lms, method, grid, torch.Generator().manual_seed(0))
    assert torch.equal(copies.images, again.images) and np.array_equal(copies.landmarks, again.landmarks)


def test_template_patch_source_centres_on_copied_landmarks():
    cfg = preset("smoke", **{"train.rotation_deg": 0.0, "train.brightness": 0.0, "train.contrast": 0.0,
                             "method.pl_offset": 0.0})
    rng = np.random.default_rng(0)
    lms = np.array([[100.0, 120.0], [60.0, 80.0], [150.0, 40.0]])
    method = MethodConfig(atd_copies=3, atd_shift=0.02, atd_scale=0.01, atd_rotation_deg=5.0)
    copies = augment_template(rng.random((256, 256)).astype(np.float32), lms, method, 128,
                              torch.Generator().manual_seed(1))
    src = TemplatePatchSource(copies, cfg.train, cfg.method, [2, 0])
    assert len(src) == 3 * 2
    batch = src.sample(8, torch.Generator().manual_seed(0))
    p = patch_size(128, cfg.train.patch_frac)
    idx = [copies.keys.index(k) for k in batch.keys]
    expected = np.stack([copies.landmarks[i, [2, 0][int(j)]] for i, j in zip(idx, batch.landmark_ids)])
    assert batch.image_points.numpy() == pytest.approx(expected, abs=1e-4)
    assert set(batch.landmark_ids.tolist()) <= {0, 1}
    assert ((batch.patch_points >= 0) & (batch.patch_points <= p - 1)).all()

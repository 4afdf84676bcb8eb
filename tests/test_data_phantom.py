"""The procedural phantom: determinism, geometry consistency, distinct landmarks."""
from __future__ import annotations

import numpy as np
import pytest

from cc2dkit.config import DataConfig
from cc2dkit.data.phantom import PhantomDataset, make_phantom_splits

SIZE = 256


@pytest.fixture(scope="module")
def ds19():
    return PhantomDataset(n_images=4, n_landmarks=19, size=SIZE, seed=3, split_name="train", spacing_mm=0.1)


def test_samples_shape_and_range(ds19):
    s = ds19[2]
    assert s.id == "train_002" and s.spacing_mm == 0.1
    assert s.image.shape == (SIZE, SIZE) and s.image.dtype == np.float32
    assert s.image.min() >= 0.0 and s.image.max() <= 1.0 and s.image.std() > 0.05
    assert s.landmarks.shape == (19, 2) and s.landmarks.dtype == np.float64
    assert ds19.landmark_names[:3] == ("P1", "P2", "P3") and len(ds19.landmark_names) == 19


def test_deterministic_bit_for_bit(ds19):
    other = PhantomDataset(n_images=4, n_landmarks=19, size=SIZE, seed=3, split_name="train", spacing_mm=0.1)
    for i in (0, 3):
        a, b = ds19[i], other[i]
        assert np.array_equal(a.image, b.image) and np.array_equal(a.landmarks, b.landmarks)
    again = ds19[0]  # cached path returns the same values (and a copy)
    assert np.array_equal(again.image, other[0].image)
    again.image[:] = 0
    assert np.array_equal(ds19[0].image, other[0].image)


def test_seeds_and_splits_differ(ds19):
    other_seed = PhantomDataset(n_images=1, n_landmarks=19, size=SIZE, seed=4, split_name="train", spacing_mm=0.1)
    other_split = PhantomDataset(n_images=1, n_landmarks=19, size=SIZE, seed=3, split_name="test", spacing_mm=0.1)
    assert not np.allclose(ds19[0].landmarks, other_seed[0].landmarks)
    assert not np.allclose(ds19[0].landmarks, other_split[0].landmarks)
    assert not np.allclose(ds19[0].landmarks, ds19[1].landmarks)


def test_landmarks_inside_and_apart(ds19):
    for i in range(len(ds19)):
        lm = ds19[i].landmarks
        assert lm.min() >= 4 and lm.max() <= SIZE - 5
    can = ds19.canonical_landmarks
    d = np.sqrt(((can[:, None] - can[None]) ** 2).sum(-1)) + np.eye(len(can)) * 1e9
    assert d.min() >= SIZE / 8


def test_forward_inverts_backward_exactly(ds19):
    warp = ds19.warp(1)
    np.testing.assert_allclose(warp.forward(ds19.canonical_landmarks), ds19[1].landmarks, atol=0)
    np.testing.assert_allclose(warp.backward(ds19[1].landmarks), ds19.canonical_landmarks, atol=1e-3)


def test_landmarks_follow_the_image_warp(ds19):
    """A tiny dot drawn at a canonical landmark, warped like the image, sits at the landmark."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    for i in (0, 2):
        warp, lm = ds19.warp(i), ds19[i].landmarks
        for k in (0, 5, 11, 18):
            cx, cy = ds19.canonical_landmarks[k]
            dot = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 1.0**2)).astype(np.float32)
            warped = warp.apply(dot).astype(np.float64)
            centroid = np.array([(xs * warped).sum(), (ys * warped).sum()]) / warped.sum()
            assert np.linalg.norm(centroid - lm[k]) < 0.5, (i, k, centroid, lm[k])


def test_landmark_neighbourhoods_are_distinct(ds19):
    """Patches around different landmarks are clearly different (normalized correlation)."""
    r = 10
    patches = []
    for x, y in np.round(ds19.canonical_landmarks).astype(int):
        p = ds19.canonical_image[y - r : y + r + 1, x - r : x + r + 1].astype(np.float64).ravel()
        p = p - p.mean()
        patches.append(p / np.linalg.norm(p))
    ncc = np.array(patches) @ np.array(patches).T
    np.fill_diagonal(ncc, -1)
    assert ncc.max() < 0.9


def test_make_phantom_splits_share_anatomy():
    cfg = DataConfig(source="phantom", phantom_train=5, phantom_test=3, phantom_landmarks=6,
                     phantom_size=128, phantom_spacing_mm=0.2)
    train, test = make_phantom_splits(cfg, seed=7)
    assert len(train) == 5 and len(test) == 3
    assert train.ids[0] == "train_000" and test.ids[-1] == "test_002"
    assert np.array_equal(train.canonical_image, test.canonical_image)
    assert np.array_equal(train.canonical_landmarks, test.canonical_landmarks)
    assert train[0].image.shape == (128, 128) and test[0].spacing_mm == 0.2
    assert not np.array_equal(train[0].image, test[0].image)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="size"):
        PhantomDataset(n_images=1, n_landmarks=3, size=32, seed=0, split_name="x", spacing_mm=1.0)
    with pytest.raises(ValueError, match="landmarks"):
        PhantomDataset(n_images=1, n_landmarks=200, size=128, seed=0, split_name="x", spacing_mm=1.0)

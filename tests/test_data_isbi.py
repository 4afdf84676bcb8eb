"""ISBI 2015 loader on tiny synthetic copies of the layout (and the real data when present)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cc2dkit.config import ISBI_ROOT_ENV
from cc2dkit.data.isbi import ISBI_LANDMARKS, ISBIDataset, read_isbi_annotation, resolve_isbi_root

REAL_ISBI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isbi2015"
W, H = 24, 20  # tiny stand-ins for the 1935 x 2400 images


def _coords(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 20, size=(19, 2))


def _write_annotation(path: Path, xy: np.ndarray, extra_lines: bool) -> None:
    lines = [f"{x},{y}" for x, y in xy]
    if extra_lines:  # the original release appends classification lines
        lines += ["1", "2", "3", "1", "2", "3", "1", "1"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_isbi(root: Path, ids=("001", "002", "003"), folder="TrainingData", ext=".bmp") -> Path:
    """A minimal ISBI tree: images + senior/junior annotations (both file styles)."""
    img_dir = root / "RawImage" / folder
    img_dir.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(ids):
        arr = (np.arange(H * W).reshape(H, W) * (k + 1) % 256).astype(np.uint8)
        Image.fromarray(np.stack([arr] * 3, axis=-1)).save(img_dir / f"{i}{ext}")
        _write_annotation(root / "AnnotationsByMD" / "400_senior" / f"{i}.txt", _coords(int(i)), k % 2 == 0)
        _write_annotation(root / "AnnotationsByMD" / "400_junior" / f"{i}.txt", _coords(int(i) + 1000), k % 2 == 1)
    return root


def test_loads_split_and_averages_doctors(tmp_path):
    root = make_isbi(tmp_path)
    ds = ISBIDataset(root, "train")
    assert ds.ids == ["001", "002", "003"]
    assert ds.landmark_names == ISBI_LANDMARKS and len(ISBI_LANDMARKS) == 19
    assert ds.spacing_mm == 0.1
    s = ds[1]
    assert s.id == "002"
    assert s.image.shape == (H, W) and s.image.dtype == np.float32
    assert 0.0 <= s.image.min() and s.image.max() <= 1.0
    expected_img = (np.arange(H * W).reshape(H, W) * 2 % 256) / 255.0
    np.testing.assert_allclose(s.image, expected_img, atol=1e-6)
    assert s.landmarks.dtype == np.float64 and s.landmarks.shape == (19, 2)
    np.testing.assert_allclose(s.landmarks, (_coords(2) + _coords(1002)) / 2.0)


def test_test_split_and_mixed_extensions(tmp_path):
    root = make_isbi(tmp_path, ids=("151", "152"), folder="Test1Data", ext=".jpg")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "RawImage" / "Test1Data" / "153.png")
    _write_annotation(root / "AnnotationsByMD" / "400_senior" / "153.txt", _coords(3), False)
    _write_annotation(root / "AnnotationsByMD" / "400_junior" / "153.txt", _coords(4), False)
    (root / "RawImage" / "Test1Data" / "notes.txt").write_text("not an image")
    ds = ISBIDataset(root, "test1")
    assert ds.ids == ["151", "152", "153"]
    assert ds[2].image.shape == (H, W)


def test_annotations_of_absent_images_are_ignored(tmp_path):
    root = make_isbi(tmp_path, ids=("001", "002"))
    _write_annotation(root / "AnnotationsByMD" / "400_senior" / "099.txt", _coords(9), False)
    assert ISBIDataset(root, "train").ids == ["001", "002"]


def test_floats_and_whitespace_in_annotations(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("\n".join([" 10.5 , 20 "] + ["1,2"] * 18) + "\r\n")
    xy = read_isbi_annotation(path)
    assert xy.shape == (19, 2)
    np.testing.assert_allclose(xy[0], [10.5, 20.0])


@pytest.mark.parametrize(
    "content, line, shown",
    [
        ("\n".join(["1,2"] * 4 + ["1;2"] + ["1,2"] * 14), 5, "1;2"),
        ("\n".join(["1,2"] * 9 + ["x,7"] + ["1,2"] * 9), 10, "x,7"),
        ("\n".join(["1,2"] * 18 + ["3,4,5", "9"]), 19, "3,4,5"),
        ("\n".join(["1,2"] * 6 + [""] + ["1,2"] * 12), 7, "''"),
    ],
)
def test_malformed_annotation_line(tmp_path, content, line, shown):
    root = make_isbi(tmp_path, ids=("001",))
    bad = root / "AnnotationsByMD" / "400_junior" / "001.txt"
    bad.write_text(content)
    with pytest.raises(ValueError) as err:
        ISBIDataset(root, "train")
    msg = str(err.value)
    assert str(bad) in msg and f"line {line}" in msg and shown in msg


def test_too_few_annotation_lines(tmp_path):
    root = make_isbi(tmp_path, ids=("001",))
    bad = root / "AnnotationsByMD" / "400_senior" / "001.txt"
    bad.write_text("\n".join(["1,2"] * 17) + "\n")
    with pytest.raises(ValueError, match="found only 17 lines") as err:
        ISBIDataset(root, "train")
    assert str(bad) in str(err.value) and "line 18" in str(err.value)


@pytest.mark.parametrize("annotator", ["400_senior", "400_junior"])
def test_image_without_annotation(tmp_path, annotator):
    root = make_isbi(tmp_path, ids=("001", "002"))
    missing = root / "AnnotationsByMD" / annotator / "002.txt"
    missing.unlink()
    with pytest.raises(FileNotFoundError) as err:
        ISBIDataset(root, "train")
    assert str(missing) in str(err.value) and "002.bmp" in str(err.value)


def test_missing_or_empty_split_folder(tmp_path):
    root = make_isbi(tmp_path)
    with pytest.raises(FileNotFoundError, match="Test2Data"):
        ISBIDataset(root, "test2")
    (root / "RawImage" / "Test1Data").mkdir()
    with pytest.raises(FileNotFoundError, match="Test1Data"):
        ISBIDataset(root, "test1")
    with pytest.raises(ValueError, match="unknown ISBI split"):
        ISBIDataset(root, "validation")


def test_image_outside_split_range(tmp_path):
    root = make_isbi(tmp_path, ids=("001",))
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "RawImage" / "TrainingData" / "151.bmp")
    with pytest.raises(ValueError, match="151.bmp"):
        ISBIDataset(root, "train")


def test_unreadable_image_names_file(tmp_path):
    root = make_isbi(tmp_path, ids=("001", "002"))
    broken = root / "RawImage" / "TrainingData" / "002.bmp"
    broken.write_bytes(b"this is not a bitmap")
    with pytest.raises(OSError, match="002.bmp"):  # found when the dataset is built, before any training
        ISBIDataset(root, "train")


def test_resolve_root(tmp_path, monkeypatch):
    root = make_isbi(tmp_path / "isbi")
    assert resolve_isbi_root(str(root)) == root.resolve()
    monkeypatch.chdir(tmp_path)
    assert resolve_isbi_root("isbi") == root.resolve()  # relative to the current directory
    monkeypatch.setenv(ISBI_ROOT_ENV, str(root))
    assert resolve_isbi_root(None) == root.resolve()
    monkeypatch.delenv(ISBI_ROOT_ENV)
    with pytest.raises(FileNotFoundError, match=ISBI_ROOT_ENV):
        resolve_isbi_root(None)
    with pytest.raises(FileNotFoundError) as err:
        resolve_isbi_root("no/such/folder")
    assert str(tmp_path / "no" / "such" / "folder") in str(err.value) and ISBI_ROOT_ENV in str(err.value)


@pytest.mark.skipif(not (REAL_ISBI / "RawImage").is_dir(), reason=f"real ISBI 2015 data not found at {REAL_ISBI}")
def test_real_isbi_train_split():
    ds = ISBIDataset(resolve_isbi_root(str(REAL_ISBI)), "train")
    assert len(ds) == 150 and ds.ids[0] == "001" and ds.ids[-1] == "150"
    s = ds[0]
    assert s.image.shape == (2400, 1935) and s.image.dtype == np.float32
    assert s.landmarks.shape == (19, 2)
    senior = read_isbi_annotation(REAL_ISBI / "AnnotationsByMD" / "400_senior" / "001.txt")
    junior = read_isbi_annotation(REAL_ISBI / "AnnotationsByMD" / "400_junior" / "001.txt")
    np.testing.assert_allclose(s.landmarks, (senior + junior) / 2.0)
    np.testing.assert_allclose(s.landmarks[0], [(835 + 829) / 2, (996 + 991) / 2])


def test_annotation_outside_the_image_is_refused(tmp_path):
    root = make_isbi(tmp_path, ids=("001", "002"))
    coords = _coords(2)
    coords[3] = (W + 500, 2)
    _write_annotation(root / "AnnotationsByMD" / "400_senior" / "002.txt", coords, True)
    _write_annotation(root / "AnnotationsByMD" / "400_junior" / "002.txt", coords, True)
    with pytest.raises(ValueError, match=r"002\.txt: landmark 'porion' .* outside the image"):
        ISBIDataset(root, "train")


def test_image_refs_are_paths_under_the_root(tmp_path):
    ds = ISBIDataset(make_isbi(tmp_path, ids=("001",)), "train")
    assert ds.image_ref(0) == "RawImage/TrainingData/001.bmp"


def test_each_doctors_annotation_and_their_distances(tmp_path):
    from cc2dkit.analysis import agreement_table, annotator_distances
    ds = ISBIDataset(make_isbi(tmp_path), "train")
    marks = np.stack([ds.annotations(i) for i in range(len(ds))])  # (3, 2, 19, 2)
    np.testing.assert_array_equal(marks[1, 0], _coords(2))  # senior first, junior second
    np.testing.assert_array_equal(marks[1, 1], _coords(1002))
    np.testing.assert_array_equal(marks.mean(axis=1)[2], ds[2].landmarks)  # the truth is their mean
    d = annotator_distances(marks, ds.spacing_mm)
    expected = np.linalg.norm(_coords(3) - _coords(1003), axis=-1) * 0.1
    np.testing.assert_allclose(d[2], expected)
    errors = np.full((4, 19), 3.0)
    errors[0, 5] = 5.0
    table = agreement_table(d, ISBI_LANDMARKS, errors, over_mm=0.9)
    np.testing.assert_allclose(table["doctors apart, mean (mm)"].to_numpy(), d.mean(axis=0))
    np.testing.assert_allclose(table["apart > 0.9 mm (%)"].to_numpy(), 100 * (d > 0.9).mean(axis=0))
    assert table.loc["supramentale", "detector MRE (mm)"] == 3.5
    assert table.loc["supramentale", "detector SDR 0.9 mm (%)"] == 0 and table.loc["sella", "detector MRE (mm)"] == 3
    with pytest.raises(ValueError, match="annotators >= 2"):
        annotator_distances(marks[:, :1], 0.1)
    with pytest.raises(ValueError, match="19 landmarks"):
        agreement_table(d[:, :5], ISBI_LANDMARKS)

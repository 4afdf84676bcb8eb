"""FolderDataset (images + long-format landmark CSV) and build_datasets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cc2dkit.config import DataConfig
from cc2dkit.data import FolderDataset, PhantomDataset, SubsetDataset, build_datasets, read_grayscale

H, W = 10, 14


def _image(path: Path, value: int = 100, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((H, W), value, np.uint8)
    if mode == "RGB":
        Image.fromarray(np.stack([arr] * 3, -1)).save(path)
    else:
        Image.fromarray(arr).save(path)


def _csv(path: Path, rows: list[str], header: str = "image,landmark,x,y") -> Path:
    path.write_text("\n".join([header] + rows) + "\n")
    return path


def make_folder(root: Path) -> Path:
    _image(root / "a.png", 10)
    _image(root / "b.jpg", 20, "RGB")
    _image(root / "c.tif", 30)  # unlabelled
    _csv(root / "landmarks.csv", ["a.png,tip,1,2", "a.png,base,3.5,4", "b.jpg,base,5,6", "b.jpg,tip,7,8"])
    return root


def test_loads_labelled_and_unlabelled(tmp_path):
    ds = FolderDataset(make_folder(tmp_path), None, 0.25)
    assert ds.ids == ["a", "b", "c"]
    assert ds.landmark_names == ("tip", "base")  # order of first appearance
    assert ds.labelled_ids == ["a", "b"]
    a, b, c = ds[0], ds[1], ds[2]
    np.testing.assert_allclose(a.landmarks, [[1, 2], [3.5, 4]])
    np.testing.assert_allclose(b.landmarks, [[7, 8], [5, 6]])  # reordered to the name order
    assert c.landmarks is None
    assert a.image.shape == (H, W) and a.image.dtype == np.float32
    assert abs(float(a.image[0, 0]) - 10 / 255) < 1e-6
    assert a.spacing_mm == 0.25


def test_sixteen_bit_images(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((H, W), 65535 // 2, np.uint16)).save(path)
    img = read_grayscale(path)
    assert img.dtype == np.float32 and abs(float(img[0, 0]) - 0.5) < 1e-4


def test_explicit_csv_and_stem_names(tmp_path):
    _image(tmp_path / "imgs" / "x1.bmp")
    csv = _csv(tmp_path / "marks.csv", ["imgs/x1,p,1,1", "imgs/x1,q,2,2"])
    ds = FolderDataset(tmp_path / "imgs", csv, 1.0)
    np.testing.assert_allclose(ds[0].landmarks, [[1, 1], [2, 2]])


def _error(tmp_path, rows, exc=ValueError, header="image,landmark,x,y"):
    root = make_folder(tmp_path)
    csv = _csv(root / "landmarks.csv", rows, header)
    with pytest.raises(exc) as err:
        FolderDataset(root, None, 1.0)
    assert str(csv) in str(err.value)
    return str(err.value)


def test_missing_csv(tmp_path):
    root = make_folder(tmp_path)
    (root / "landmarks.csv").unlink()
    with pytest.raises(FileNotFoundError, match="landmarks.csv"):
        FolderDataset(root, None, 1.0)


def test_missing_header_column(tmp_path):
    msg = _error(tmp_path, ["a.png,tip,1"], header="image,landmark,x")
    assert "line 1" in msg and "'y'" in msg


def test_non_numeric_coordinate(tmp_path):
    msg = _error(tmp_path, ["a.png,tip,1,2", "a.png,base,three,4"])
    assert "line 3" in msg and "data row 2" in msg and "'three'" in msg


def test_image_in_csv_not_found(tmp_path):
    msg = _error(tmp_path, ["a.png,tip,1,2", "zz.png,tip,1,2"], FileNotFoundError)
    assert "line 3" in msg and "zz.png" in msg


def test_incomplete_landmarks(tmp_path):
    msg = _error(tmp_path, ["a.png,tip,1,2", "a.png,base,1,2", "b.jpg,tip,1,2"])
    assert "line 4" in msg and "b.jpg" in msg and "base" in msg


def test_duplicated_row(tmp_path):
    msg = _error(tmp_path, ["a.png,tip,1,2", "a.png,tip,3,4"])
    assert "line 3" in msg and "first given on line 2" in msg


def test_no_images(tmp_path):
    (tmp_path / "landmarks.csv").write_text("image,landmark,x,y\n")
    with pytest.raises(FileNotFoundError, match="no images"):
        FolderDataset(tmp_path, None, 1.0)


def test_build_folder_source(tmp_path):
    _image(tmp_path / "train" / "t0.png")
    _image(tmp_path / "train" / "t1.png")
    for k in range(3):
        _image(tmp_path / "test" / f"s{k}.png")
    rows = ["train/t0.png,p,1,2", "train/t0.png,q,3,4"]
    rows += [f"test/s{k}.png,{n},{k},{k}" for k in range(3) for n in "pq"]
    _csv(tmp_path / "landmarks.csv", rows)
    cfg = DataConfig(source="folder", root=str(tmp_path), test_limit=2)
    train, test = build_datasets(cfg, seed=0)
    assert train.ids == ["t0", "t1"] and train.landmark_names == ("p", "q")
    assert train[1].landmarks is None and train[0].spacing_mm is None  # unknown: errors in px
    assert isinstance(test, SubsetDataset) and test.ids == ["s0", "s1"]
    np.testing.assert_allclose(test[1].landmarks, [[1, 1], [1, 1]])


def test_build_phantom_and_unknown_source():
    cfg = DataConfig(source="phantom", phantom_train=3, phantom_test=2, phantom_landmarks=4, phantom_size=64)
    train, test = build_datasets(cfg, seed=1)
    assert isinstance(train, PhantomDataset) and train.ids == ["train_000", "train_001", "train_002"]
    assert test.ids == ["test_000", "test_001"]
    with pytest.raises(ValueError, match="'dicom'"):
        build_datasets(DataConfig(source="dicom"), seed=0)


def test_symlinked_split_keeps_its_labels(tmp_path):
    """train/ and test/ of links to the images (a split without copies): rows are matched by the
    link's own path, never its target."""
    store = tmp_path / "all"
    for name, value in (("a", 10), ("b", 20), ("c", 30)):
        _image(store / f"{name}.png", value)
    for split, names in (("train", "ab"), ("test", "c")):
        (tmp_path / split).mkdir()
        for n in names:
            (tmp_path / split / f"{n}.png").symlink_to(store / f"{n}.png")
    _csv(tmp_path / "landmarks.csv", ["train/a.png,p,1,2", "train/b.png,p,3,4", "test/c.png,p,5,6"])
    train = FolderDataset(tmp_path / "train", tmp_path / "landmarks.csv", 1.0)
    test = FolderDataset(tmp_path / "test", tmp_path / "landmarks.csv", 1.0)
    assert train.labelled_ids == ["a", "b"] and test.labelled_ids == ["c"]
    np.testing.assert_allclose(test[0].landmarks, [[5, 6]])
    assert test.image_ref(0) == "test/c.png"  # predictions name the file as the CSV does


@pytest.mark.parametrize("x,y", [(5000, 3), (2, -300), (W - 0.4, 3), (2, H)])
def test_landmark_outside_its_image_is_refused(tmp_path, x, y):
    message = _error(tmp_path, ["a.png,tip,1,2", f"a.png,base,{x},{y}", "b.jpg,base,5,6", "b.jpg,tip,7,8"])
    assert "'a.png'" in message and "'base'" in message and f"{W} x {H}" in message and "outside" in message


def test_image_edges_are_inside(tmp_path):
    root = make_folder(tmp_path)
    _csv(root / "landmarks.csv", ["a.png,tip,-0.5,-0.5", f"a.png,base,{W - 0.5},{H - 0.5}"])
    assert FolderDataset(root, None, 1.0).labelled_ids == ["a"]


def test_names_differing_only_in_case_are_refused(tmp_path):
    message = _error(tmp_path, ["a.png,Tip,1,2", "a.png,tip,3,4"])
    assert "'tip' differs from 'Tip' only in case" in message


def test_latin1_and_header_only_csvs_name_the_file(tmp_path):
    root = make_folder(tmp_path)
    (root / "landmarks.csv").write_bytes("image,landmark,x,y\na.png,naso\xe9,1,2\n".encode("latin-1"))
    with pytest.raises(ValueError, match="landmarks.csv: not UTF-8"):
        FolderDataset(root, None, 1.0)
    assert "no landmark rows" in _error(tmp_path, [])


def test_twelve_bit_data_in_sixteen_bit_files_is_scaled_with_a_warning(tmp_path):
    path = tmp_path / "xray.png"
    Image.fromarray(np.full((H, W), 4095 // 2, np.uint16)).save(path)
    with pytest.warns(UserWarning, match="xray.png: 16-bit values reach only 2047; read as 12-bit"):
        img = read_grayscale(path)
    assert abs(float(img[0, 0]) - 0.5) < 1e-3


def test_spacing_from_the_config_or_a_csv_column_else_pixels(tmp_path):
    from cc2dkit.data.grid import GridImages

    root = make_folder(tmp_path)
    assert FolderDataset(root, None).spacing_of(0) is None
    grid = GridImages(FolderDataset(root, None), 32, "x", progress=False)
    assert grid.unit == "px" and (grid.scale == 1).all()
    assert GridImages(FolderDataset(root, None, 0.1), 32, "x", progress=False).unit == "mm"
    _csv(root / "landmarks.csv", ["a.png,tip,1,2,0.2", "a.png,base,3.5,4,0.2", "b.jpg,base,5,6,0.3",
                                  "b.jpg,tip,7,8,0.3"], header="image,landmark,x,y,spacing_mm")
    ds = FolderDataset(root, None)
    assert [ds.spacing_of(i) for i in range(3)] == [0.2, 0.3, None] and ds[1].spacing_mm == 0.3
    grid = GridImages(SubsetDataset(ds, ["a", "b"]), 32, "x", progress=False)
    assert grid.unit == "mm" and list(grid.scale) == [0.2, 0.3]
    with pytest.raises(ValueError, match="spacing_mm=0.4 .* differs"):
        _csv(root / "landmarks.csv", ["a.png,tip,1,2,0.2", "a.png,base,3.5,4,0.4"],
             header="image,landmark,x,y,spacing_mm")
        FolderDataset(root, None)

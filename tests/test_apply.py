"""A finished run applied to your own images: a folder of any sizes, your own template, no retraining."""
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cc2dkit.cli import main
from cc2dkit.data.folder import write_image_rows
from cc2dkit.inference import RefinedPredictor
from cc2dkit.methods import load_predictor, predict_folder, run_method, user_template
from cc2dkit.methods.apply import evaluate_predictor, load_run

from .conftest import phantom_grids, tiny_cfg


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A plain (multi), a C-Adapter and a plain run with a fine stage on the phantom, and a folder of
    test images as PNGs."""
    root = tmp_path_factory.mktemp("apply")
    cfg = tiny_cfg(**{"train.epochs": 1})
    data = phantom_grids(cfg)
    for name in ("multi", "adapter"):
        run_method(cfg.replace(**{"method.name": name, "method.adapter_channels": 2}), root / name, data,
                   progress=False)
    run_method(cfg.replace(**{"method.name": "multi", "refine.enabled": True, "refine.scale": 2, "refine.crop": 64,
                              "refine.steps_per_epoch": 2}), root / "fine", data, progress=False)
    images = root / "images"
    images.mkdir()
    for i in range(len(data[1])):
        s = data[1].dataset[i]
        pixels = Image.fromarray((s.image * 255).round().astype(np.uint8))
        pixels.save(images / f"{s.id}.png")
        pixels.resize((2 * s.image.shape[1], 2 * s.image.shape[0]), Image.BILINEAR).save(images / f"{s.id}_x2.png")
    template = data[0].dataset[data[0].index(cfg.data.template)]
    Image.fromarray((template.image * 255).round().astype(np.uint8)).save(root / "mine.png")
    return root, data, template


def test_images_of_another_size_are_answered_in_their_own_pixels(runs):
    root, data, _ = runs
    images, pred, predictor = predict_folder(root / "multi", root / "images", progress=False)
    assert images.ids == ["test_000", "test_000_x2", "test_001", "test_001_x2"]
    assert pred.shape == (4, 5, 2) and predictor.landmark_names == list(data[1].landmark_names)
    assert not images.labelled.any()
    # the x2 copy: the same answers in pixels twice as small (resampling may move an ambiguous one)
    for small, big in ((0, 1), (2, 3)):
        close = np.abs(pred[big] - (2 * pred[small] + 0.5)).max(axis=1) <= 2 * 128 / 64  # one grid cell
        assert close.sum() >= 4, pred[[small, big]]


def test_your_own_template_from_a_csv(runs, tmp_path):
    root, data, template = runs
    csv = tmp_path / "landmarks.csv"
    names = list(data[0].landmark_names)
    # the user's own annotation, names in another case and order, two landmarks only
    write_image_rows(csv, "mine.png", {names[2].upper(): tuple(template.landmarks[2]),
                                       names[0].lower(): tuple(template.landmarks[0])})
    mine = user_template(root / "mine.png", csv, 64)
    assert mine.names == (names[2].upper(), names[0].lower())
    _, pred, predictor = predict_folder(root / "multi", root / "images", mine, progress=False)
    assert predictor.landmark_names == list(mine.names) and pred.shape == (4, 2, 2)  # a plain model: any landmarks
    _, own, _ = predict_folder(root / "multi", root / "images", progress=False)
    # the same landmarks, the same places: within a grid px (128 / 64) on most images; this tiny model's
    # near-ties may put one answer a few grid px off when the template comes back from a PNG (an AMX machine)
    for mine_k, own_k in ((1, 0), (0, 2)):
        gap = np.abs(pred[:, mine_k] - own[:, own_k]).max(axis=1)
        assert np.median(gap) <= 128 / 64 and gap.max() <= 3 * 128 / 64, (mine_k, gap)
    with pytest.raises(ValueError, match="the template has no landmark.*'P2'"):  # adapters are per landmark
        predict_folder(root / "adapter", root / "images", mine, progress=False)
    write_image_rows(csv, "mine.png", {n: tuple(xy) for n, xy in zip(names, template.landmarks)})
    _, pred, predictor = predict_folder(root / "adapter", root / "images", user_template(root / "mine.png", csv, 64),
                                        progress=False)
    assert predictor.landmark_names == names and np.isfinite(pred).all()


def test_the_command_line_writes_predictions_and_overlays(runs, tmp_path, capsys):
    root, data, template = runs
    csv = tmp_path / "t.csv"
    write_image_rows(csv, "mine.png", {n: tuple(xy) for n, xy in zip(data[0].landmark_names, template.landmarks)})
    out = tmp_path / "out"
    assert main(["predict", "--run", str(root / "adapter"), "--images", str(root / "images"), "--template",
                 str(root / "mine.png"), "--template-csv", str(csv), "--output", str(out), "--no-progress"]) == 0
    frame = pd.read_csv(out / "predictions.csv")
    assert list(frame.columns) == ["image", "landmark", "x", "y"] and len(frame) == 4 * 5
    assert set(frame["image"]) == {"test_000.png", "test_000_x2.png", "test_001.png", "test_001_x2.png"}
    assert sorted(p.name for p in out.glob("*.png")) == ["test_000.png", "test_000_x2.png", "test_001.png",
                                                         "test_001_x2.png"]
    assert main(["evaluate", "--run", str(root / "adapter"), "--images", str(root / "images")]) == 2


def test_another_runs_fine_stage_in_the_folder_path_and_the_command_line(runs, tmp_path, capsys):
    root, _, _ = runs
    _, plain, _ = predict_folder(root / "adapter", root / "images", progress=False)
    _, pred, predictor = predict_folder(root / "adapter", root / "images", progress=False, fine_from=root / "fine")
    assert isinstance(predictor, RefinedPredictor) and predictor.coarse.landmark_specific
    assert np.isfinite(pred).all() and not np.array_equal(pred, plain)
    run = tmp_path / "adapter"
    shutil.copytree(root / "adapter", run)
    before = pd.read_csv(run / "evaluation_test.csv", index_col=0)
    assert main(["evaluate", "--run", str(run), "--fine-from", str(root / "fine"), "--no-progress"]) == 0
    assert not pd.read_csv(run / "evaluation_test.csv", index_col=0).equals(before)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--fine-from", str(root / "multi"), "--no-progress"]) == 1
    assert "multi: its model has no fine stage" in capsys.readouterr().err
    assert main(["train", "--preset", "smoke", "--out", str(tmp_path / "t"), "--fine-from", str(run)]) == 2
    assert "--fine-from goes with predict or evaluate" in capsys.readouterr().err


def test_a_model_file_without_landmark_names_takes_another_template_by_position(runs, tmp_path):
    root, data, template = runs
    import shutil

    import torch

    old = tmp_path / "old"
    shutil.copytree(root / "adapter", old)
    state = torch.load(old / "model.pt", weights_only=False)
    del state["template_names"], state["template_original"]  # as written before names were stored
    torch.save(state, old / "model.pt")
    csv = tmp_path / "t.csv"
    write_image_rows(csv, "mine.png", {n: tuple(xy) for n, xy in zip(data[0].landmark_names, template.landmarks)})
    mine = user_template(root / "mine.png", csv, 64)
    _, pred, predictor = predict_folder(old, root / "images", mine, progress=False)
    _, named, _ = predict_folder(root / "adapter", root / "images", mine, progress=False)
    assert predictor.landmark_names == list(data[0].landmark_names) and np.array_equal(pred, named)
    scores = evaluate_predictor(load_predictor(old), data[1])  # matched by index, not by name
    assert scores.equals(evaluate_predictor(load_predictor(root / "adapter"), data[1]))
    with pytest.raises(ValueError, match="no ground truth for landmark.*'Q1'"):
        evaluate_predictor(load_predictor(root / "multi").with_template(  # a plain model: any landmark names
            type(mine)(mine.image, mine.points[:1], None, ("Q1",))), data[1])
    with pytest.raises(ValueError, match="the template has 2 landmarks; this model predicts landmark indices"):
        predict_folder(old, root / "images", mine.subset(["P1", "P2"]), progress=False)


def test_load_run_gives_the_predictor_with_its_template_original_and_the_test_split(runs):
    root, data, template = runs
    predictor, test = load_run(root / "adapter")
    assert test.ids == data[1].ids and predictor.template.original is not None
    np.testing.assert_array_equal(predictor.template.original, template.image)
    np.testing.assert_allclose(predictor.predict_grid(test), load_predictor(root / "adapter").predict_grid(test))
    copies = predictor.configured(True, 2)  # template copies need the original image: they run
    assert copies.predict_grid(test).shape == (len(test), 5, 2)
    _, train = load_run(root / "adapter", split="train")  # the unlabelled training images: all but the template
    assert train.ids == [i for i in data[0].ids if i != template.id] and len(train) == len(data[0]) - 1
    with pytest.raises(ValueError, match="split must be 'test' or 'train'"):
        load_run(root / "adapter", split="val")
    with pytest.raises(ValueError, match="adapter: its model has no fine stage"):
        load_run(root / "adapter", refined=True)  # what the fine stage's benchmarks ask for
    assert isinstance(load_run(root / "fine", refined=True)[0], RefinedPredictor)
    assert isinstance(load_run(root / "adapter", fine_from=root / "fine", refined=True)[0], RefinedPredictor)

"""Bad input through the command line: every kind gets a non-zero exit, one line naming the problem,
no traceback (without --debug), and leaves the run folder as it was.

The data: a tiny folder dataset (train/, test/, landmarks.csv) written from the phantom; a run
folder trained on it once per module (one epoch, one step).
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cc2dkit.cli import main
from cc2dkit.config import DataConfig
from cc2dkit.data import make_phantom_splits

TINY = ["--set", "data.grid=64", "--set", "net.embed_dim=8", "--set", "net.decoder_widths=8,8,8,8,8",
        "--set", "train.epochs=1", "--set", "train.steps_per_epoch=1", "--set", "train.batch_size=2",
        "--no-progress"]


def write_folder(root: Path) -> Path:
    """Phantom images as PNGs in train/ and test/, one landmarks.csv for both."""
    train, test = make_phantom_splits(DataConfig(phantom_train=4, phantom_test=2, phantom_landmarks=3,
                                                 phantom_size=96), seed=0)
    rows = ["image,landmark,x,y"]
    for split, ds in (("train", train), ("test", test)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(len(ds)):
            s = ds[i]
            Image.fromarray((s.image * 255).astype(np.uint8)).save(root / split / f"{s.id}.png")
            rows += [f"{split}/{s.id}.png,{name},{x:.2f},{y:.2f}" for name, (x, y) in zip(ds.landmark_names, s.landmarks)]
    (root / "landmarks.csv").write_text("\n".join(rows) + "\n")
    return root


def folder_args(root: Path) -> list[str]:
    return ["--set", "data.source=folder", "--set", f"data.root={root}", "--set", "data.template=train_000", *TINY]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    torch.manual_seed(0)
    assert main(["train", "--preset", "smoke", "--out", str(run), *folder_args(data)]) == 0
    return run


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.exists() else {}


def fails(args: list[str], capsys, code: int, *needles: str, folder: Path | None = None) -> str:
    """Run the CLI; it must exit with ``code``, print one line on stderr holding every needle, and
    leave ``folder`` unchanged."""
    before = snapshot(folder) if folder is not None else None
    assert main(args) == code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    if folder is not None:
        assert snapshot(folder) == before
    return lines[0]


def copy_run(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


# -- usage (exit 2) ----------------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["trian"], "invalid choice: 'trian'"),
    (["train", "--set", "train.epochs"], "--set expects KEY=VALUE"),
    (["train", "--epochs", "3"], "unrecognized arguments: --epochs"),
    (["train", "--method", "nope"], "invalid choice: 'nope'"),
    (["predict", "--preset", "smoke", "--run", "x"], "--preset does not apply"),
])
def test_usage_errors(args, needle, capsys):
    fails(args, capsys, 2, needle)


# -- the config (exit 1, before any work) -------------------------------------------------------

@pytest.mark.parametrize("setting,needle", [
    ("train.epochs=abc", "train.epochs"), ("train.epochs=-2", "train.epochs=-2"),
    ("train.batch_size=0", "train.batch_size=0"), ("net.embed_dim=0", "net.embed_dim=0"),
    ("train.patch_frac=2", "train.patch_frac=2"), ("data.grid=-64", "data.grid=-64"),
    ("data.grid=100", "multiple of 32"), ("eval.batch_size=0", "eval.batch_size=0"),
    ("nope.key=1", "unknown config key 'nope.key'"), ("train.lr=-1", "train.lr=-1"),
    ("method.landmarks=Foo", "unknown landmark 'Foo'"), ("backbone.weights=/no/such.pth", "/no/such.pth"),
])
def test_config_errors_name_the_key(setting, needle, capsys, tmp_path, data):
    out = tmp_path / "new"
    fails(["train", "--out", str(out), *folder_args(data), "--set", setting], capsys, 1, needle)
    assert not out.exists() or not list(out.iterdir())  # nothing written


# -- the data (exit 1, before any training) ----------------------------------------------------

def _broken(data: Path, tmp_path: Path, edit) -> Path:
    root = tmp_path / "data"
    shutil.copytree(data, root)
    edit(root)
    return root


def _rewrite_csv(fn):
    def edit(root: Path):
        lines = (root / "landmarks.csv").read_text().splitlines()
        (root / "landmarks.csv").write_text("\n".join(fn(lines)) + "\n")
    return edit


DATA_CASES = {
    "missing csv": (lambda root: (root / "landmarks.csv").unlink(), ["landmark CSV not found"]),
    "header lacks x": (_rewrite_csv(lambda ls: ["image,landmark,xx,y"] + ls[1:]), ["lacks column(s) ['x']"]),
    "not a number": (_rewrite_csv(lambda ls: ls[:1] + [ls[1].rsplit(",", 2)[0] + ",abc,3"] + ls[2:]),
                     ["line 2", "x='abc'"]),
    "duplicated row": (_rewrite_csv(lambda ls: ls + [ls[1]]), ["duplicated row"]),
    "case clash": (_rewrite_csv(lambda ls: ls + [ls[1].replace(",P1,", ",p1,")]), ["only in case"]),
    "latin-1": (lambda root: (root / "landmarks.csv").write_bytes(
        (root / "landmarks.csv").read_text().replace("P1", "P\xe9").encode("latin-1")), ["not UTF-8"]),
    "header only": (_rewrite_csv(lambda ls: ls[:1]), ["no landmark rows"]),
    "missing image": (_rewrite_csv(lambda ls: ls + ["train/nope.png,P1,1,1"]), ["'train/nope.png' not found"]),
    "outside the image": (_rewrite_csv(lambda ls: [ln.replace(ln.split(",")[2], "5000", 1)
                                                   if ln.startswith("train/train_000.png,P2") else ln for ln in ls]),
                          ["train_000.png", "'P2'", "outside the image", "96 x 96"]),
    "template incomplete": (_rewrite_csv(lambda ls: [ln for ln in ls if not ln.startswith("train/train_000.png,P3")]),
                            ["train_000.png", "missing ['P3']"]),
    "unreadable image": (lambda root: (root / "train" / "train_001.png").write_bytes(b"not a png"),
                         ["cannot read image", "train_001.png"]),
    "no data folder": (lambda root: shutil.rmtree(root), ["data folder not found"]),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_data_errors_name_the_file(case, capsys, tmp_path, data):
    edit, needles = DATA_CASES[case]
    root = _broken(data, tmp_path, edit)
    out = tmp_path / "new"
    fails(["train", "--out", str(out), *folder_args(root)], capsys, 1, *needles)
    assert not out.exists()


def test_unknown_template(capsys, tmp_path, data):
    fails(["train", "--out", str(tmp_path / "new"), *folder_args(data), "--set", "data.template=nope"],
          capsys, 1, "image id 'nope' is not in this dataset")


def test_cuda_asked_for_without_cuda(capsys, tmp_path, data):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    fails(["train", "--out", str(tmp_path / "new"), *folder_args(data), "--set", "device=cuda"], capsys, 1,
          "CUDA is not available")


# -- run folders (exit 1; the folder unchanged) ---------------------------------------------------

def test_predict_on_what_is_not_a_finished_run(capsys, tmp_path, trained):
    fails(["predict", "--run", str(tmp_path)], capsys, 1, "not a run folder (no config.json)")
    run = copy_run(trained, tmp_path)
    (run / "model.pt").unlink()
    fails(["predict", "--run", str(run)], capsys, 1, "no model.pt", "has not finished", folder=run)


def test_damaged_model_files(capsys, tmp_path, trained):
    run = copy_run(trained, tmp_path)
    (run / "model.pt").write_bytes((run / "model.pt").read_bytes()[:100])
    fails(["evaluate", "--run", str(run)], capsys, 1, "cannot read cc2dkit model file", folder=run)
    torch.save({"format": "someone-else"}, run / "model.pt")
    fails(["evaluate", "--run", str(run)], capsys, 1, "is not a cc2dkit model file", "'someone-else'", folder=run)


@pytest.mark.parametrize("setting,needle", [
    ("data.grid=128", "data.grid=64"), ("net.embed_dim=16", "net.embed_dim=8"),
    ("method.name=adapter", "method.name='cc2d'"),
])
def test_predict_refuses_a_config_that_changes_the_weights_meaning(setting, needle, capsys, tmp_path, trained):
    run = copy_run(trained, tmp_path)
    fails(["predict", "--run", str(run), "--set", setting], capsys, 1, needle, "misuse its weights", folder=run)


@pytest.mark.parametrize("setting,needle", [
    ("net.embed_dim=16", "net.embed_dim: 8 -> 16"), ("train.lr=0.5", "train.lr: 0.001 -> 0.5"),
    ("data.grid=128", "data.grid: 64 -> 128"), ("train.epochs=0", "train.epochs=0"),
])
def test_resume_refuses_another_config_and_keeps_the_run(setting, needle, capsys, tmp_path, trained):
    run = copy_run(trained, tmp_path)
    fails(["train", "--run", str(run), "--resume", "--no-progress", "--set", setting], capsys, 1, needle, folder=run)


def test_resume_with_fewer_epochs_than_trained(capsys, tmp_path, trained):
    run = copy_run(trained, tmp_path)
    assert main(["train", "--run", str(run), "--resume", "--no-progress", "--set", "train.epochs=2"]) == 0
    capsys.readouterr()
    fails(["train", "--run", str(run), "--resume", "--no-progress", "--set", "train.epochs=1"], capsys, 1,
          "holds epoch 2", "train.epochs >= 2", folder=run)


def test_resume_with_nothing_saved_and_a_damaged_checkpoint(capsys, tmp_path, trained):
    fails(["train", "--run", str(tmp_path / "empty"), "--resume"], capsys, 1, "nothing to resume")
    run = copy_run(trained, tmp_path)
    (run / "checkpoint.pt").unlink()
    fails(["train", "--run", str(run), "--resume"], capsys, 1, "no checkpoint.pt", folder=run)
    run2 = copy_run(trained, tmp_path / "b")
    (run2 / "checkpoint.pt").write_bytes(b"garbage")
    fails(["train", "--run", str(run2), "--resume"], capsys, 1, "cannot read cc2dkit checkpoint", folder=run2)


def test_a_new_run_never_overwrites_a_run_folder(capsys, tmp_path, trained, data):
    run = copy_run(trained, tmp_path)
    fails(["train", "--preset", "smoke", "--out", str(run), *folder_args(data)], capsys, 1,
          "already holds a run", "--resume", folder=run)


def test_evaluate_an_unlabelled_split(capsys, tmp_path, trained, data):
    root = _broken(data, tmp_path, _rewrite_csv(lambda ls: [ln for ln in ls if not ln.startswith("test/")]))
    run = copy_run(trained, tmp_path)
    fails(["evaluate", "--run", str(run), "--no-progress", "--set", f"data.root={root}"], capsys, 1,
          "without ground truth",
          "predict", folder=run)


def test_debug_shows_the_traceback(tmp_path, data):
    with pytest.raises(ValueError, match="train.epochs=-2"):
        main(["train", "--out", str(tmp_path / "new"), *folder_args(data), "--set", "train.epochs=-2", "--debug"])


def test_ctrl_c_says_how_to_resume(capsys, tmp_path, trained, monkeypatch):
    import cc2dkit.cli as cli

    run = copy_run(trained, tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_method", interrupted)
    assert main(["train", "--run", str(run), "--resume", "--set", "train.epochs=3"]) == 130
    err = capsys.readouterr().err
    assert f"the last checkpoint is {run / 'checkpoint.pt'} (epoch 1)" in err
    assert f"python -m cc2dkit train --run {run} --resume" in err and "Traceback" not in err


def test_an_unlabelled_test_split_trains_and_predicts(capsys, tmp_path, data):
    """Labels only for the template: training, then predictions of the test split, no evaluation."""
    root = _broken(data, tmp_path, _rewrite_csv(lambda ls: [ln for ln in ls if not ln.startswith("test/")]))
    run = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--out", str(run), *folder_args(root)]) == 0
    assert (run / "predictions_test.csv").exists() and not (run / "evaluation_test.csv").exists()
    assert "test/test_000.png" in (run / "predictions_test.csv").read_text()

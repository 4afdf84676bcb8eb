"""A workspace for your own images: the folder dataset the kit trains on, made from a plain folder.

The ``"folder"`` source wants ``ROOT/train/``, ``ROOT/test/`` and ``ROOT/landmarks.csv``.
:func:`make_workspace` builds that from what a user has: a folder of images and, maybe, a CSV of
the landmarks they placed (the template's, and perhaps others'). Every image goes into ``train/``
(the unlabelled images training learns from) and ``test/`` (the images predicted) as a symbolic
link, so nothing is copied; the CSV's rows are rewritten with ``train/`` and ``test/`` image paths.
Without a folder, the embedded phantom is written out as PNGs (the default of notebook 07).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..config import DataConfig
from .folder import CSV_COLUMNS, DEFAULT_CSV_NAME, read_image_rows
from .imageio import list_images, read_grayscale
from .phantom import make_phantom_splits


@dataclass
class Workspace:
    root: Path  # holds train/, test/ and landmarks.csv: data.source="folder", data.root=root
    images: list[str]  # image ids (file stems), sorted
    template: str  # id of the template image
    names: list[str]  # the landmark names
    csv: Path  # root / landmarks.csv

    def image(self, image_id: str) -> np.ndarray:
        """An image (H, W) at its own resolution."""
        return read_grayscale(next(p for p in (self.root / "train").iterdir() if p.stem == image_id))

    def ref(self, image_id: str, split: str = "train") -> str:
        """How the workspace's CSV names an image, e.g. ``train/005.png``."""
        return f"{split}/{next(p.name for p in (self.root / split).iterdir() if p.stem == image_id)}"

    def template_points(self) -> dict[str, tuple[float, float]]:
        """The template's landmarks placed so far (``{name: (x, y)}``)."""
        return read_image_rows(self.csv, self.ref(self.template))


def make_workspace(root: str | Path, images: str | Path | None = None, csv: str | Path | None = None,
                   template: str | None = None, names: list[str] | None = None) -> Workspace:
    """The folder dataset of ``images`` (a folder; None: the phantom) under ``root``.

    ``csv``: landmarks already placed (the folder format; image names relative to the CSV's folder
    or bare file names); ``template``: the id of the image to annotate (default: the first
    image with rows in the CSV, else the first image); ``names``: the landmarks (default: the CSV's).
    An existing workspace CSV (annotations made earlier) is kept.
    """
    root = Path(root)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
    if images is None:
        return _phantom(root, template)
    files = list_images(Path(images))
    if not files:
        raise FileNotFoundError(f"no images in {images}")
    for split in ("train", "test"):
        for stem, path in files.items():
            link = root / split / path.name
            if not link.exists():
                os.symlink(path.resolve(), link)
    rows = _rows_of(csv, files) if csv is not None else pd.DataFrame(columns=list(CSV_COLUMNS))
    target = root / DEFAULT_CSV_NAME
    if not target.exists() and len(rows):
        pd.concat([rows.assign(image="train/" + rows["image"]), rows.assign(image="test/" + rows["image"])]
                  ).to_csv(target, index=False)
    labelled = list(dict.fromkeys(Path(v).stem for v in rows["image"]))
    chosen = template or (labelled[0] if labelled else next(iter(files)))
    if chosen not in files:
        raise KeyError(f"template {chosen!r} is not an image of {images} (images: {list(files)[:5]}, ...)")
    names = list(names) if names is not None else list(dict.fromkeys(rows["landmark"]))
    return Workspace(root, sorted(files), chosen, names, target)


def _rows_of(csv: str | Path, files: dict[str, Path]) -> pd.DataFrame:
    """The CSV's rows with each image named by its file name in the folder (the CSV may give a
    path, or the name without its extension)."""
    frame = pd.read_csv(csv, dtype={"image": str, "landmark": str})
    unknown = sorted({v for v in frame["image"] if Path(v).stem not in files})
    if unknown:
        raise ValueError(f"{csv} names images that are not in the folder: {unknown[:5]}")
    frame["image"] = [files[Path(v).stem].name for v in frame["image"]]
    return frame[list(CSV_COLUMNS)]


def _phantom(root: Path, template: str | None) -> Workspace:
    """The phantom as PNGs: 6 + 4 images, 5 landmarks, all in ``train/``, the 4 ``test_*`` also in
    ``test/``. The CSV holds the template's landmarks and those of the test images (to score the
    predictions, and to try one of them as another template)."""
    train, test = make_phantom_splits(DataConfig(phantom_train=6, phantom_test=4, phantom_landmarks=5,
                                                 phantom_size=256), seed=0)
    template = template or train.ids[0]
    rows, samples = [], [train[i] for i in range(len(train))] + [test[i] for i in range(len(test))]
    for s in samples:
        for split in ("train", "test") if s.id.startswith("test") else ("train",):
            path = root / split / f"{s.id}.png"
            if not path.exists():
                Image.fromarray((s.image * 255).round().astype(np.uint8)).save(path)
            if s.id.startswith("test") or s.id == template:
                rows += [(f"{split}/{s.id}.png", n, round(x, 2), round(y, 2))
                         for n, (x, y) in zip(train.landmark_names, s.landmarks)]
    target = root / DEFAULT_CSV_NAME
    if not target.exists():
        pd.DataFrame(rows, columns=list(CSV_COLUMNS)).to_csv(target, index=False)
    return Workspace(root, sorted(s.id for s in samples), template, list(train.landmark_names), target)

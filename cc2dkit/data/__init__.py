"""Datasets: the ISBI 2015 cephalograms, a user's image folder + CSV, and the built-in phantom.

All sources implement :class:`LandmarkDataset` (original-resolution images, landmarks in
original pixels with pixel centres at integers). :func:`build_datasets` picks one from a
:class:`~cc2dkit.config.DataConfig`.
"""
from __future__ import annotations

from pathlib import Path

from ..config import DataConfig
from .base import LandmarkDataset, Sample, SubsetDataset
from .folder import DEFAULT_CSV_NAME, FolderDataset, ImageFolder, landmarks_frame
from .imageio import list_images, read_grayscale
from .isbi import ISBI_LANDMARKS, ISBIDataset, resolve_isbi_root
from .landmarks import LandmarkNotFound, landmark_index, resolve_landmarks
from .phantom import PhantomDataset, make_phantom_splits

FOLDER_TRAIN = "train"
FOLDER_TEST = "test"

__all__ = [
    "Sample",
    "LandmarkDataset",
    "SubsetDataset",
    "ISBIDataset",
    "ISBI_LANDMARKS",
    "resolve_isbi_root",
    "FolderDataset",
    "ImageFolder",
    "LandmarkNotFound",
    "landmark_index",
    "landmarks_frame",
    "list_images",
    "read_grayscale",
    "resolve_landmarks",
    "PhantomDataset",
    "make_phantom_splits",
    "build_datasets",
]


def build_datasets(cfg: DataConfig, seed: int) -> tuple[LandmarkDataset, LandmarkDataset]:
    """The (train, test) datasets that ``cfg`` describes.

    - ``"phantom"``: :func:`make_phantom_splits` (``seed`` drives the per-image randomness; the
      split names are always ``train`` / ``test``, ``cfg.train_split``/``test_split`` unused).
    - ``"isbi"``: :class:`ISBIDataset` splits ``cfg.train_split`` and ``cfg.test_split`` under
      :func:`resolve_isbi_root` ``(cfg.root)``.
    - ``"folder"``: ``cfg.root`` holds ``train/`` and ``test/`` image folders and one CSV covering
      both (``cfg.csv``, default ``<root>/landmarks.csv``; its image names are relative to the
      CSV's folder, e.g. ``train/001.png``). The pixel spacing is ``cfg.spacing_mm`` or a
      ``spacing_mm`` column of the CSV; without either, errors are in pixels (labelled px).

    When ``cfg.test_limit`` is set, the test set is restricted to its first ``test_limit`` ids.
    """
    if cfg.source == "phantom":
        train, test = make_phantom_splits(cfg, seed)
    elif cfg.source == "isbi":
        root = resolve_isbi_root(cfg.root)
        train = ISBIDataset(root, cfg.train_split)
        test = ISBIDataset(root, cfg.test_split)
    elif cfg.source == "folder":
        if cfg.root is None:
            raise ValueError("data.source 'folder' needs data.root: a folder holding train/ and "
                             f"test/ image folders and {DEFAULT_CSV_NAME}")
        root = Path(cfg.root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"data folder not found: {root} (data.root)")
        csv_path = Path(cfg.csv).expanduser() if cfg.csv is not None else root / DEFAULT_CSV_NAME
        train = FolderDataset(root / FOLDER_TRAIN, csv_path, cfg.spacing_mm)
        test = FolderDataset(root / FOLDER_TEST, csv_path, cfg.spacing_mm)
    else:
        raise ValueError(f"unknown data source {cfg.source!r}; choose 'phantom', 'isbi' or 'folder'")
    if cfg.test_limit is not None:
        if cfg.test_limit < 1:
            raise ValueError(f"data.test_limit must be >= 1 or None, got {cfg.test_limit}")
        test = SubsetDataset(test, test.ids[: cfg.test_limit])
    return train, test

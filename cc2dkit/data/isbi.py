"""The ISBI 2015 cephalometric landmark dataset (Wang et al., Medical Image Analysis 2016).

Layout under the dataset root (the original release layout; any of the image extensions)::

    RawImage/TrainingData/001.bmp ... 150.bmp     split "train"
    RawImage/Test1Data/151.bmp ... 300.bmp        split "test1"
    RawImage/Test2Data/301.bmp ... 400.bmp        split "test2"
    AnnotationsByMD/400_senior/NNN.txt            19 lines "x,y" (senior doctor)
    AnnotationsByMD/400_junior/NNN.txt            same (junior doctor)

The ground truth is the float mean of the two doctors' coordinates. Annotation files may carry
further (classification) lines after the 19 coordinates; they are ignored. Images are 1935 x 2400
pixels (W x H) at 0.1 mm per pixel and are loaded lazily, one per ``__getitem__``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..config import ISBI_ROOT_ENV
from ..paths import candidates
from .base import LandmarkDataset, Sample
from .imageio import IMAGE_EXTENSIONS, image_size, list_images, read_grayscale
from .landmarks import check_inside

ISBI_LANDMARKS: tuple[str, ...] = (
    "sella",
    "nasion",
    "orbitale",
    "porion",
    "subspinale",
    "supramentale",
    "pogonion",
    "menton",
    "gnathion",
    "gonion",
    "lower incisal incision",
    "upper incisal incision",
    "upper lip",
    "lower lip",
    "subnasale",
    "soft tissue pogonion",
    "posterior nasal spine",
    "anterior nasal spine",
    "articulare",
)
ISBI_SPACING_MM = 0.1
# split -> (image folder under RawImage, first id, last id)
ISBI_SPLITS: dict[str, tuple[str, int, int]] = {
    "train": ("TrainingData", 1, 150),
    "test1": ("Test1Data", 151, 300),
    "test2": ("Test2Data", 301, 400),
}
ISBI_ANNOTATORS = ("400_senior", "400_junior")


def resolve_isbi_root(root: str | os.PathLike | None) -> Path:
    """Find the ISBI dataset folder.

    Uses ``root`` when given, else the ``CC2DKIT_ISBI_ROOT`` environment variable. A relative
    path is tried against the current directory, then against the project root (the folder that
    holds the ``cc2dkit`` package). A candidate counts when it is a folder holding ``RawImage/``.
    Raises ``FileNotFoundError`` saying which paths were tried and how to set the root.
    """
    how = (f"set data.root to the dataset folder or set the environment variable "
           f"{ISBI_ROOT_ENV}; it must hold RawImage/ and AnnotationsByMD/")
    if root is None or str(root) == "":
        root = os.environ.get(ISBI_ROOT_ENV) or None
        origin = f"${ISBI_ROOT_ENV}"
        if root is None:
            raise FileNotFoundError(f"no ISBI 2015 dataset folder given: {how}")
    else:
        origin = "the given root"
    tried_paths = candidates(root)
    for cand in tried_paths:
        if (cand / "RawImage").is_dir():
            return cand.resolve()
    tried = "; ".join(
        f"{c} ({'exists but has no RawImage/ folder' if c.is_dir() else 'not found'})"
        for c in tried_paths)
    raise FileNotFoundError(f"ISBI 2015 dataset not found from {origin} {str(root)!r}; "
                            f"tried: {tried}. To fix: {how}")


def read_isbi_annotation(path: Path) -> np.ndarray:
    """The first 19 lines of an ISBI annotation file as a (19, 2) float64 array.

    Each line is ``x,y`` (integers or floats, whitespace tolerated); later lines are ignored.
    Raises ``ValueError`` naming the file, the 1-based line number and its content.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig", errors="replace")
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file not found: {path}") from None
    n_landmarks = len(ISBI_LANDMARKS)
    lines = text.splitlines()
    if len(lines) < n_landmarks:
        raise ValueError(f"{path}: expected {n_landmarks} coordinate lines 'x,y', found only "
                         f"{len(lines)} lines (line {len(lines) + 1} is missing)")
    out = np.empty((n_landmarks, 2), dtype=np.float64)
    for k in range(n_landmarks):
        line = lines[k]
        parts = line.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            xy = [float(p.strip()) for p in parts]
            if not all(math.isfinite(v) for v in xy):
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}, line {k + 1}: expected 'x,y' with two numbers, got "
                             f"{line!r}") from None
        out[k] = xy
    return out


class ISBIDataset(LandmarkDataset):
    """One split of ISBI 2015: ``"train"`` (001-150), ``"test1"`` (151-300), ``"test2"`` (301-400).

    Args:
        root: the dataset folder (see :func:`resolve_isbi_root` to find it).
        split: one of :data:`ISBI_SPLITS`.

    The images present in the split's folder are used (ids sorted). Every image needs both
    annotation files; annotations of absent images are ignored. Annotations are read (and
    checked) here; images are read lazily.
    """

    def __init__(self, root: str | os.PathLike, split: str):
        if split not in ISBI_SPLITS:
            raise ValueError(f"unknown ISBI split {split!r}; choose one of {sorted(ISBI_SPLITS)}")
        self.root = Path(root)
        self.split = split
        folder, first, last = ISBI_SPLITS[split]
        self.image_dir = self.root / "RawImage" / folder
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"ISBI image folder not found: {self.image_dir}")
        self.image_paths = self._list_split_images(first, last)
        if not self.image_paths:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the ISBI "
                                    f"image folder {self.image_dir}")
        self.ids = list(self.image_paths)
        self.landmark_names = ISBI_LANDMARKS
        self.spacing_mm = ISBI_SPACING_MM
        self._by_annotator = {i: self._read_annotations(i) for i in self.ids}  # (A, 19, 2) each
        self._landmarks = {i: marks.mean(axis=0) for i, marks in self._by_annotator.items()}
        for i, marks in self._landmarks.items():
            check_inside(marks, image_size(self.image_paths[i]), ISBI_LANDMARKS,
                         f"{self.annotation_path(i, ISBI_ANNOTATORS[0]).parent.parent}/*/{i}.txt")

    def _list_split_images(self, first: int, last: int) -> dict[str, Path]:
        found = list_images(self.image_dir)
        for stem, p in found.items():
            if not (len(stem) == 3 and stem.isdigit() and first <= int(stem) <= last):
                raise ValueError(f"unexpected image {p} in the ISBI {self.split!r} folder: "
                                 f"expected names NNN{p.suffix} with NNN in {first:03d}-{last:03d}")
        return found

    def image_ref(self, i: int) -> str:
        """The image's path under the dataset root, e.g. ``RawImage/Test1Data/151.bmp``."""
        return self.image_paths[self.ids[i]].relative_to(self.root).as_posix()

    def annotation_path(self, image_id: str, annotator: str) -> Path:
        """``AnnotationsByMD/<annotator>/<id>.txt`` (annotator: ``400_senior`` or ``400_junior``)."""
        return self.root / "AnnotationsByMD" / annotator / f"{image_id}.txt"

    def annotations(self, i: int) -> np.ndarray:
        """Image ``i``'s landmarks as each doctor put them: (A, 19, 2) original pixels, in the order of
        :data:`ISBI_ANNOTATORS` (the ground truth is their mean)."""
        return self._by_annotator[self.ids[i]].copy()

    def _read_annotations(self, image_id: str) -> np.ndarray:
        marks = []
        for annotator in ISBI_ANNOTATORS:
            path = self.annotation_path(image_id, annotator)
            if not path.is_file():
                raise FileNotFoundError(f"annotation file {path} not found for image "
                                        f"{self.image_paths[image_id]}")
            marks.append(read_isbi_annotation(path))
        return np.stack(marks)

    def _load(self, i: int) -> Sample:
        image_id = self.ids[i]
        image = read_grayscale(self.image_paths[image_id])
        return Sample(id=image_id, image=image, landmarks=self._landmarks[image_id].copy(),
                      spacing_mm=self.spacing_mm)

"""A user's own data: a folder of images plus a CSV of landmark coordinates.

CSV format (long format, one row per image per landmark)::

    image,landmark,x,y
    001.png,sella,835,996
    001.png,nasion,1473.5,1029
    002.png,sella,812,1003
    ...

- ``image``: the image file, as a path **relative to the CSV file's folder** (``001.png`` when
  the CSV sits next to the images, ``train/001.png`` when one CSV in a parent folder covers
  several image folders). The extension may be left out (``001`` or ``train/001``); the file is
  then looked up among the supported extensions.
- ``landmark``: the landmark's name. Names and their order are the order of first appearance in
  the CSV; every labelled image must have every landmark exactly once.
- ``x``, ``y``: original pixels, pixel centres at integers (pixel ``(0, 0)`` covers
  ``[-0.5, 0.5) x [-0.5, 0.5)``), ``x`` to the right, ``y`` down.

- ``spacing_mm`` (optional): the image's pixel size in millimetres (the same on all its rows).
  Without it (and without ``data.spacing_mm``), errors are reported in pixels, labelled ``px``.

Further columns are ignored, as are blank lines. Rows naming images outside this dataset's
folder are checked (the file must exist) and then ignored, so one CSV can serve a ``train/`` and
a ``test/`` folder. Paths are compared as written, never through a symbolic link's target (a split
of links to the images works). Images in the folder with no CSV row are unlabelled
(``landmarks`` is None). Landmark names are matched case-insensitively (two names that differ
only in case are refused); a landmark outside its image is refused. The CSV is UTF-8.

Supported image files: ``.png .jpg .jpeg .bmp .tif .tiff`` (8- or 16-bit, gray or colour, read
as grayscale float32 in [0, 1]); the image id is the file stem.
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .base import LandmarkDataset, Sample
from .imageio import IMAGE_EXTENSIONS, image_size, list_images, read_grayscale
from .landmarks import case_clash, check_inside

CSV_COLUMNS = ("image", "landmark", "x", "y")
SPACING_COLUMN = "spacing_mm"  # optional: the image's pixel size in mm
DEFAULT_CSV_NAME = "landmarks.csv"


class FolderDataset(LandmarkDataset):
    """Images of one folder, labelled (some or all) by a landmark CSV; see the module docstring.

    Args:
        root: folder holding the images (not searched recursively).
        csv_path: the landmark CSV; ``None`` means ``<root>/landmarks.csv``.
        spacing_mm: millimetres per pixel of every image, or None: then a ``spacing_mm`` column of
            the CSV gives it per image (errors in mm), and without one errors are in pixels.
    """

    def __init__(self, root: str | Path, csv_path: str | Path | None, spacing_mm: float | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        self.csv_path = Path(csv_path) if csv_path is not None else self.root / DEFAULT_CSV_NAME
        if spacing_mm is not None and not spacing_mm > 0:
            raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
        self.spacing_mm = None if spacing_mm is None else float(spacing_mm)

        self.image_paths = list_images(self.root)
        if not self.image_paths:
            raise FileNotFoundError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {self.root}")
        self.ids = list(self.image_paths)

        names, table, spacings = _read_landmark_csv(self.csv_path)
        self.landmark_names = tuple(names)
        by_file = {absolute(p): i for i, p in self.image_paths.items()}  # as given: a symlink stays itself
        self._landmarks: dict[str, np.ndarray] = {}
        for file, coords in table.items():
            if file in by_file:
                image_id = by_file[file]
                check_inside(coords, image_size(self.image_paths[image_id]), names,
                             f"{self.csv_path}: image {self.image_paths[image_id].name!r}")
                self._landmarks[image_id] = coords
        self._spacing = {by_file[f]: v for f, v in spacings.items() if f in by_file}

    def spacing_of(self, i: int) -> float | None:
        """The CSV's ``spacing_mm`` of the image, else ``spacing_mm`` (None: unknown, errors in px)."""
        return self._spacing.get(self.ids[i], self.spacing_mm)

    def image_ref(self, i: int) -> str:
        """The image's path relative to the CSV's folder, as this module reads it (e.g. ``test/005.png``)."""
        return Path(os.path.relpath(absolute(self.image_paths[self.ids[i]]), absolute(self.csv_path.parent))).as_posix()

    @property
    def labelled_ids(self) -> list[str]:
        """Ids of the images that have landmarks in the CSV."""
        return [i for i in self.ids if i in self._landmarks]

    def _load(self, i: int) -> Sample:
        image_id = self.ids[i]
        image = read_grayscale(self.image_paths[image_id])
        marks = self._landmarks.get(image_id)
        return Sample(id=image_id, image=image,
                      landmarks=None if marks is None else marks.copy(),
                      spacing_mm=self.spacing_of(i))


class ImageFolder(LandmarkDataset):
    """The images of a folder, unlabelled: what a trained run is applied to. ``landmark_names``:
    the landmarks that will be predicted; ``spacing_mm`` (None: unknown) for reports in mm."""

    def __init__(self, root: str | Path, landmark_names, spacing_mm: float | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        self.image_paths = list_images(self.root)
        if not self.image_paths:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {self.root}")
        for path in self.image_paths.values():
            image_size(path)  # an unreadable file fails now, naming it, not after the first images
        self.ids = list(self.image_paths)
        self.landmark_names = tuple(landmark_names)
        self.spacing_mm = spacing_mm

    def image_ref(self, i: int) -> str:
        return self.image_paths[self.ids[i]].name

    def _load(self, i: int) -> Sample:
        return Sample(self.ids[i], read_grayscale(self.image_paths[self.ids[i]]), None, self.spacing_mm)


def _read_landmark_csv(csv_path: Path) -> tuple[list[str], dict[Path, np.ndarray], dict[Path, float]]:
    """Parse and validate a landmark CSV.

    Returns the landmark names (order of first appearance), per image file an (L, 2) float64 array
    of (x, y) in that order, and per image file its ``spacing_mm`` (when the CSV has that column).
    """
    if not csv_path.is_file():
        raise FileNotFoundError(f"landmark CSV not found: {csv_path}")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{csv_path}: not UTF-8 text (byte {e.start}); save the CSV as UTF-8") from None
    base = csv_path.parent
    names: list[str] = []
    rows: dict[Path, dict[str, tuple[float, float, int]]] = {}
    first_line: dict[Path, int] = {}
    resolved_cache: dict[str, Path] = {}
    spacings: dict[Path, float] = {}
    reader = csv.reader(io.StringIO(text, newline=""))
    header = None
    data_row = 0
    for record in reader:
        line = reader.line_num
        if not record or all(not f.strip() for f in record):
            continue
        if header is None:
            header = [f.strip().lower() for f in record]
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise ValueError(
                    f"{csv_path}, line {line}: header {record} lacks column(s) {missing}; "
                    f"expected the columns {','.join(CSV_COLUMNS)}")
            col = {c: header.index(c) for c in CSV_COLUMNS}
            continue
        data_row += 1
        where = f"{csv_path}, line {line} (data row {data_row})"
        if len(record) < len(header):
            raise ValueError(f"{where}: expected {len(header)} fields, got {len(record)}: "
                             f"{','.join(record)!r}")
        image = record[col["image"]].strip()
        landmark = record[col["landmark"]].strip()
        if not image or not landmark:
            raise ValueError(f"{where}: empty image or landmark name: {','.join(record)!r}")
        xy = [_number(record[col[c]], c, where) for c in ("x", "y")]
        if image not in resolved_cache:
            resolved_cache[image] = _resolve_image(base, image, where)
        file = resolved_cache[image]
        if SPACING_COLUMN in header and record[header.index(SPACING_COLUMN)].strip():
            v = _number(record[header.index(SPACING_COLUMN)], SPACING_COLUMN, where)
            if v <= 0 or spacings.setdefault(file, v) != v:
                raise ValueError(f"{where}: {SPACING_COLUMN}={v:g} is not positive or differs from the "
                                 f"image's earlier rows ({spacings[file]:g})")
        if landmark not in names:
            clash = case_clash(names + [landmark])
            if clash:
                raise ValueError(f"{where}: landmark {clash[1]!r} differs from {clash[0]!r} only in case; "
                                 "landmark names are matched case-insensitively: use one spelling")
            names.append(landmark)
        entry = rows.setdefault(file, {})
        first_line.setdefault(file, line)
        if landmark in entry:
            raise ValueError(f"{where}: duplicated row for image {image!r}, landmark "
                             f"{landmark!r} (first given on line {entry[landmark][2]})")
        entry[landmark] = (xy[0], xy[1], line)
    if header is None:
        raise ValueError(f"{csv_path}, line 1: empty file; expected the header "
                         f"{','.join(CSV_COLUMNS)}")
    if not names:
        raise ValueError(f"{csv_path}: a header but no landmark rows")

    table: dict[Path, np.ndarray] = {}
    for file, entry in rows.items():
        absent = [n for n in names if n not in entry]
        if absent:
            raise ValueError(
                f"{csv_path}, line {first_line[file]}: image {file.name!r} has {len(entry)} of "
                f"{len(names)} landmarks; missing {absent}")
        table[file] = np.array([entry[n][:2] for n in names], dtype=np.float64)
    return names, table, spacings


def _number(text: str, column: str, where: str) -> float:
    try:
        v = float(text.strip())
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise ValueError(f"{where}: {column}={text.strip()!r} is not a finite number")
    return v


def absolute(path: Path) -> Path:
    """An absolute, normalised path, symbolic links left as they are (never their targets)."""
    return Path(os.path.normpath(os.path.abspath(path)))


def _resolve_image(base: Path, name: str, where: str) -> Path:
    """The image file a CSV ``image`` entry names (relative to the CSV's folder)."""
    path = base / name
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        if path.is_file():
            return absolute(path)
        tried = [path]
    else:
        tried = [path.with_name(path.name + ext) for ext in IMAGE_EXTENSIONS]
        hits = [p for p in tried if p.is_file()]
        if len(hits) > 1:
            raise ValueError(f"{where}: image {name!r} is ambiguous: {[str(h) for h in hits]}")
        if hits:
            return absolute(hits[0])
    raise FileNotFoundError(
        f"{where}: image {name!r} not found (looked for {tried[0]}"
        + (f" with extensions {', '.join(IMAGE_EXTENSIONS)}" if len(tried) > 1 else "")
        + "); image names are paths relative to the CSV's folder")


def landmarks_frame(points: np.ndarray, image_ids: list[str], landmark_names: list[str] | tuple[str, ...]
                    ) -> pd.DataFrame:
    """(N, L, 2) points -> the long table ``image, landmark, x, y`` this module reads (NaN rows left out)."""
    rows = [(image_ids[i], landmark_names[l], points[i, l, 0], points[i, l, 1])
            for i in range(points.shape[0]) for l in range(points.shape[1]) if np.isfinite(points[i, l]).all()]
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


def read_image_rows(csv_path: str | Path, image: str) -> dict[str, tuple[float, float]]:
    """The landmarks a CSV gives one image (``image`` as the CSV names it, with or without its
    extension), complete or not: ``{name: (x, y)}`` in the CSV's order. A missing CSV gives ``{}``."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        return {}
    frame = _read_frame(csv_path)
    stem = str(Path(image).with_suffix(""))
    rows = frame[[str(Path(v).with_suffix("")) == stem for v in frame["image"]]]
    return {str(r.landmark): (float(r.x), float(r.y)) for r in rows.itertuples()}


def write_image_rows(csv_path: str | Path, image: str, points: dict[str, tuple[float, float] | None]) -> Path:
    """Put one image's landmarks into a landmark CSV (created if absent), replacing that image's rows
    and keeping every other row; missing landmarks (None) are left out. Written whole (temp + rename)."""
    csv_path = Path(csv_path)
    frame = _read_frame(csv_path) if csv_path.exists() else pd.DataFrame(columns=list(CSV_COLUMNS))
    stem = str(Path(image).with_suffix(""))
    keep = frame[[str(Path(v).with_suffix("")) != stem for v in frame["image"]]]
    new = pd.DataFrame([(image, n, xy[0], xy[1]) for n, xy in points.items() if xy is not None],
                       columns=list(CSV_COLUMNS))
    out = pd.concat([keep, new], ignore_index=True) if len(keep) else new
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    out.to_csv(tmp, index=False)
    os.replace(tmp, csv_path)
    return csv_path


def _read_frame(csv_path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(csv_path, dtype={"image": str, "landmark": str}, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{csv_path}: not UTF-8 text; save the CSV as UTF-8") from None
    frame.columns = [c.strip().lower() for c in frame.columns]
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{csv_path}: lacks column(s) {missing}; expected {','.join(CSV_COLUMNS)}")
    return frame

"""Finding and reading image files as grayscale float arrays (shared by every file-based dataset)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def read_grayscale(path: str | Path) -> np.ndarray:
    """Read an image file as a (H, W) float32 grayscale array in [0, 1].

    8-bit images (gray, RGB, palette, with or without alpha) go through PIL's ``convert("L")``;
    16-bit gray images are divided by the largest value of their bit depth: 65535, or, when no
    value exceeds 4095 (10- or 12-bit data stored in 16 bits, common for X-rays), 1023 or 4095,
    with a warning naming the file (else such an image would look nearly black). Any failure
    raises ``OSError`` naming the file.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in _SIXTEEN_BIT_MODES:
                arr = np.clip(np.asarray(img, dtype=np.float64), 0.0, 65535.0)
                top = next(2 ** b - 1 for b in (10, 12, 16) if arr.max() <= 2 ** b - 1)
                if top < 65535:
                    warnings.warn(f"image {path}: 16-bit values reach only {int(arr.max())}; read as "
                                  f"{top.bit_length()}-bit data (divided by {top})", stacklevel=2)
                return (arr / top).astype(np.float32)
            if img.mode == "F":
                raise OSError(f"floating-point images are not supported (mode {img.mode!r}); "
                              "save it as 8- or 16-bit")
            gray = img.convert("L")
            return np.asarray(gray, dtype=np.float32) / np.float32(255.0)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"image file not found: {path}") from exc
    except OSError as exc:
        raise OSError(f"cannot read image {path}: {exc}") from exc
    except (ValueError, SyntaxError) as exc:  # PIL raises these for some corrupt files
        raise OSError(f"cannot read image {path}: {exc}") from exc


def list_images(folder: Path) -> dict[str, Path]:
    """Image files directly in ``folder`` by stem (sorted by stem); two files with one stem are an error."""
    found: dict[str, Path] = {}
    for p in sorted(Path(folder).iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if p.stem in found:
            raise ValueError(f"two images share the id {p.stem!r}: {found[p.stem]} and {p}")
        found[p.stem] = p
    return dict(sorted(found.items()))


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, from its header (the pixels are not read)."""
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except (OSError, ValueError, SyntaxError) as e:
        raise OSError(f"cannot read image {path}: {e}") from e

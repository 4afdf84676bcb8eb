"""Finding and reading image files as grayscale float arrays (shared by every file-based dataset)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def read_grayscale(path: str | Path) -> np.ndarray:
    """Read an image file as a (H, W) float32 grayscale array in [0, 1].

    8-bit images (gray, RGB, palette, with or without alpha) go through PIL's ``convert("L")``;
    16-bit gray images are divided by 65535. Any failure raises ``OSError`` naming the file.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in _SIXTEEN_BIT_MODES:
                arr = np.asarray(img, dtype=np.float64)
                return (np.clip(arr, 0.0, 65535.0) / 65535.0).astype(np.float32)
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

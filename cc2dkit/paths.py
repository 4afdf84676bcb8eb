"""Resolving user-given paths: absolute as is, relative against the cwd, then the project root."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the folder holding the cc2dkit package


def candidates(path: str | os.PathLike) -> list[Path]:
    """Where a user-given path may point: itself if absolute, else under the cwd, then the project root."""
    p = Path(path).expanduser()
    found = [p] if p.is_absolute() else [Path.cwd() / p, PROJECT_ROOT / p]
    return list(dict.fromkeys(found))  # the cwd may be the project root


def resolve_path(path: str | os.PathLike, what: str) -> Path:
    """An existing path, or FileNotFoundError naming every place that was tried."""
    tried = candidates(path)
    for candidate in tried:
        if candidate.exists():
            return candidate.resolve()
    raise FileNotFoundError(f"{what} not found: {path!s} (tried {', '.join(str(t) for t in tried)})")

"""Resolving user-given paths: absolute as is, relative against the cwd, then the project root."""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resolve_path(path: str | Path, what: str) -> Path:
    """An existing path, or FileNotFoundError naming every place that was tried."""
    p = Path(path).expanduser()
    tried = [p] if p.is_absolute() else [Path.cwd() / p, PROJECT_ROOT / p]
    for candidate in tried:
        if candidate.exists():
            return candidate.resolve()
    raise FileNotFoundError(f"{what} not found: {path!s} (tried {', '.join(str(t) for t in tried)})")

"""Wall time of every notebook in quick mode (as CI runs them), optionally on the real data.

    python benchmarks/time_notebooks.py                          # the phantom, as CI
    python benchmarks/time_notebooks.py --isbi ../shared/data/isbi2015 --weights env
    python benchmarks/time_notebooks.py 01 03                    # notebooks whose name starts so
    python benchmarks/time_notebooks.py --save runs/notebooks    # keep the executed copies (outputs)

Each notebook runs in a fresh kernel with ``CC2DKIT_QUICK=1``, by default through
``pytest --nbval-lax`` in a subprocess (the client CI uses; outputs are not compared, errors fail;
the seconds include pytest's start, about 2 s). ``--isbi`` / ``--weights`` are written into the
notebook's parameter cell (``ISBI_ROOT = ...`` / ``WEIGHTS = ...``) of a temporary copy beside
the original, removed afterwards. Prints one row per notebook and the total. ``--weights env``
means ``$CC2DKIT_WEIGHTS``.

``--save DIR`` executes with nbclient instead and writes the executed notebooks (with outputs).
nbclient 0.11 sometimes misses the reply of a cell that displays widgets and waits until the cell
timeout (jupyter/nbclient#312), so such a run may take ``--timeout`` seconds longer per stall:
use it for the outputs, not for timings.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def set_parameter(nb, name: str, value: str) -> None:
    """Replace ``NAME = ...`` in the first code cell that assigns it; error if none does."""
    pattern = re.compile(rf"^{name}\s*=.*?(#.*)?$", re.M)
    for cell in nb.cells:
        if cell.cell_type == "code" and pattern.search(cell.source):
            cell.source = pattern.sub(lambda m: f"{name} = {value!r}  " + (m.group(1) or ""), cell.source, count=1)
            return
    raise ValueError(f"no parameter cell assigns {name}")


def with_parameters(path: Path, isbi: str | None, weights: str | None):
    nb = nbformat.read(path, as_version=4)
    if isbi:
        set_parameter(nb, "ISBI_ROOT", str(Path(isbi).resolve()))
    if weights:
        set_parameter(nb, "WEIGHTS", weights)
    return nb


def run_with_nbval(path: Path, isbi: str | None, weights: str | None, timeout: int) -> dict:
    nb = with_parameters(path, isbi, weights)
    copy = path.with_name(f".timing_{path.name}")  # beside the original: same working folder
    nbformat.write(nb, copy)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
           f"--nbval-cell-timeout={timeout}", str(copy)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    finally:
        copy.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    error = "" if proc.returncode == 0 else (proc.stdout.strip().splitlines() or ["pytest failed"])[-1][:200]
    return {"notebook": path.stem, "seconds": round(seconds, 1),
            "code_cells": sum(c.cell_type == "code" for c in nb.cells), "error": error}


def run_notebook(path: Path, isbi: str | None, weights: str | None, timeout: int, save: Path | None = None) -> dict:
    """Execute with nbclient (for ``--save``); see the module doc for its widget stall."""
    nb = with_parameters(path, isbi, weights)
    t0 = time.perf_counter()
    error = ""
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    except Exception as exc:  # report and go on with the next notebook
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"
    seconds = time.perf_counter() - t0
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save / path.name)
    return {"notebook": path.stem, "seconds": round(seconds, 1),
            "code_cells": sum(c.cell_type == "code" for c in nb.cells), "error": error}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="notebook name prefixes (default: all)")
    ap.add_argument("--isbi", default=None, help="ISBI 2015 root written into ISBI_ROOT (default: the phantom)")
    ap.add_argument("--weights", default=None, help='WEIGHTS for the notebooks; "env": $CC2DKIT_WEIGHTS')
    ap.add_argument("--timeout", type=int, default=1800, help="cell timeout in seconds")
    ap.add_argument("--save", type=Path, default=None, help="write the executed notebooks (with outputs) here")
    args = ap.parse_args()
    weights = os.environ.get("CC2DKIT_WEIGHTS") if args.weights == "env" else args.weights
    if args.weights == "env" and not weights:
        sys.exit("--weights env needs $CC2DKIT_WEIGHTS")
    os.environ["CC2DKIT_QUICK"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))  # not the .timing_ copies
    if args.names:
        paths = [p for p in paths if any(p.stem.startswith(n) for n in args.names)]
    if not paths:
        sys.exit(f"no notebook matches {args.names}")
    rows = []
    for p in paths:
        if args.save is None:
            rows.append(run_with_nbval(p, args.isbi, weights, args.timeout))
        else:
            rows.append(run_notebook(p, args.isbi, weights, args.timeout, args.save))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows).set_index("notebook")
    engine = "nbclient" if args.save else "pytest --nbval-lax"
    print(f"\ndata: {'ISBI ' + args.isbi if args.isbi else 'phantom'}, weights: {weights or 'preset'}, via {engine}")
    print(df.to_string())
    print(f"total: {df['seconds'].sum():.0f} s ({df['seconds'].sum() / 60:.1f} min)")


if __name__ == "__main__":
    main()

"""Where finished runs miss by more than 10 mm: per landmark, per run, and the misses every run shares.

    python benchmarks/gross_errors.py runs/e1_adapter4_long runs/cpufine/run [--threshold 10]

Each RUN is a run folder with ``errors_test.csv`` (written by ``train`` / ``evaluate``; its label: the
folder name, or the parent's when the name repeats). A miss every run shares sits on a hard image
(an unusual skull, an ambiguous point); a miss only one run makes is that run's draw.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders with errors_test.csv")
    parser.add_argument("--threshold", type=float, default=10.0, help="mm (default 10)")
    args = parser.parse_args()
    from cc2dkit.analysis import gross_errors, run_labels

    try:
        print(gross_errors(run_labels(args.runs), args.threshold).to_string())
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"gross_errors.py: {e}")


if __name__ == "__main__":
    main()

"""A PL guard's ablation: PL runs side by side, e.g. C-ATD with and without ``method.pl_max_move``
(and with ``method.pl_agree``, which waives the cap where two answers in a row agree).

    python benchmarks/run_methods.py atd --out runs/atdcap/free --set method.landmarks=2,3,15,17
    python benchmarks/run_methods.py atd --out runs/atdcap/cap3 --set method.landmarks=2,3,15,17 \\
        --set method.pl_max_move=3
    python benchmarks/pl_guard.py runs/atdcap/free/atd runs/atdcap/cap3/atd

Each RUN is a finished run folder of a PL method (its label: the folder name, or parent/name when
names repeat). Prints each run's "all" row (with the median and the errors over 10 mm), then per
landmark the test MRE, the final PL error (analysis only: the unlabelled images' ground truth is
read here, never in training) and how many PL updates the cap held back, then the misses over
10 mm per landmark and run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="finished run folders of PL methods")
    args = parser.parse_args()
    import pandas as pd

    from cc2dkit.analysis import budget_curve, gross_errors, pl_outcomes, run_labels

    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    try:
        runs = run_labels(args.runs)
        print(budget_curve(runs).round(2).to_string(index=False), end="\n\n")
        print(pl_outcomes(runs).round(2).to_string(), end="\n\n")
        print(gross_errors(runs).to_string())
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"pl_guard.py: {e}")


if __name__ == "__main__":
    main()

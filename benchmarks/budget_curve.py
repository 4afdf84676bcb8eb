"""Test1 accuracy against training minutes: the curve a user picks a CPU budget from (issue 14).

    python benchmarks/budget_curve.py runs/curve/e06 runs/curve/e12 runs/e1 runs/curve/e48 --png curve.png

Each RUN is a finished run folder (its label: the folder name, or parent/name when names repeat).
Minutes are the training time recorded in ``metrics.csv`` (training, Infer-PL and tracking, summed
over epochs; without the final evaluation). Prints the table (pandas) and, with ``--png``, writes
the figure with the targets of issue 14 as dashed lines.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGETS = {"MRE_mm": 1.90, "SDR_2.0mm": 70.0, "SDR_4.0mm": 92.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="finished run folders")
    parser.add_argument("--png", default=None, help="write the figure here")
    args = parser.parse_args()
    from cc2dkit.analysis import budget_curve, run_labels
    from cc2dkit.viz import plot_budget_curve

    try:
        curve = budget_curve(run_labels(args.runs))
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"budget_curve.py: {e}")
    print(curve.round(2).to_string(index=False))
    if args.png:
        plot_budget_curve(curve, targets=TARGETS).savefig(args.png, dpi=100)
        print(f"figure: {args.png}")


if __name__ == "__main__":
    main()

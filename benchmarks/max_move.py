"""The fine stage's ``refine.max_move`` ablated on a refined run: every cap from one pass over the test split.

    python benchmarks/max_move.py runs/fine_s2c128_1500 --moves 2 3 4 6 none --set num_threads=1
    python benchmarks/max_move.py runs/small/sla --fine-from runs/cpu --moves 3 none   # another run's fine stage

The run's refined predictor (its ``eval.*`` / ``refine.coarse_gate`` as in its config, or as
``--set`` says) answers every test image once; its fine maps are then read with each cap (grid
pixels of the model grid; ``none``: anywhere in the window) and the coarse answer alone. Prints one
row per cap (MRE, SD, SDR, median, errors over 10 mm), the per-landmark MRE of each, and, label-free,
how far the uncapped fine stage moved the coarse answers (percentiles in grid px). A sensitivity
table: a cap is chosen before it is run, not from this table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np

    from cc2dkit.analysis import compare_answers
    from cc2dkit.methods import open_run

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a run folder whose model.pt holds a fine stage (or any run, with --fine-from)")
    ap.add_argument("--fine-from", default=None, metavar="RUN",
                    help="refine with the fine stage this run trained (the same for every method)")
    ap.add_argument("--moves", nargs="+", default=["2", "3", "4", "6", "none"], help="caps in grid px, or none")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / refine.* / num_threads")
    args = ap.parse_args()
    try:
        moves = [None if m.lower() == "none" else float(m) for m in args.moves]
    except ValueError:
        sys.exit(f"--moves {' '.join(args.moves)}: each a positive number of grid pixels or 'none'")
    if any(m is not None and m <= 0 for m in moves):
        sys.exit(f"--moves {' '.join(args.moves)}: each a positive number of grid pixels or 'none'")
    try:
        cfg, _, predictor, test = open_run(args.run, args.set, fine_from=args.fine_from, refined=True)
    except (OSError, ValueError) as e:
        sys.exit(f"max_move.py: {e}")
    t0 = time.perf_counter()
    answers = predictor.predict_grid_moves(test, moves, progress=True)
    seconds = time.perf_counter() - t0
    labels = {0: "coarse", **{m: "no cap" if m is None else f"<= {m:g} grid px" for m in moves}}
    comparison = compare_answers({labels[m]: a for m, a in answers.items()}, test, predictor.landmark_indices,
                                 cfg.eval.radii_mm)
    moved = np.linalg.norm(answers[None] - answers[0], axis=-1) if None in answers else None
    fine = f", fine stage of {args.fine_from}" if args.fine_from else ""
    print(f"{args.run}: {len(test)} images, coarse_gate={predictor.coarse_gate}{fine}, {seconds:.0f} s")
    print(comparison.report())
    if moved is not None:
        q = np.percentile(moved, [50, 90, 95, 99, 100])
        print("uncapped fine stage, move from the coarse answer (grid px): median {:.2f}, 90% {:.2f}, 95% {:.2f}, "
              "99% {:.2f}, max {:.2f}".format(*q))


if __name__ == "__main__":
    main()

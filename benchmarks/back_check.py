"""The fine stage's back check (``refine.back_check``) ablated on a refined run, the fine maps computed once.

    python benchmarks/back_check.py runs/s30/seed11 --reaches 1 2 3 --beyond 7 --set num_threads=2
    python benchmarks/back_check.py runs/s30/seed11 --split train --reaches 2 --set num_threads=2

The run's refined predictor (its ``eval.*`` / ``refine.*`` as in its config, or as ``--set`` says)
answers every image once; its fine answers are then read with each reach (grid px): the coarse
answer stays where the fine answer's back-match lands over the reach from the template's landmark
and the coarse answer's lands nearer (``inference/refine.py``). Prints one row per reading (coarse,
fine, each reach: MRE, SD, SDR, median, errors over 10 mm), the per-landmark MRE, per reach how many
answers the check kept coarse (per landmark), with ``--beyond MM`` how many of the answers over MM
from the truth before the fine stage each reading brought closer / took further, and, label-free,
the back misses' percentiles. ``--time N``: the refined predictor with and without the check on the
first N images, seconds per image. A sensitivity table: a reach is chosen before it is run, not from
this table. ``--split train``: the unlabelled training images (their labels only score the rows).
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
    ap.add_argument("run", help="a finished run folder whose model.pt holds a fine stage")
    ap.add_argument("--reaches", nargs="+", type=float, default=[2.0], help="back_check reaches, grid px (> 0)")
    ap.add_argument("--beyond", type=float, default=None, metavar="MM",
                    help="count the answers over MM from the truth before the fine stage brought closer / taken further")
    ap.add_argument("--split", choices=("test", "train"), default="test",
                    help="train: the unlabelled training images (labels read only to score)")
    ap.add_argument("--time", type=int, default=0, metavar="N", help="time the predictor with / without on N images")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / refine.* / num_threads")
    args = ap.parse_args()
    if not all(r > 0 for r in args.reaches):
        sys.exit(f"--reaches {' '.join(map(str, args.reaches))}: each a positive number of grid pixels")
    try:
        cfg, _, predictor, data = open_run(args.run, args.set, fixed={"refine.back_check": None}, split=args.split,
                                           refined=True)
    except (OSError, ValueError) as e:
        sys.exit(f"back_check.py: {e}")
    t0 = time.perf_counter()
    out = predictor.predict_grid_back(data, args.reaches, progress=True)
    seconds = time.perf_counter() - t0
    labels = {"coarse": "coarse", "fine": "refined", **{r: f"refined, back check {r:g} grid px" for r in args.reaches}}
    comparison = compare_answers({labels[key]: out[key] for key in labels}, data, predictor.landmark_indices,
                                 cfg.eval.radii_mm)
    print(f"{args.run}: {len(data)} {args.split} images, coarse_gate={predictor.coarse_gate}, "
          f"max_move={predictor.max_move}, {seconds:.0f} s")
    print(comparison.report())
    names = comparison.landmark_names
    for r in args.reaches:
        kept = np.any(out[r] != out["fine"], axis=-1)  # (N, K): where the check kept the coarse answer
        per = {n: int(c) for n, c in zip(names, kept.sum(axis=0)) if c}
        print(f"back check {r:g}: {int(kept.sum())} of {kept.size} answers kept coarse; per landmark: {per}")
    if args.beyond is not None:
        for key in ("fine", *args.reaches):
            drift = comparison.drift("coarse", labels[key], args.beyond)
            print(f"{labels[key]}: answers over {args.beyond:g} mm before the fine stage, closer / further: "
                  f"{drift.closer.sum()} / {drift.further.sum()}")
    q = np.percentile(out["misses"], [50, 90, 99], axis=(0, 2))  # (3, fine / coarse)
    print("back misses (grid px), median / 90% / 99%: fine answers {:.2f} / {:.2f} / {:.2f}, coarse answers "
          "{:.2f} / {:.2f} / {:.2f}".format(*q[:, 0], *q[:, 1]))
    if args.time:
        rows = list(range(min(args.time, len(data))))
        for r in (None, args.reaches[0]):
            variant = predictor.variant(back_check=r)
            variant.predict_grid(data, rows[:1])  # the template's embeddings, once
            t0 = time.perf_counter()
            variant.predict_grid(data, rows)
            print(f"back_check={r}: {(time.perf_counter() - t0) / len(rows):.3f} s per image ({len(rows)} images)")


if __name__ == "__main__":
    main()

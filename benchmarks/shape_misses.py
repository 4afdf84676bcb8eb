"""Where a finished run's misses sit against its shape check's expectations (analysis only: the
labels are read to describe, never to choose anything).

    python benchmarks/shape_misses.py runs/s20/seed7 --split train --set num_threads=2

The run's predictor as configured (its shape check from ``model.pt``) answers the test split, or
``--split train``: the unlabelled training images (every one but the template; labels read only
here). Prints ``cc2dkit.analysis.shape_misses``: per landmark the median answer - truth offset
(x right, y down, mm), how far the truth lies from its expected place given the *true* other
landmarks (the oracle: what the shape model could say at best) and given the answers (what the
check uses), the check's spread; then every miss over 10 mm.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import pandas as pd

    from cc2dkit.analysis import shape_misses
    from cc2dkit.methods import open_run

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--split", choices=("test", "train"), default="test")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads")
    args = ap.parse_args()
    t0 = time.perf_counter()
    try:
        cfg, _, predictor, data = open_run(args.run, args.set, split=args.split)
    except (OSError, ValueError) as e:
        sys.exit(f"shape_misses.py: {e}")
    if predictor.shape is None or data.unit != "mm":
        sys.exit(f"shape_misses.py: {args.run} needs a shape check (eval.shape_reach) and images in mm")
    answers = predictor.predict_grid(data, progress=True)
    idx = predictor.landmark_indices
    mm_per_px = data.sizes[:, ::-1] / data.grid * data.scale[:, None]  # (N, 2) x, y
    per, misses = shape_misses(predictor.shape.model, answers, data.landmarks[:, idx], mm_per_px,
                               [data.landmark_names[i] for i in idx], data.ids)
    print(f"{args.run}: {len(data)} {args.split} images, {time.perf_counter() - t0:.0f} s")
    with pd.option_context("display.width", 200, "display.float_format", "{:.2f}".format):
        print(per.to_string())
        print(misses.to_string(index=False))


if __name__ == "__main__":
    main()

"""The template pool (``eval.template_pool``, ``inference/pool.py``) on a finished run: the refined answers.

    python benchmarks/template_pool.py runs/plbf16/s1 --set num_threads=2 --set eval.shape_reach=3

The run's predictor as its config (and ``--set``) says, the shape check included, answers the test
split three ways:

- ``template``: the template's views alone (``eval.template_pool=0``);
- ``pool, equal weight`` (the kit's): the template's mean vector plus the mean of the model's vectors
  at its own answers on the unlabelled training images (``--images``, default all), made unit length;
- ``pool, each image one vote``: the template's views and the pool's images summed, each one vote
  (the template's weight falls as the pool grows).

The pool is fitted once (``Predictor.pooled``: the predictor's answers on those images, no label
read). Prints one row per way (MRE, SD, SDR, median, errors over 10 mm), how many answers each
moves against the template alone, and the seconds.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np
    import pandas as pd

    from cc2dkit.analysis import compare_answers
    from cc2dkit.inference import TemplatePool
    from cc2dkit.methods import open_run
    from cc2dkit.methods.context import unlabelled_rows
    from cc2dkit.methods.runfolder import training_images

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--images", type=int, default=None, help="pool images (default: every unlabelled one)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads")
    args = ap.parse_args()
    t0 = time.perf_counter()
    try:
        cfg, _, predictor, test = open_run(args.run, args.set, fixed={"eval.template_pool": 0}, progress=True)
    except (OSError, ValueError) as e:
        sys.exit(f"template_pool.py: {e}")
    train = training_images(cfg)
    rows = unlabelled_rows(train, cfg.data.template)[:args.images]
    pool = predictor.pooled(train, rows, progress=True).pool
    fitted = time.perf_counter() - t0
    views = 1 + cfg.eval.template_copies

    class EachOneVote(TemplatePool):  # normalize(sum of views + sum of pool) = normalize(mean of views + sum / views)
        def of(self, landmarks, device):
            return [(s[landmarks] / views).to(device) for s in self.sums]

    ways = {"template": None, "pool, equal weight (the kit's)": pool,
            "pool, each image one vote": EachOneVote(pool.sums, pool.images)}
    answers = {label: predictor.with_pool(p).predict_grid(test, progress=True) for label, p in ways.items()}
    comparison = compare_answers(answers, test, predictor.landmark_indices, cfg.eval.radii_mm)
    first = answers["template"]
    comparison.table["moved"] = [int((np.linalg.norm(a - first, axis=-1) > 1e-6).sum()) for a in answers.values()]
    print(f"{args.run}: {len(test)} test images, a pool of {pool.images} unlabelled images (fitted in {fitted:.0f} s, "
          f"the run's loading included), shape check {'off' if predictor.shape is None else predictor.shape.settings.reach}, "
          f"{time.perf_counter() - t0:.0f} s")
    with pd.option_context("display.width", 200, "display.precision", 2):
        print(comparison.table.to_string())


if __name__ == "__main__":
    main()

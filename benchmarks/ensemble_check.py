"""Two or more trained runs as one coarse matcher (an ablation; not in any predictor).

    python benchmarks/ensemble_check.py runs/cpufine runs/methods_cpu/multi --set num_threads=1

Each run's coarse predictor (sub-pixel, 8 template copies unless ``--set`` says otherwise) gives its
per-scale similarity maps; the ensemble multiplies every scale of every run (the cascade product of
all of them) and takes the same sub-pixel peak. Prints each run alone and the ensemble (MRE, SD, SDR,
median, errors over 10 mm) and the errors over 10 mm per landmark. The runs must share the template,
the grid and the landmarks (the first run's test split is used).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np
    import torch

    from cc2dkit.analysis import compare_answers, run_labels
    from cc2dkit.config import apply_overrides, parse_sets
    from cc2dkit.inference.cascade import cascade_argmax
    from cc2dkit.methods import run_config
    from cc2dkit.methods.apply import load_run
    from cc2dkit.runtime import setup

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders (two or more)")
    ap.add_argument("--set", action="append", default=["eval.subpixel=true", "eval.template_copies=8"],
                    metavar="KEY=VALUE", help="eval.* / num_threads (default: sub-pixel, 8 template copies)")
    args = ap.parse_args()
    if len(args.runs) < 2:
        sys.exit("ensemble_check: give two or more run folders")
    try:
        labels = list(run_labels(args.runs))
    except ValueError as e:
        sys.exit(f"ensemble_check: {e}")
    predictors, test = [], None
    for run in args.runs:
        cfg = apply_overrides(run_config(run), parse_sets(args.set))
        device, _ = setup(cfg)
        predictor, split = load_run(run, device, cfg)
        predictor = predictor.coarse_stage
        test = split if test is None else test
        first = predictors[0] if predictors else predictor
        if (predictor.template.grid, predictor.landmark_indices) != (first.template.grid, first.landmark_indices) \
                or not np.allclose(predictor.template.points, first.template.points):
            sys.exit(f"{run}: another grid, template or landmark set than {args.runs[0]}")
        predictors.append(predictor)
    answers = {label: np.zeros((len(test), len(predictors[0].landmark_indices), 2)) for label in labels + ["ensemble"]}
    t0 = time.perf_counter()
    with torch.no_grad():
        matchers = [p.matcher() for p in predictors]
        batch = predictors[0].batch_size
        for start in range(0, len(test), batch):
            rows = list(range(start, min(start + batch, len(test))))
            images, keys = test.images[rows].to(device), [test.keys[i] for i in rows]
            maps = [match(images, keys) for match in matchers]  # each (S, B, K, G, G)
            for label, m in zip(labels, maps):
                answers[label][rows] = cascade_argmax(m, predictors[0].subpixel).cpu().double().numpy()
            answers["ensemble"][rows] = cascade_argmax(torch.cat(maps), predictors[0].subpixel).cpu().double().numpy()
    comparison = compare_answers(answers, test, predictors[0].landmark_indices, cfg.eval.radii_mm)
    print(f"{len(test)} images, {time.perf_counter() - t0:.0f} s")
    print(comparison.summary())


if __name__ == "__main__":
    main()

"""Two or more trained runs as one coarse matcher (an ablation; in no preset and no run path).

    python benchmarks/ensemble_check.py runs/s39/e16_s4 runs/s39/e16_s5 --split train --refine --set num_threads=2

Each run's coarse predictor, as its run configured it (template copies, poses, shape check, top
centroid or argmax; ``--set eval.*`` changes them for every run), gives its per-scale similarity maps;
the ensemble multiplies every map of every run (one cascade product of all of them) and answers from it
as the first run's predictor does. ``--refine``: each run's answers refined by its own fine stage, the
ensemble's by the first run's. Prints each run alone and the ensemble (MRE, SD, SDR, median, errors
over 10 mm) and the errors over 10 mm per landmark. ``--split train``: the unlabelled training images
(every one but the template; labels read only to score). The runs must share the template, the grid and
the landmarks (the first run's images are used).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cc2dkit.inference import Predictor  # noqa: E402


class Ensemble(Predictor):
    """The members' maps stacked, (sum of S_m [+ shape factors], B, K, G, G): one cascade product."""

    def __init__(self, members: list[Predictor]):
        first = members[0]
        super().__init__(first.template, first.landmark_indices, first.device, first.batch_size, first.subpixel,
                         first.template_copies, first.poses, first.centroid, first.bf16)
        self.members = members

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(s for m in self.members for s in m.strides)

    def embedder(self):
        raise NotImplementedError("an ensemble has no one embedding; its matcher joins its members'")

    def matcher(self, local: bool = False, need: int = 1):
        # the members' whole maps always: each member's local check covers its own reading, not the joint product's
        matchers = [m.matcher() for m in self.members]
        return lambda images, keys: torch.cat([match(images, keys) for match in matchers])


def main() -> None:
    import numpy as np

    from cc2dkit.analysis import compare_answers, run_labels
    from cc2dkit.methods import open_run

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders (two or more)")
    ap.add_argument("--split", choices=("test", "train"), default="test")
    ap.add_argument("--refine", action="store_true", help="refine with the runs' fine stages (the first run's "
                    "for the ensemble)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads")
    args = ap.parse_args()
    if len(args.runs) < 2:
        sys.exit("ensemble_check: give two or more run folders")
    try:
        labels = list(run_labels(args.runs))
        predictors, data = [], None
        for run in args.runs:
            cfg, _, predictor, split = open_run(run, args.set, split=args.split, refined=args.refine)
            data = split if data is None else data
            first = predictors[0] if predictors else predictor
            if (predictor.template.grid, predictor.landmark_indices) != (first.template.grid, first.landmark_indices) \
                    or not np.allclose(predictor.template.points, first.template.points):
                sys.exit(f"ensemble_check: {run}: another grid, template or landmark set than {args.runs[0]}")
            predictors.append(predictor if args.refine else predictor.coarse_stage)
    except (OSError, ValueError) as e:
        sys.exit(f"ensemble_check: {e}")
    ensemble = Ensemble([p.coarse_stage for p in predictors])
    if args.refine:
        ensemble = predictors[0].variant(ensemble)
    answers, seconds = {}, {}
    for label, predictor in [*zip(labels, predictors), ("ensemble", ensemble)]:
        t0 = time.perf_counter()
        answers[label] = predictor.predict_grid(data, progress=True)
        seconds[label] = time.perf_counter() - t0
    comparison = compare_answers(answers, data, predictors[0].landmark_indices, cfg.eval.radii_mm)
    print(f"{len(data)} images ({args.split}); seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    print(comparison.summary())


if __name__ == "__main__":
    main()

"""The label-free shape check (``inference/shape.py``) on a finished run: answers with and without it.

    python benchmarks/shape_guard.py runs/idle2/run --set num_threads=2
    python benchmarks/shape_guard.py runs/e1_adapter4_long --neighbours all --set eval.subpixel=true

The run's coarse predictor (its ``eval.*`` as in its config, or as ``--set`` says) answers the
unlabelled training images (the template excluded); their answers make the shape models, one per
``--neighbours`` size (``all``: each expectation fitted to all other landmarks), and the size
whose expectations those answers agree with best is chosen (label-free; each size's median
distance is printed). On the test split, each coarse answer further than ``--reach`` x its spread
from its expected place is re-picked under a Gaussian around that place (read as the predictor
reads its maps; two passes, ``ShapeCheck.guard``), with the chosen model and with ``all``: the
predictor with the check (``Predictor.with_shape``, as ``eval.shape_reach`` gives it). With a fine
stage the refined answer too, the Gaussian joining the gate. Prints one row per answer (MRE, SD,
SDR, median, errors over 10 mm), the coarse answers the check moved per landmark, and the seconds.
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
    from cc2dkit.data import build_datasets
    from cc2dkit.data.grid import GridImages
    from cc2dkit.inference import RefinedPredictor
    from cc2dkit.inference.shape import ShapeCheck, ShapeModel, ShapeSettings
    from cc2dkit.methods import open_run
    from cc2dkit.methods.context import unlabelled_rows

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--reach", type=float, default=3.0, help="re-pick answers further than this x their spread")
    ap.add_argument("--neighbours", nargs="+", default=["4", "6", "8", "12", "all"],
                    help="neighbourhood sizes to choose from (label-free); 'all': every other landmark")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads")
    args = ap.parse_args()
    try:
        sizes = tuple(None if n == "all" else int(n) for n in args.neighbours)
    except ValueError:
        sys.exit(f"--neighbours {' '.join(args.neighbours)}: each a whole number or 'all'")
    try:
        cfg, _, predictor, test = open_run(args.run, args.set)
    except (OSError, ValueError) as e:
        sys.exit(f"shape_guard.py: {e}")
    coarse = predictor.coarse_stage.with_shape(None)
    predictor = predictor.with_shape(None)
    refined = isinstance(predictor, RefinedPredictor)
    train_set, _ = build_datasets(cfg.data, cfg.seed)
    train = GridImages(train_set, cfg.data.grid, "train")
    rows = unlabelled_rows(train, cfg.data.template)
    t0 = time.perf_counter()
    unlabelled = coarse.predict_grid(train, rows, progress=True)
    reference = coarse.template.points[coarse.landmark_indices]
    try:
        chosen, scores = ShapeModel.choose(unlabelled, reference, sizes)
    except ValueError as e:
        sys.exit(f"shape_guard.py: {e}")
    models = {f"neighbours {chosen.neighbours or 'all'} (chosen)": chosen}
    if chosen.neighbours is not None:
        models["neighbours all"] = ShapeModel.from_answers(unlabelled, reference)
    model_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    answers = {"coarse": coarse.predict_grid(test, progress=True)}
    moved = {}
    for name, model in models.items():  # each through the predictor's own path (Predictor.with_shape)
        check = ShapeCheck(model, ShapeSettings(args.reach))
        answers[f"coarse, {name}"] = coarse.with_shape(check).predict_grid(test, progress=True)
        moved[name] = np.linalg.norm(answers[f"coarse, {name}"] - answers["coarse"], axis=-1) > 1e-6
    if refined:
        answers["refined"] = predictor.predict_grid(test, progress=True)
        for name, model in models.items():
            checked = predictor.with_shape(ShapeCheck(model, ShapeSettings(args.reach)))
            answers[f"refined, {name}"] = checked.predict_grid(test, progress=True)
    n = len(test)
    test_s = time.perf_counter() - t0
    comparison = compare_answers(answers, test, coarse.landmark_indices, cfg.eval.radii_mm)
    print(f"{args.run}: {n} images, subpixel={coarse.subpixel}, centroid={coarse.centroid}, "
          f"template_copies={coarse.template_copies}, reach {args.reach:g}; shape models from {len(rows)} "
          f"unlabelled images in {model_s:.0f} s, test {test_s:.0f} s")
    print("median distance of the unlabelled answers to their expected places (mean-shape grid px), per "
          "neighbourhood size: " + ", ".join(f"{s or 'all'}: {v:.3f}" for s, v in scores.items()))
    names = np.array(coarse.landmark_names)
    for name, model in models.items():
        print(f"{name}: sigma (grid px) " + ", ".join(f"{s:.1f}" for s in model.sigma))
        which, count = np.unique(names[np.nonzero(moved[name])[1]], return_counts=True)
        print(f"  coarse answers the check moved: {int(moved[name].sum())} of {moved[name].size}: "
              + ", ".join(f"{w} {c}" for w, c in zip(which.tolist(), count.tolist())))
    with pd.option_context("display.width", 200, "display.precision", 2):
        print(comparison.table.to_string())


if __name__ == "__main__":
    main()

"""The label-free shape check (``inference/shape.py``) on a finished run: coarse answers with and without it.

    python benchmarks/shape_guard.py runs/e1_adapter4_long --set eval.subpixel=true --set eval.template_copies=8

The run's coarse predictor answers the unlabelled training images (the template excluded); their
answers make the shape model. On the test split each answer further than ``--reach`` x its spread
from where the other landmarks put it is re-picked under a Gaussian around that place. Prints both
rows (MRE, SD, SDR, median, errors over 10 mm), how many answers were re-picked, and the seconds.
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
    from cc2dkit.config import apply_overrides, parse_sets
    from cc2dkit.data import build_datasets
    from cc2dkit.data.grid import GridImages
    from cc2dkit.inference import cascade_argmax
    from cc2dkit.inference.shape import ShapeModel
    from cc2dkit.methods import run_config
    from cc2dkit.methods.apply import load_run
    from cc2dkit.runtime import setup

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--reach", type=float, default=3.0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads")
    args = ap.parse_args()
    cfg = apply_overrides(run_config(args.run), parse_sets(args.set))
    device, _ = setup(cfg)
    predictor, test = load_run(args.run, device, cfg)
    coarse = predictor.coarse_stage
    train_set, _ = build_datasets(cfg.data, cfg.seed)
    train = GridImages(train_set, cfg.data.grid, "train")
    rows = [i for i, key in enumerate(train.ids) if key != cfg.data.template]
    t0 = time.perf_counter()
    shapes = ShapeModel.from_answers(coarse.predict_grid(train, rows, progress=True),
                                     coarse.template.points[coarse.landmark_indices])
    model_s = time.perf_counter() - t0
    plain, guarded, moved = [], [], []
    t0 = time.perf_counter()
    for _, _, maps in coarse.map_batches(test, list(range(len(test))), progress=True, desc="test"):
        points = cascade_argmax(maps, coarse.subpixel).cpu().double().numpy()
        g, m = shapes.guard(maps, points, args.reach, coarse.subpixel)
        plain.append(points), guarded.append(g), moved.append(m)
    test_s = time.perf_counter() - t0
    moved = np.concatenate(moved)
    table = compare_answers({"coarse": np.concatenate(plain), f"shape check, reach {args.reach:g}":
                             np.concatenate(guarded)}, test, coarse.landmark_indices, cfg.eval.radii_mm).table
    print(f"shape model from {len(rows)} unlabelled images in {model_s:.0f} s; sigma (grid px) "
          + ", ".join(f"{s:.1f}" for s in shapes.sigma))
    print(f"re-picked {int(moved.sum())} of {moved.size} answers; test {test_s:.0f} s")
    names = np.array(coarse.landmark_names)
    print("re-picked per landmark:", dict(zip(*np.unique(names[np.nonzero(moved)[1]], return_counts=True))))
    with pd.option_context("display.width", 200, "display.precision", 2):
        print(table.to_string())


if __name__ == "__main__":
    main()

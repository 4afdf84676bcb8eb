"""The top centroid (``eval.centroid``) ablated on a finished run: the answer read as the cascade
product's argmax and as its centroid above each ``--levels`` fraction of the peak.

    python benchmarks/centroid_check.py runs/idle2/run --levels 0.3 0.5 0.8 --set num_threads=2
    python benchmarks/centroid_check.py runs/small9/adapter_4 --fine-from runs/idle2/run --levels 0.5

The run's coarse predictor (its ``eval.*`` as in its config, or as ``--set`` says; ``eval.centroid``
is set here) maps every test image once; the maps are read with the argmax (sub-pixel with
``eval.subpixel``) and with each level (with a shape check, whose factor is computed from the
maps' reading, once per reading: each coarse row is then that predictor's own answer). With a
fine stage (the run's own, or ``--fine-from``'s) the refined answer is also computed from each
start (the fine stage's windows are cut around the coarse answer: one more pass per level). Prints
one row per reading (MRE, SD, SDR, median, errors over 10 mm), the per-landmark MRE, and per
landmark how many answers the fine stage moved out of and into the largest ``eval.radii_mm`` circle.
A sensitivity table: a level is chosen before it is run, not from this table.

``--radii 4 10``: the crossings of each of these circles instead; ``--beyond 7``: of the answers
over 7 mm from the truth before the fine stage (already wrong), how many it brought closer and how
many it took further (``PredictorComparison.drift``).

``--split train``: the unlabelled training images instead of the test split (their labels score
the rows, as the test labels do; nothing is chosen from them).

``--fine-copies``: the refined rows again with the fine stage's template vectors averaged over the
coarse stage's ``eval.template_copies`` augmented copies (``refine.template_copies``), and the
other way round when the config already has it.
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

    from cc2dkit.analysis import compare_answers
    from cc2dkit.inference import RefinedPredictor, cascade_argmax
    from cc2dkit.methods import open_run

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a finished run folder")
    ap.add_argument("--levels", nargs="+", type=float, default=[0.5], help="centroid levels, each in (0, 1)")
    ap.add_argument("--fine-from", default=None, metavar="RUN", help="refine with the fine stage this run trained")
    ap.add_argument("--fine-copies", action="store_true", help="also refine with refine.template_copies flipped")
    ap.add_argument("--radii", nargs="+", type=float, default=None, metavar="MM",
                    help="circles whose crossings are counted (default: the largest eval.radii_mm)")
    ap.add_argument("--beyond", type=float, default=None, metavar="MM",
                    help="also count the answers over MM from the truth the fine stage brought closer / took further")
    ap.add_argument("--split", choices=("test", "train"), default="test",
                    help="train: the unlabelled training images (labels read only to score)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / refine.* / num_threads")
    args = ap.parse_args()
    if not all(0 < level < 1 for level in args.levels):
        sys.exit(f"--levels {' '.join(map(str, args.levels))}: each a fraction of the peak in (0, 1)")
    try:
        cfg, _, predictor, test = open_run(args.run, args.set, fixed={"eval.centroid": None}, fine_from=args.fine_from,
                                           split=args.split)
    except (OSError, ValueError) as e:
        sys.exit(f"centroid_check.py: {e}")
    coarse = predictor.coarse_stage
    levels = [None, *args.levels]
    label = {None: "argmax" + (" (sub-pixel)" if coarse.subpixel else ""), **{v: f"centroid {v:g}" for v in args.levels}}
    t0 = time.perf_counter()
    answers = {f"coarse, {label[v]}": np.empty((len(test), len(coarse.landmark_indices), 2)) for v in levels}
    if coarse.shape is None:  # the maps do not depend on the reading: map once, read with every level
        with torch.no_grad():
            for start, chunk, maps in coarse.map_batches(test, list(range(len(test))), progress=True):
                for v in levels:
                    answers[f"coarse, {label[v]}"][start:start + len(chunk)] = (
                        cascade_argmax(maps, coarse.subpixel, centroid=v).cpu().double().numpy())
    else:  # the shape check's factor is read the predictor's way: one coarse pass per level
        for v in levels:
            answers[f"coarse, {label[v]}"] = coarse.configured(coarse.subpixel, coarse.template_copies, coarse.poses,
                                                               v).predict_grid(test, progress=True)
    started_from = {}  # each refined row's coarse row
    if isinstance(predictor, RefinedPredictor):
        for v in levels:
            start_from = coarse.configured(coarse.subpixel, coarse.template_copies, coarse.poses, v)
            variants = {f"refined, {label[v]}": predictor.variant(start_from)}
            if args.fine_copies:
                flipped = predictor.variant(start_from, fine_copies=not predictor.fine_copies)
                variants[f"refined, {label[v]}, fine copies {flipped.fine_copies}"] = flipped
            for key, variant in variants.items():
                answers[key], started_from[key] = variant.predict_grid(test, progress=True), f"coarse, {label[v]}"
    seconds = time.perf_counter() - t0
    comparison = compare_answers(answers, test, coarse.landmark_indices, cfg.eval.radii_mm)
    fine = f", fine stage of {args.fine_from}" if args.fine_from else ""
    refined = (f", refined: coarse_gate={predictor.coarse_gate}, max_move={predictor.max_move}, "
               f"fine_copies={predictor.fine_copies}"
               if isinstance(predictor, RefinedPredictor) else "")
    print(f"{args.run}: {len(test)} {args.split} images, subpixel={coarse.subpixel}, "
          f"template_copies={coarse.template_copies}, {len(coarse.poses)} pose(s){refined}{fine}, {seconds:.0f} s")
    print(comparison.report())
    for after, before in started_from.items():
        for radius in args.radii or [max(cfg.eval.radii_mm)]:
            moved = comparison.crossings(before, after, radius)
            print(f"{after}: answers moved out of / into the {radius:g} mm circle by the fine stage, per landmark "
                  f"(landmarks with any):\n{moved[(moved.out + moved['in']) > 0].to_string()}\n"
                  f"all: out {moved.out.sum()}, in {moved['in'].sum()}")
        if args.beyond is not None:
            drift = comparison.drift(before, after, args.beyond)
            print(f"{after}: answers over {args.beyond:g} mm from the truth before the fine stage, brought closer / "
                  f"taken further by it: {drift.closer.sum()} / {drift.further.sum()}; per landmark (landmarks with "
                  f"any):\n{drift[(drift.closer + drift.further) > 0].to_string()}")


if __name__ == "__main__":
    main()

"""Inference time of a trained run folder, per image for all its landmarks, with and without the
refinements (issue 14's target: <= 1.0 s per image for 19 landmarks on 2 CPU cores).

    python benchmarks/bench_inference.py runs/cpu --images 20
    python benchmarks/bench_inference.py runs/cpu --images 20 --set num_threads=1
    python benchmarks/bench_inference.py runs/cpu --images 40 --configured-only --precisions off bf16 --repeat 3

Rows (``inference.refinement_variants``): the grid argmax against the template alone; sub-pixel
peaks; + template copies (8 unless ``--copies``); the fine stage without and with the coarse gate
(and its cap) when the run trained one; the last of these read with the top centroid; last, the
run's predictor as configured (``eval.subpixel``, ``eval.template_copies``, ``eval.centroid`` and
``eval.amp`` off unless ``--set`` turns them on; with ``--set eval.amp=bf16`` every row runs its
networks in bfloat16; ``--configured-only``: that row alone). Features are computed for every
image (no feature cache: what a user's new image costs, the frozen VGG included). ``fixed s``: the
template's embedding (once per predictor and template: its copies' too); ``s/image``: the rest,
per image. Needs the run's data ($CC2DKIT_ISBI_ROOT for ISBI runs); the images are the first
``--images`` of its test split. ``--precisions off bf16``: every row timed with its networks in
float32 and in bfloat16 (``eval.amp``; the machine's noise then hits both alike); ``--repeat N``:
every row timed N times, round-robin, the median and the range printed; ``--shape-off``: the
configured row also without its shape check (``eval.shape_reach``), and without the check's prior
(``eval.shape_prior``) where it has one; ``--plain``: a row for what Infer-PL reads while training
(``Predictor.plain``: the grid argmax against the template alone); ``--local on off``: every row
with and without the finest decoder stages near the answers only (``eval.local_finest``,
``inference/local.py``), with the largest difference of each row's answers from its twin's on the
whole maps (grid px; the same answers up to float rounding) and the (image, landmark) pairs
redone on the whole map. Prints a pandas table.

    python benchmarks/bench_inference.py runs/cpu --images 20 --configured-only --plain --local on off --repeat 2
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished run folder")
    parser.add_argument("--images", type=int, default=20, help="test images to time")
    parser.add_argument("--copies", type=int, default=8, help="template copies of the last row")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--configured-only", action="store_true",
                        help="time only the run's predictor as configured (its eval.* / refine.* with --set)")
    parser.add_argument("--precisions", nargs="+", choices=("off", "bf16"), default=None,
                        help="time every row in each of these inference precisions (default: as configured)")
    parser.add_argument("--repeat", type=int, default=1, help="timings of every row, round-robin (median shown)")
    parser.add_argument("--local", nargs="+", choices=("on", "off"), default=None,
                        help="time every row with the finest decoder stages near the answers only (on) and on the "
                             "whole maps (off; eval.local_finest)")
    parser.add_argument("--plain", action="store_true",
                        help="also time Infer-PL's reading (Predictor.plain: the grid argmax against the template "
                             "alone, no shape check, no fine stage)")
    parser.add_argument("--shape-off", action="store_true",
                        help="also time the configured predictor without its shape check (eval.shape_reach) "
                             "and without its prior (eval.shape_prior)")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import torch

    from cc2dkit.inference import refinement_variants
    from cc2dkit.methods import open_run

    try:  # its template with the original image (for the copies)
        cfg, device, loaded, test = open_run(args.run, args.set, defaults={
            "backbone.cache_features": False, "eval.subpixel": False, "eval.template_copies": 0, "eval.centroid": None,
            "eval.amp": "off"})
    except (OSError, ValueError) as e:
        sys.exit(f"bench_inference.py: {e}")
    test = test.subset(list(range(args.images)))
    rows = {} if args.configured_only else refinement_variants(loaded, args.copies)
    rows["as configured"] = loaded
    if args.plain:
        rows["Infer-PL's reading"] = loaded.coarse_stage.plain(loaded.bf16)
    if args.shape_off and loaded.shape is not None:
        if loaded.shape.settings.prior is not None:
            plain = replace(loaded.shape.settings, prior=None, prior_cap=False)
            rows["as configured, check without its prior"] = loaded.with_shape(replace(loaded.shape, settings=plain))
        rows["as configured, no shape check"] = loaded.with_shape(None)
    if args.precisions:  # each row in each precision: configured() keeps every other setting
        rows = {f"{label} [{'bf16' if p == 'bf16' else 'float32'}]":
                predictor.configured(predictor.subpixel, predictor.template_copies, predictor.poses,
                                     predictor.centroid, bf16=p == "bf16")
                for label, predictor in rows.items() for p in args.precisions}
    twins = {}  # a local row's label -> its twin's on the whole maps
    if args.local:
        rows, pairs = {}, rows
        for label, predictor in pairs.items():
            for mode in args.local:
                rows[f"{label} [local {mode}]"] = predictor.configured(
                    predictor.subpixel, predictor.template_copies, predictor.poses, predictor.centroid,
                    local=mode == "on")
            if "off" in args.local:
                twins[f"{label} [local on]"] = f"{label} [local off]"
    times = {label: [] for label in rows}  # (fixed s, s/image) per timing
    answers = {}
    with torch.no_grad():
        for _ in range(max(args.repeat, 1)):
            for label, predictor in rows.items():
                t0 = time.perf_counter()
                predictor.matcher()
                fixed = time.perf_counter() - t0
                t0 = time.perf_counter()
                answers[label] = predictor.predict_grid(test)
                total = time.perf_counter() - t0
                times[label].append((fixed, max(total - fixed, 0.0) / len(test)))
    table = []
    for label, predictor in rows.items():
        fixed, per_image = np.asarray(times[label]).T
        table.append({"predictor": label, "landmarks": len(predictor.landmark_indices), "images": len(test),
                      "fixed s": float(np.median(fixed)), "s/image": float(np.median(per_image)),
                      "min": float(per_image.min()), "max": float(per_image.max()), "timings": len(per_image),
                      "threads": torch.get_num_threads()})
        if args.local:
            twin = twins.get(label)
            table[-1]["max diff px"] = np.abs(answers[label] - answers[twin]).max() if twin else np.nan
            table[-1]["redone pairs"] = redone_pairs(predictor, test) if label.endswith("[local on]") else np.nan
    print(pd.DataFrame(table).round(3).to_string(index=False))


def redone_pairs(predictor, data) -> str:
    """How many (image, landmark) pairs of ``data`` the predictor's local reading redoes on the whole
    map, of how many (one more, untimed pass of its coarse stage; "-" where it has no local passes)."""
    counts = predictor.coarse_stage.redone_pairs(data, range(len(data)), getattr(predictor, "gate_need", 1))
    return "-" if counts is None else "{}/{}".format(*counts)


if __name__ == "__main__":
    main()

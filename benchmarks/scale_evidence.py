"""Which of the cascade's maps hold a finished run's misses (analysis only: the labels are read to
describe, never to choose anything).

    python benchmarks/scale_evidence.py runs/s23/seed10 --split train --set num_threads=2
    python benchmarks/scale_evidence.py runs/s23/seed10 --split train --exponents 2,1,1,1,1 --set num_threads=2

The run's coarse stage as configured (its shape check from ``model.pt``; no fine stage: a miss over
10 mm is the coarse stage's, the fine stage moves an answer a few pixels at most) answers the test
split, or ``--split train``: the unlabelled training images. Prints ``cc2dkit.analysis.scale_tables``:
per landmark the MRE, the misses over 10 mm and the median error of each map's own argmax; then per
miss the log ratio of each map's value at the truth over its value at the answer (negative: that
map holds the answer; near -13: it shuts the truth out).

``--exponents a,b,...`` (one per scale, coarse to fine; repeatable): the coarse stage read again
with each scale's map raised to its exponent (the shape check's two passes read the same way),
one summary line each: would weighing the scales differently release the misses?
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np
    import pandas as pd
    import torch

    from cc2dkit.analysis import scale_evidence, scale_tables
    from cc2dkit.methods import open_run
    from cc2dkit.metrics import radial_errors_mm, sdr

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--split", choices=("test", "train"), default="test")
    ap.add_argument("--exponents", action="append", default=[], metavar="A,B,...",
                    help="one exponent per scale, coarse to fine")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads")
    args = ap.parse_args()
    t0 = time.perf_counter()
    try:
        cfg, _, predictor, data = open_run(args.run, args.set, split=args.split)
        coarse = predictor.coarse_stage
        s = len(coarse.strides)
        exponents = [np.array([float(v) for v in e.split(",")]) for e in args.exponents]
        if any(len(e) != s or (e <= 0).any() for e in exponents):
            raise ValueError(f"--exponents needs {s} positive numbers (one per scale, coarse to fine), got "
                             f"{args.exponents}")
    except (OSError, ValueError) as e:
        sys.exit(f"scale_evidence.py: {e}")
    if data.unit != "mm" or not all(data.labelled):
        sys.exit(f"scale_evidence.py: {args.run}'s {args.split} split needs every label and images in mm")
    idx, rows = coarse.landmark_indices, list(range(len(data)))
    truth = data.landmarks[:, idx]
    mm_per_px = data.sizes[:, ::-1] / data.grid * data.scale[:, None]  # (N, 2) x, y
    names = [data.landmark_names[i] for i in idx]
    map_names = [f"stride {st}" for st in coarse.strides] + (["shape"] if coarse.shape is not None else [])

    answers = np.zeros((len(rows), len(idx), 2))
    ratio, argmax = np.zeros((len(rows), len(idx), len(map_names))), np.zeros((len(rows), len(idx), len(map_names), 2))
    for start, chunk, maps in coarse.map_batches(data, rows, progress=True):
        b = slice(start, start + len(chunk))
        answers[b] = coarse.answers(maps).cpu().double().numpy()
        ratio[b], argmax[b] = scale_evidence(maps.cpu().numpy(), answers[b], truth[b])
    per, misses = scale_tables(ratio, argmax, answers, truth, mm_per_px, names, data.ids, map_names)
    print(f"{args.run}: {len(data)} {args.split} images, the coarse stage, {time.perf_counter() - t0:.0f} s")
    with pd.option_context("display.width", 220, "display.float_format", "{:.2f}".format):
        print(per.to_string())
        print(misses.to_string(index=False))

    def summary(points: np.ndarray) -> str:
        err = radial_errors_mm(data.to_original(points, idx)[:, idx], data.original_landmarks[:, idx], data.scale)
        rates, over = sdr(err, (2.0, 4.0)), (err > 10).sum(axis=0)
        tail = ", ".join(f"{names[k]} {n}" for k, n in enumerate(over) if n)
        return (f"MRE {err.mean():.2f}, SDR 2 {rates[2.0]:.2f}, SDR 4 {rates[4.0]:.2f}, "
                f"> 10 mm {int(over.sum())} ({tail})")

    print(f"as the run reads them: {summary(answers)}")
    for e in exponents:
        w = torch.as_tensor(e, dtype=torch.float32)[:, None, None, None, None]
        weighed = copy.copy(coarse)  # the predictor's own path (its shape check's two passes too), read weighed
        weighed.answers = lambda maps, allowed=None, w=w: coarse.answers(torch.cat([maps[:s] ** w, maps[s:]]), allowed)
        out = weighed.predict_grid(data, progress=True)
        print(f"exponents {','.join(f'{v:g}' for v in e)}: {summary(out)}")
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

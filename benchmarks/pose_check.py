"""Template poses ablated on a finished run: several pose sets from one pass over the test split.

    python benchmarks/pose_check.py runs/idle2/run --scales 0.9 1 1.1 --rotations -8 0 8 --set num_threads=2

The run's coarse predictor (its ``eval.*`` as in its config, or as ``--set`` says) is matched
against the template in every pose of ``--scales`` x ``--rotations`` (scale about the template's
centre, degrees), the query embedded once; its per-pose maps are then read with each pose set:
the template alone, the scales alone, the rotations alone, all. Per image the pose whose landmarks
match best answers (``cascade.best_pose``, label-free); one more row lets each landmark take the
pose of its own highest peak (no shared pose per image). Prints one row per pose set (MRE, SD, SDR,
median, errors over 10 mm), the per-landmark MRE of each, how often each pose was chosen, and, for
analysis only, how the chosen scale follows each test image's head size relative to the
template's (a similarity fit of its ground truth to the template's landmarks: not used to choose)
and where the errors over 10 mm fall by that size.
The refined answer with a pose set: ``benchmarks/max_move.py RUN --moves 3 --set
eval.pose_scales=... --set eval.pose_rotations_deg=...``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def head_scale(points, reference):
    """Scale of the similarity map taking ``reference`` (K, 2) to ``points`` (K, 2): an analysis of
    how large each head is against the template's."""
    import numpy as np
    a, b = reference - reference.mean(0), points - points.mean(0)
    return float(np.sqrt((b ** 2).sum() / (a ** 2).sum()))


def main() -> None:
    import numpy as np
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from cc2dkit.analysis import compare_answers
    from cc2dkit.inference.cascade import best_pose, cascade_argmax, pose_choice, pose_peaks, upsampled
    from cc2dkit.methods import open_run

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a finished run folder")
    ap.add_argument("--scales", nargs="+", type=float, default=[0.9, 1.0, 1.1], help="template scales (1 included)")
    ap.add_argument("--rotations", nargs="+", type=float, default=[-8.0, 0.0, 8.0], help="degrees (0 included)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads")
    args = ap.parse_args()
    if 1.0 not in args.scales or 0.0 not in args.rotations:
        sys.exit("--scales must include 1 and --rotations 0 (the template alone is the baseline row)")
    try:
        cfg, device, predictor, test = open_run(args.run, args.set, fixed={
            "eval.pose_scales": tuple(args.scales), "eval.pose_rotations_deg": tuple(args.rotations)})
    except (OSError, ValueError) as e:
        sys.exit(f"pose_check.py: {e}")
    coarse = predictor.coarse_stage
    poses = list(coarse.poses)
    sets = {"template alone": [(1.0, 0.0)], "scales": [(s, 0.0) for s in args.scales],
            "rotations": [(1.0, a) for a in args.rotations], "scales x rotations": poses}
    t0 = time.perf_counter()
    answers = {name: np.zeros((len(test), len(coarse.landmark_indices), 2))
               for name in [*sets, "each landmark its own pose"]}
    chosen = np.zeros(len(test), dtype=int)  # index into poses, for the full set
    with torch.no_grad():
        match = coarse.pose_matcher()
        for start in tqdm(range(0, len(test), coarse.batch_size), desc="poses", leave=False):
            rows = list(range(start, min(start + coarse.batch_size, len(test))))
            per_pose = match(test.images[rows].to(device), [test.keys[i] for i in rows])  # P x S x (B, K, h, w)
            for name, members in sets.items():
                maps = best_pose([per_pose[poses.index(p)] for p in members], test.grid)
                answers[name][rows] = cascade_argmax(maps, coarse.subpixel).cpu().double().numpy()
            chosen[rows] = pose_choice(per_pose, test.grid).cpu().numpy()
            own = torch.stack([pose_peaks(m, test.grid) for m in per_pose]).argmax(dim=0)  # (B, K): own best pose
            full = torch.stack([upsampled(m, test.grid) for m in per_pose])  # (P, S, B, K, G, G)
            b_idx, k_idx = np.meshgrid(range(len(rows)), range(own.shape[1]), indexing="ij")
            picked = full[own, :, b_idx, k_idx]  # (B, K, S, G, G)
            answers["each landmark its own pose"][rows] = cascade_argmax(
                picked.permute(2, 0, 1, 3, 4), coarse.subpixel).cpu().double().numpy()
    seconds = time.perf_counter() - t0
    comparison = compare_answers(answers, test, coarse.landmark_indices, cfg.eval.radii_mm)
    print(f"{args.run}: {len(test)} images, {len(poses)} poses, subpixel={coarse.subpixel}, "
          f"template_copies={coarse.template_copies}, {seconds:.0f} s")
    print(comparison.report())
    counts = pd.Series([poses[c] for c in chosen]).value_counts()
    print("poses chosen (scale, degrees) over the test images:\n" + counts.to_string())
    reference = coarse.template.points[coarse.landmark_indices]
    truth_scale = np.array([head_scale(test.landmarks[i][coarse.landmark_indices], reference) for i in range(len(test))])
    chosen_scale = np.array([poses[c][0] for c in chosen])
    table = pd.DataFrame({"head scale (truth)": truth_scale, "chosen scale": chosen_scale})
    print("head scale against the template (from the ground truth; analysis only), by chosen scale:")
    print(table.groupby("chosen scale")["head scale (truth)"].describe().round(3).to_string())
    print(f"correlation: {np.corrcoef(truth_scale, chosen_scale)[0, 1]:.2f}")
    bins = pd.cut(truth_scale, [0, 0.95, 1.05, np.inf], labels=["< 0.95", "0.95-1.05", "> 1.05"])
    gross = pd.DataFrame({name: (e > 10).sum(axis=1) for name, e in comparison.errors.items()}).groupby(bins).sum()
    gross.insert(0, "images", pd.Series(bins).value_counts())
    print("errors over 10 mm by head scale against the template (analysis only):\n" + gross.to_string())


if __name__ == "__main__":
    main()

"""Ablation (issue 14): pseudo-labelled training images as extra templates, label-free.

    python benchmarks/pl_templates.py runs/e1_adapter4_long --weight 0.5 --images 60 --copies 8

A C-Adapter run's model predicts the first ``--images`` non-template training images (sub-pixel,
with the template copies); each landmark's template vectors become ``(1 - w)`` x the mean over the template and its
``--copies`` augmented copies + ``w`` x the mean over those images at their predicted points. The
test split is then predicted with sub-pixel peaks and the "all" row printed, with the median and
the errors over 10 mm. No label but the template's is read before the final scoring. Measured on
ISBI Test1 it did not help (RESULTS.md), so it is not part of the kit's predictors.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a finished C-Adapter run folder")
    ap.add_argument("--weight", type=float, default=0.5, help="share of the PL images' mean vector")
    ap.add_argument("--images", type=int, default=60, help="pseudo-labelled training images")
    ap.add_argument("--copies", type=int, default=8, help="augmented template copies")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F

    from cc2dkit.config import apply_overrides
    from cc2dkit.inference.cascade import similarity_maps
    from cc2dkit.inference.predictor import mean_vectors
    from cc2dkit.methods.context import prepare_context
    from cc2dkit.methods.runfolder import evaluation, load_predictor, run_config

    torch.set_num_threads(args.threads)
    cfg = apply_overrides(run_config(args.run), {"eval.subpixel": True, "eval.template_copies": args.copies})
    ctx = prepare_context(cfg, None, progress=False)
    pred = load_predictor(args.run, "cpu", cfg)
    pred.template = ctx.template  # with its original image, for the copies
    model, grid, t0 = pred.model.eval(), pred.template.grid, time.perf_counter()
    if not model.n_landmarks:
        raise SystemExit(f"{args.run} is not a C-Adapter run")
    rows = ctx.unlabelled[:args.images]
    pls = torch.as_tensor(pred.predict_grid(ctx.train, rows), dtype=torch.float32)  # (n, K, 2) its answers
    with torch.no_grad():
        t_images, t_points = pred.template_views()
        t_taps, p_taps = model.taps(t_images), model.taps(ctx.train.images[rows], [ctx.train.keys[i] for i in rows])
        per_k = []
        for k in range(model.n_landmarks):
            vt = mean_vectors(model.decoder(t_taps, k), t_points[:, k:k + 1], grid)
            vp = mean_vectors(model.decoder(p_taps, k), pls[:, k:k + 1], grid)
            per_k.append([F.normalize((1 - args.weight) * a + args.weight * b, dim=1) for a, b in zip(vt, vp)])

        def maps(images, keys):
            taps = model.taps(images, keys)
            return torch.cat([similarity_maps(model.decoder(taps, k), v, grid) for k, v in enumerate(per_k)], dim=2)
        pred.matcher = lambda: maps
        grid_pred = pred.predict_grid(ctx.test)
    errors, table = evaluation(ctx.test, pred.to_original(ctx.test, grid_pred), pred.landmark_indices,
                               cfg.eval.radii_mm)
    print(table.tail(1).round(2).to_string())
    print(f"median {np.median(errors):.2f}, errors > 10: {int((errors > 10).sum())}, "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

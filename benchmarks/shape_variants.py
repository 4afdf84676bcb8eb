"""Variants of the shape check's guard (``inference/shape.py``) on a finished run: the refined answers.

    python benchmarks/shape_variants.py runs/bf16/run --set num_threads=2 --set eval.amp=bf16 \
        --set eval.centroid=0.5 --set eval.subpixel=true --set eval.template_copies=8
    python benchmarks/shape_variants.py runs/plbf16/s1 --kit-only --priors 1.5 2 --set num_threads=2
    python benchmarks/shape_variants.py runs/s17/seed3 --kit-only --priors 2 --refit --set num_threads=2

The run's predictor with the shape check its config (or ``--set eval.shape_reach=R``; 3 if unset)
asks for (the one its ``model.pt`` keeps, else one fitted to the unlabelled training images), its
guard swapped for each variant, answers the test split:

- ``one pass``: a Gaussian at the expected place of each answer too far from it (the thirteenth
  session's check);
- ``one pass, cut to the disk``: that Gaussian times 0 beyond reach x sigma (the answer must land
  inside the plausible region);
- ``two passes, factors multiplied``: a second pass on the first pass's checked answers, its
  Gaussians multiplied into the first's;
- ``two passes, re-flag`` (``ShapeCheck.guard``, the kit's, without a prior): the unchecked answers checked against
  the expectations of the first pass's checked answers; only those Gaussians;
- ``re-flag, prior c`` (``--priors``; ``eval.shape_prior=c``): the kit's check, and every answer it
  leaves alone weighed by a Gaussian of c x sigma around its expected place;
- ``re-flag, prior c, refitted`` (``--refit``): that check's shape model fitted again, to the coarse
  stage's answers on the unlabelled training images with the check and its prior (no label read):
  spreads from answers the prior has held.
- ``re-flag, prior c, across-ridge spreads`` (``--across``): that check with each landmark's spread
  read across its residuals' long axis only (no label read): the coarse stage's unchecked answers on
  the unlabelled training images (those the check was fitted to), their offsets from their expected
  places turned into the mean shape's frame, the offsets' principal axes (covariance of those within
  3 median radii), and the spread the median offset along the short axis / 0.6745 (a 1-D Gaussian's
  median), kept between 1 grid px and the isotropic spread. A landmark whose answers slide along a
  ridge (gonion) has residuals stretched along it, which widen its isotropic spread and so the
  prior meant to hold it; the short axis reads the spread without the slide.

``--kit-only`` keeps the kit's check (and the prior rows) alone. ``--split train`` answers the
unlabelled training images instead (every one but the template; their labels read only to score,
after a choice: the shape model was fitted to the model's answers on these very images).

Prints one row per variant (MRE, SD, SDR, median, errors over 10 mm), how many answers each moves
against the first row's, and the seconds.
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
    import torch

    from cc2dkit.analysis import compare_answers
    from cc2dkit.config import apply_overrides, parse_sets
    from cc2dkit.inference.shape import MIN_SIGMA, ShapeCheck, ShapeModel, robust_fit, similarity_fit

    def offsets(model, points):
        """(K, 2) answers on one image -> (K, 2) offsets from their expected places in mean-shape px
        and axes (the fits of ``ShapeModel.expected``, undone: a / its scale and rotation)."""
        if model.neighbours is None:
            weights = robust_fit(model.mean, points)[2]
            fits = [similarity_fit(model.mean, points, np.where(np.arange(len(points)) == k, 0.0, weights))
                    for k in range(len(points))]
        else:
            fits = [robust_fit(model.mean[g], points[g])[:2] for g in model.groups()]
        return np.stack([np.linalg.solve(a, points[k] - (model.mean[k] @ a.T + t)) for k, (a, t) in enumerate(fits)])

    def across_ridge_spreads(model, answers):
        """(N, K, 2) unchecked answers on unlabelled images -> (K,) spreads across each landmark's
        long axis of offsets (see the module docstring)."""
        r = np.stack([offsets(model, p) for p in answers])  # (N, K, 2)
        out = np.empty(r.shape[1])
        for k in range(r.shape[1]):
            v = r[:, k]
            norm = np.linalg.norm(v, axis=1)
            core = v[norm <= 3 * np.median(norm)]
            short = np.linalg.eigh(np.cov(core.T))[1][:, 0]  # eigenvector of the smaller eigenvalue
            out[k] = np.clip(np.median(np.abs(v @ short)) / 0.6745, MIN_SIGMA, model.sigma[k])
        return out
    from cc2dkit.methods import run_config
    from cc2dkit.methods.apply import load_run
    from cc2dkit.methods.context import unlabelled_rows
    from cc2dkit.methods.runfolder import training_images
    from cc2dkit.runtime import setup

    def read_np(read, maps):
        return read(maps).cpu().double().numpy()

    class OnePass(ShapeCheck):
        def guard(self, maps, read):
            return self.model.priors(read_np(read, maps), self.reach, maps.shape[-1])[0]

    class Disk(ShapeCheck):
        def guard(self, maps, read):
            size = maps.shape[-1]
            answers = read_np(read, maps)
            factor, far = self.model.priors(answers, self.reach, size)
            ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                                    torch.arange(size, dtype=torch.float32), indexing="ij")
            for b, k in zip(*np.nonzero(far)):
                mu, sigma = self.model.expected(answers[b])
                inside = (xs - float(mu[k, 0])) ** 2 + (ys - float(mu[k, 1])) ** 2 <= float(self.reach * sigma[k]) ** 2
                factor[b, k] = factor[b, k] * inside
            return factor

    class Multiplied(ShapeCheck):
        def guard(self, maps, read):
            size = maps.shape[-1]
            first = self.model.priors(read_np(read, maps), self.reach, size)[0]
            checked = read_np(read, torch.cat([maps, first[None].to(maps.device, maps.dtype)]))
            return first * self.model.priors(checked, self.reach, size)[0]

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--priors", type=float, nargs="*", default=[], metavar="C",
                    help="also the kit's check with eval.shape_prior=C (one row each)")
    ap.add_argument("--refit", action="store_true",
                    help="also each prior's check refitted to the checked answers on the training images")
    ap.add_argument("--across", action="store_true",
                    help="also each prior's check with across-ridge spreads (see above)")
    ap.add_argument("--kit-only", action="store_true", help="leave out the three other guards")
    ap.add_argument("--split", choices=("test", "train"), default="test",
                    help="the images answered (train: the training split but the template)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads")
    args = ap.parse_args()
    if (args.refit or args.across) and not args.priors:
        ap.error("--refit and --across change each prior's check: give --priors C ...")
    cfg = apply_overrides(run_config(args.run), parse_sets(args.set))
    if cfg.eval.shape_reach is None:
        cfg = cfg.replace(**{"eval.shape_reach": 3.0})
    device, _ = setup(cfg)
    t0 = time.perf_counter()
    try:
        predictor, test = load_run(args.run, device, cfg)
        if args.split == "train" or args.refit or args.across:
            train = training_images(cfg)
            unlabelled = unlabelled_rows(train, cfg.data.template)
        if args.split == "train":
            test = train.subset(unlabelled)
    except (OSError, ValueError) as e:
        sys.exit(str(e))
    check = predictor.shape
    kit = "two passes, re-flag (the kit's, no prior)"
    variants = {} if args.kit_only else {"one pass": OnePass(check.model, check.reach),
                                         "one pass, cut to the disk": Disk(check.model, check.reach),
                                         "two passes, factors multiplied": Multiplied(check.model, check.reach)}
    variants[kit] = ShapeCheck(check.model, check.reach)
    for c in args.priors:
        variants[f"re-flag, prior {c:g}"] = prior_check = ShapeCheck(check.model, check.reach, c)
        if args.refit:
            t1, coarse = time.perf_counter(), predictor.coarse_stage
            checked = coarse.with_shape(prior_check).predict_grid(train, unlabelled, progress=True)
            refit = ShapeCheck.fit(checked, coarse.template.points[coarse.landmark_indices], check.reach, c)
            variants[f"re-flag, prior {c:g}, refitted"] = refit
            spreads = " ".join(f"{a:.2f}->{b:.2f}" for a, b in zip(check.model.sigma, refit.model.sigma))
            print(f"prior {c:g} refitted in {time.perf_counter() - t1:.0f} s: neighbours "
                  f"{check.model.neighbours or 'all'}->{refit.model.neighbours or 'all'}, spreads (mean-shape px) {spreads}")
    if args.across:
        t1 = time.perf_counter()
        coarse = predictor.coarse_stage.with_shape(None).predict_grid(train, unlabelled, progress=True)
        sigma = across_ridge_spreads(check.model, coarse)
        print(f"across-ridge spreads in {time.perf_counter() - t1:.0f} s (mean-shape px, isotropic -> across): "
              + " ".join(f"{a:.2f}->{b:.2f}" for a, b in zip(check.model.sigma, sigma)))
        for c in args.priors:
            variants[f"re-flag, prior {c:g}, across-ridge spreads"] = ShapeCheck(
                ShapeModel(check.model.mean, sigma, check.model.neighbours), check.reach, c)
    answers = {label: predictor.with_shape(guard).predict_grid(test, progress=True) for label, guard in variants.items()}
    comparison = compare_answers(answers, test, predictor.landmark_indices, cfg.eval.radii_mm)
    first = answers[kit if args.kit_only else "one pass"]
    comparison.table["moved"] = [int((np.linalg.norm(a - first, axis=-1) > 1e-6).sum()) for a in answers.values()]
    print(f"{args.run}: {len(test)} {args.split} images, reach {check.reach:g}, neighbours {check.model.neighbours or 'all'}, "
          f"{time.perf_counter() - t0:.0f} s (the check's fit included where the run has none)")
    with pd.option_context("display.width", 200, "display.precision", 2):
        print(comparison.table.to_string())


if __name__ == "__main__":
    main()

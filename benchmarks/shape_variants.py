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
- ``re-flag, prior c, isotropic spreads`` and ``re-flag, prior c, across-ridge spreads``
  (``--across``): that check with its spreads fitted again to the coarse stage's unchecked answers on
  the unlabelled training images (those the check is fitted to; no label read), the run's mean shape
  and neighbourhood kept: isotropic (each landmark's median distance from its expected place; the
  kit's check until the nineteenth session) and across its offsets' long axis only (``shape.spreads``,
  the kit's since). A run saved before keeps isotropic spreads in its model file; one saved since,
  across-ridge ones: the two rows compare them on either.
- ``re-flag, prior c, regression`` (``--regression``; ``eval.shape_regression``): a check fitted
  afresh, like the kit's at a run's end (the coarse stage's unchecked answers on the unlabelled
  training images; neighbourhood chosen, no label read), its expected places from the regression
  on the neighbours' places (``ShapeModel.coef``; since the twenty-third session a neighbour
  further than ``shape.INPUT_REACH`` rigid spreads from its rigid expectation enters as the mean
  shape's point: the line printed says how many answers that left out).
- ``re-flag, prior c, far cut to the disk`` (``--cut``): the kit's check with its prior, the
  Gaussian of each answer it finds far times 0 beyond reach x sigma from the expected place (the
  re-picked answer must land in the plausible region; the prior on the other answers unchanged).
- ``re-flag, prior c, far cut if still outside`` (``--cut-outside``): the kit's check with its
  prior, and only where a far answer re-picked under its Gaussian still lies beyond reach x sigma
  of the expected place (a wrong match the Gaussian's fall did not outweigh) is that Gaussian cut
  to the disk.

- ``re-flag, prior c, capped at the median spread`` (``--cap``; ``eval.shape_prior_cap``): the kit's
  check with its prior, each prior's spread at most the median spread over the landmarks
  (``ShapeModel.prior_sigma``: a landmark whose answers slide is held as firmly as the typical one).

- ``re-flag, prior c, far re-picked on the coarse scales`` (``--far-coarse``): the kit's check with
  its prior, and each answer it finds far re-picked on the three coarsest maps alone (strides 32,
  16, 8: the RFB's scales, which see the whole head) under its Gaussian: the finer maps set to 1
  for that landmark on that image, so that a fine gate shut at the expected place (sella's misses,
  fortieth session) cannot keep the re-pick from it. The answers left alone read every map. With
  it also ``... if still outside``: only where the kit's re-pick on every map still lands beyond
  reach x sigma of the expected place (the symptom of a shut fine gate) is the re-pick made again
  on the coarse scales.

``--kit-only`` keeps the kit's check (and the prior rows) alone; ``--priors-only`` with it leaves
out the check without a prior too. ``--split train`` answers the
unlabelled training images instead (every one but the template; their labels read only to score,
after a choice: the shape model was fitted to the model's answers on these very images).

Prints one row per variant (MRE, SD, SDR, median, errors over 10 mm), how many answers each moves
against the first row's, and the seconds; then each variant's errors over 10 mm per landmark.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRIOR_VARIANTS = {  # flag -> what it adds beside each --priors row
    "refit": "refitted to the checked answers on the training images",
    "across": "with isotropic and with across-ridge spreads fitted again",
    "regression": "fitted afresh with the regression on the neighbours",
    "cut": "with its far answers' Gaussians cut to their disks",
    "cut-outside": "with a far answer's Gaussian cut to its disk where its re-pick lands outside",
    "cap": "with its spreads capped at the median spread (eval.shape_prior_cap)",
    "far-coarse": "with its far answers re-picked on the three coarsest maps alone (all; only those still outside)",
}
COARSE_MAPS = 3  # the cascade's maps run coarse to fine (strides 32, 16, 8, 4, 2): the first three are the RFB's


def main() -> None:
    import numpy as np
    import torch

    from cc2dkit.analysis import compare_answers
    from cc2dkit.inference.shape import ShapeCheck, ShapeModel, ShapeSettings, spreads
    from cc2dkit.methods import load_run, run_settings
    from cc2dkit.methods.context import unlabelled_rows
    from cc2dkit.methods.runfolder import training_images
    from cc2dkit.runtime import setup

    def read_np(read, maps):
        return read(maps).cpu().double().numpy()

    class OnePass(ShapeCheck):
        def guard(self, maps, read):
            return self.model.priors(read_np(read, maps), self.settings.reach, maps.shape[-1])[0]

    def disk(size, centre, radius):  # (G, G) 1 inside the circle, 0 beyond
        ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                                torch.arange(size, dtype=torch.float32), indexing="ij")
        return ((xs - float(centre[0])) ** 2 + (ys - float(centre[1])) ** 2 <= float(radius) ** 2).float()

    class Disk(ShapeCheck):
        def guard(self, maps, read):
            answers = read_np(read, maps)
            factor, far = self.model.priors(answers, self.settings.reach, maps.shape[-1])
            for b, k in zip(*np.nonzero(far)):
                mu, sigma = self.model.expected(answers[b])
                factor[b, k] *= disk(maps.shape[-1], mu[k], self.settings.reach * sigma[k])
            return factor

    def still_outside(check, maps, read, factor, far, checked):
        """(B, K) the far answers whose re-pick under the kit's factor still lands beyond reach x sigma
        of the expectations the far flags were read against (those of the first pass's ``checked``)."""
        repicked = read_np(read, torch.cat([maps, factor[None].to(maps.device, maps.dtype)]))
        outside = np.zeros_like(far)
        for b in np.unique(np.nonzero(far)[0]):
            mu, sigma = check.model.expected(checked[b])
            outside[b] = far[b] & (np.linalg.norm(repicked[b] - mu, axis=1) > check.settings.reach * sigma)
        return outside

    class DiskPrior(ShapeCheck):  # the kit's guard, its far answers' Gaussians cut to their disks
        outside_only = False  # DiskOutside: only where the answer re-picked under the Gaussian lands outside

        def guard(self, maps, read):
            factor, far, checked = self.passes(maps, read)
            cut = still_outside(self, maps, read, factor, far, checked) if self.outside_only else far
            for b in np.unique(np.nonzero(cut)[0]):
                mu, sigma = self.model.expected(checked[b])  # the expectations the far flags were read against
                for k in np.flatnonzero(cut[b]):
                    factor[b, k] *= disk(maps.shape[-1], mu[k], self.settings.reach * sigma[k])
            return factor

    class DiskOutside(DiskPrior):
        outside_only = True

    class FarCoarse(ShapeCheck):  # the kit's guard; a far answer re-picked on the coarse scales alone
        outside_only = False  # FarCoarseOutside: only where its re-pick on every map lands outside the disk

        def guard(self, maps, read):
            factor, far, checked = self.passes(maps, read)
            if self.outside_only:
                far = still_outside(self, maps, read, factor, far, checked)
            b, k = (torch.as_tensor(i, device=maps.device) for i in np.nonzero(far))
            maps[COARSE_MAPS:, b, k] = 1.0  # in place: the predictor's matcher joins these very maps to the factor
            return factor

    class FarCoarseOutside(FarCoarse):
        outside_only = True

    class Multiplied(ShapeCheck):
        def guard(self, maps, read):
            size = maps.shape[-1]
            first = self.model.priors(read_np(read, maps), self.settings.reach, size)[0]
            checked = read_np(read, torch.cat([maps, first[None].to(maps.device, maps.dtype)]))
            return first * self.model.priors(checked, self.settings.reach, size)[0]

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--priors", type=float, nargs="*", default=[], metavar="C",
                    help="also the kit's check with eval.shape_prior=C (one row each)")
    for flag, what in PRIOR_VARIANTS.items():
        ap.add_argument(f"--{flag}", action="store_true", help=f"also each prior's check {what}")
    ap.add_argument("--kit-only", action="store_true", help="leave out the three other guards")
    ap.add_argument("--priors-only", action="store_true",
                    help="with --kit-only: leave out the kit's check without a prior too (the rows of --priors only)")
    ap.add_argument("--split", choices=("test", "train"), default="test",
                    help="the images answered (train: the training split but the template)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads")
    args = ap.parse_args()
    if any(getattr(args, flag.replace("-", "_")) for flag in PRIOR_VARIANTS) and not args.priors:
        ap.error(", ".join(f"--{flag}" for flag in PRIOR_VARIANTS) + " change each prior's check: give --priors C ...")
    if args.priors_only and not (args.kit_only and args.priors):
        ap.error("--priors-only needs --kit-only and --priors C ...")
    try:
        cfg = run_settings(args.run, args.set)
    except (OSError, ValueError) as e:
        sys.exit(f"shape_variants.py: {e}")
    if cfg.eval.shape_reach is None:
        cfg = cfg.replace(**{"eval.shape_reach": 3.0})
    device, _ = setup(cfg)
    t0 = time.perf_counter()
    try:
        predictor, test = load_run(args.run, device, cfg)
        if args.split == "train" or args.refit or args.across or args.regression:
            train = training_images(cfg)
            unlabelled = unlabelled_rows(train, cfg.data.template)
        if args.split == "train":
            test = train.subset(unlabelled)
    except (OSError, ValueError) as e:
        sys.exit(f"shape_variants.py: {e}")
    check = predictor.shape
    far_only = ShapeSettings(check.settings.reach)
    kit = "two passes, re-flag (the kit's, no prior)"
    variants = {} if args.kit_only else {"one pass": OnePass(check.model, far_only),
                                         "one pass, cut to the disk": Disk(check.model, far_only),
                                         "two passes, factors multiplied": Multiplied(check.model, far_only)}
    if not args.priors_only:
        variants[kit] = ShapeCheck(check.model, far_only)
    for c in args.priors:
        prior = ShapeSettings(far_only.reach, c)
        variants[f"re-flag, prior {c:g}"] = prior_check = ShapeCheck(check.model, prior)
        if args.cap:
            variants[f"re-flag, prior {c:g}, capped at the median spread"] = ShapeCheck(
                check.model, ShapeSettings(far_only.reach, c, prior_cap=True))
        if args.far_coarse:
            variants[f"re-flag, prior {c:g}, far re-picked on the coarse scales"] = FarCoarse(check.model, prior)
            variants[f"re-flag, prior {c:g}, far re-picked on the coarse scales if still outside"] = \
                FarCoarseOutside(check.model, prior)
        if args.cut:
            variants[f"re-flag, prior {c:g}, far cut to the disk"] = DiskPrior(check.model, prior)
        if args.cut_outside:
            variants[f"re-flag, prior {c:g}, far cut if still outside"] = DiskOutside(check.model, prior)
        if args.refit:
            t1, coarse = time.perf_counter(), predictor.coarse_stage
            checked = coarse.with_shape(prior_check).predict_grid(train, unlabelled, progress=True)
            refit = ShapeCheck.fit(checked, coarse.template.points[coarse.landmark_indices], prior)
            variants[f"re-flag, prior {c:g}, refitted"] = refit
            change = " ".join(f"{a:.2f}->{b:.2f}" for a, b in zip(check.model.sigma, refit.model.sigma))
            print(f"prior {c:g} refitted in {time.perf_counter() - t1:.0f} s: neighbours "
                  f"{check.model.neighbours or 'all'}->{refit.model.neighbours or 'all'}, spreads (mean-shape px) {change}")
    if args.across:
        t1, m = time.perf_counter(), check.model
        coarse = predictor.coarse_stage.with_shape(None).predict_grid(train, unlabelled, progress=True)
        fitted = dict(zip(("isotropic", "across-ridge"), spreads(m.offsets(coarse))))  # offsets: mean and neighbours only
        print(f"spreads in {time.perf_counter() - t1:.0f} s (mean-shape px, saved / isotropic -> across): "
              + " ".join(f"{a:.2f}/{b:.2f}->{c:.2f}" for a, b, c in zip(m.sigma, *fitted.values())))
        for c in args.priors:
            for name, sigma in fitted.items():
                variants[f"re-flag, prior {c:g}, {name} spreads"] = ShapeCheck(
                    ShapeModel(m.mean, sigma, m.neighbours), ShapeSettings(far_only.reach, c))
    if args.regression:
        t1, coarse = time.perf_counter(), predictor.coarse_stage
        unchecked = coarse.with_shape(None).predict_grid(train, unlabelled, progress=True)
        for c in args.priors:
            fresh = ShapeCheck.fit(unchecked, coarse.template.points[coarse.landmark_indices],
                                   ShapeSettings(far_only.reach, c, regression=True))
            variants[f"re-flag, prior {c:g}, regression"] = fresh
        m = fresh.model
        wild = np.mean([m._wild(p, m._fits(p), m.input_sigma) for p in unchecked], axis=0)  # (K,) share left out
        print("regression inputs left out (share of the unlabelled answers): "
              + " ".join(f"{w:.3f}" for w in wild) + f"; all {wild.mean():.3f}")
        print(f"regression fitted in {time.perf_counter() - t1:.0f} s: neighbours {fresh.model.neighbours or 'all'}, "
              "spreads (mean-shape px, saved -> regression) "
              + " ".join(f"{a:.2f}->{b:.2f}" for a, b in zip(check.model.sigma, fresh.model.sigma)))
    answers = {label: predictor.with_shape(guard).predict_grid(test, progress=True) for label, guard in variants.items()}
    comparison = compare_answers(answers, test, predictor.landmark_indices, cfg.eval.radii_mm)
    first = next(iter(answers.values()))  # the first row: one pass, the kit's check, or the first prior
    comparison.table["moved"] = [int((np.linalg.norm(a - first, axis=-1) > 1e-6).sum()) for a in answers.values()]
    print(f"{args.run}: {len(test)} {args.split} images, reach {far_only.reach:g}, neighbours {check.model.neighbours or 'all'}, "
          f"{time.perf_counter() - t0:.0f} s (the check's fit included where the run has none)")
    print(comparison.summary())


if __name__ == "__main__":
    main()

"""A trained run matched against another template, no retraining: how much does the template matter?

    python benchmarks/other_template.py runs/cpu --template 151 --split train
    python benchmarks/other_template.py runs/cpu --template 151 --template-split test --split train --limit 50

The run's model(s) stay as they are; the template becomes image ``--template`` of split
``--template-split`` (default: the run's test split), with its ground-truth landmarks as a user's
annotation would be. Both predictors (the run's own template, the other one) are evaluated on
``--split`` (default: the run's training split, where the run's own template lies: that image is
left out of the scores so that neither template scores itself). Prints the two "all" rows and the
per-landmark difference (``other - own MRE``) and the seconds of each evaluation.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import pandas as pd

    from cc2dkit.analysis import compare_tables
    from cc2dkit.data import build_datasets
    from cc2dkit.data.grid import GridImages
    from cc2dkit.inference import Template
    from cc2dkit.methods import load_predictor, run_settings
    from cc2dkit.methods.apply import evaluate_predictor
    from cc2dkit.runtime import setup

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--template", required=True, help="image id of the other template")
    ap.add_argument("--template-split", choices=("train", "test"), default="test")
    ap.add_argument("--split", choices=("train", "test"), default="train", help="the images to score")
    ap.add_argument("--limit", type=int, default=None, help="score only the first N images of --split")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads overrides")
    args = ap.parse_args()
    try:
        cfg = run_settings(args.run, args.set)
        device, _ = setup(cfg)
        sets = dict(zip(("train", "test"), build_datasets(cfg.data, cfg.seed)))
        grids = {name: GridImages(ds, cfg.data.grid, name) for name, ds in sets.items()}
        own = load_predictor(args.run, device, cfg)
        other = own.with_template(Template.from_data(grids[args.template_split], args.template))
    except (OSError, ValueError) as e:
        sys.exit(f"other_template.py: {e}")
    data = grids[args.split]
    skip = {cfg.data.template if args.split == "train" else None,
            args.template if args.template_split == args.split else None}
    rows = [i for i, k in enumerate(data.ids) if k not in skip][: args.limit]
    print(f"{args.run}: {len(rows)} images of split {args.split!r}; own template {cfg.data.template!r} "
          f"(train), other {args.template!r} ({args.template_split})")
    tables, seconds = {}, {}
    for label, predictor in (("own template", own), (f"template {args.template}", other)):
        start = time.perf_counter()
        tables[label] = evaluate_predictor(predictor, data, rows, cfg.eval.radii_mm)
        seconds[label] = time.perf_counter() - start
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(pd.DataFrame({k: t.loc["all"] for k, t in tables.items()}).T.round(2).assign(
            seconds=pd.Series(seconds).round(1)))
        print(compare_tables(tables, columns=("MRE_mm",)).round(2))


if __name__ == "__main__":
    main()

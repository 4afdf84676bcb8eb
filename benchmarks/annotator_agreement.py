"""How far apart ISBI's two doctors put each landmark, the template's own two readings, and a run's
per-landmark errors beside them (analysis only: labels read to describe, never to choose).

    python benchmarks/annotator_agreement.py                      # the doctors alone, template 125
    python benchmarks/annotator_agreement.py --run runs/s23/seed10

The dataset root comes from ``--root`` or ``CC2DKIT_ISBI_ROOT``; the template from ``--template``
or the run's config. Prints per landmark the distance between the doctors on the training split
and on Test1 (mean, median, share over 4 mm), the distance between their two readings of the
template, and with ``--run`` the run's Test1 MRE and SDR 4 mm (from its ``errors_test.csv``) with
the rank correlation over the landmarks of that MRE with each distance.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np
    import pandas as pd

    from cc2dkit.analysis import agreement_table, annotator_distances
    from cc2dkit.data.isbi import ISBIDataset, resolve_isbi_root
    from cc2dkit.methods import run_config

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="ISBI 2015 folder (default: $CC2DKIT_ISBI_ROOT)")
    ap.add_argument("--template", default=None, help="template image id (default: the run's, else 125)")
    ap.add_argument("--run", default=None, help="a finished run folder with errors_test.csv")
    args = ap.parse_args()
    try:
        cfg = run_config(args.run) if args.run else None
        root = resolve_isbi_root(args.root or (cfg.data.root if cfg and cfg.data.root else None))
        template = args.template or (cfg.data.template if cfg else "125")
        train, test = ISBIDataset(root, "train"), ISBIDataset(root, "test1")
        if template not in train.ids:
            raise ValueError(f"template {template!r} is not a training image of {root}")
        errors = None
        if args.run:
            path = Path(args.run) / "errors_test.csv"
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: is {args.run} a finished run?")
            long = pd.read_csv(path)
            wide = long.pivot(index="image", columns="landmark", values="error_mm")
            missing = sorted(set(train.landmark_names) - set(wide.columns))
            if missing or len(wide) != len(test):
                raise ValueError(f"{path}: expected {len(test)} Test1 images x the 19 ISBI landmarks, got "
                                 f"{len(wide)} images, missing landmarks {missing}")
            errors = wide[list(train.landmark_names)].to_numpy()
    except (OSError, ValueError) as e:
        sys.exit(f"annotator_agreement.py: {e}")

    def distances(ds: ISBIDataset) -> np.ndarray:
        return annotator_distances(np.stack([ds.annotations(i) for i in range(len(ds))]), ds.spacing_mm)

    names, train_apart = list(train.landmark_names), distances(train)
    on_train = agreement_table(train_apart, names)
    on_test = agreement_table(distances(test), names, errors)
    own = train_apart[train.index(template)]
    table = pd.concat({"training split": on_train, "Test1": on_test}, axis=1)
    table[("template", f"{template}: apart (mm)")] = own
    pd.set_option("display.width", 200)
    print(f"ISBI 2015 at {root}: the doctors' two readings of each landmark (distance in mm)")
    print(table.round(2).to_string())
    print(f"\nall landmarks: training split {on_train.iloc[:, 0].mean():.2f} mm apart on average, Test1 "
          f"{on_test.iloc[:, 0].mean():.2f}; template {template}: {own.mean():.2f} (its widest: "
          + ", ".join(f"{names[k]} {own[k]:.1f}" for k in np.argsort(-own)[:4]) + ")")
    if errors is not None:
        mre = on_test["detector MRE (mm)"]
        ranks = pd.DataFrame({"mre": mre, "test": on_test.iloc[:, 0], "train": on_train.iloc[:, 0],
                              "template": own}).rank()
        rho = ranks.corr().loc["mre"]
        print(f"\n{args.run}: Test1 MRE {errors.mean():.2f} mm; rank correlation over the 19 landmarks of its "
              f"MRE with the doctors' distance on Test1 {rho['test']:.2f}, on the training split "
              f"{rho['train']:.2f}, on the template {rho['template']:.2f}")


if __name__ == "__main__":
    main()

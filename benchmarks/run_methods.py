"""Train and evaluate the paper's methods under one written-down budget; one process per method.

    python benchmarks/run_methods.py multi adapter:0 adapter:16 sla atd --out runs/budget
    python benchmarks/run_methods.py sla --set train.epochs=4          # change the budget
    python benchmarks/run_methods.py sla atd --budget preset --out runs/methods_cpu   # the cpu preset's budget

Each METHOD is a method name (cc2d, multi, wide, sla, atd, adapter) with an optional ``:N``
(C_A for adapter, extra channels for wide). Every method gets the same config: the ``cpu``
preset plus the ``--budget`` below plus ``--set`` overrides, so the budget is the same per trained model
(SLA and C-ATD train K models, each with this budget). Each run writes its run folder
``OUT/LABEL`` and ``OUT/LABEL/summary.json`` (wall time, training seconds, peak RSS, trainable
parameters of the coarse model(s) and of the fine network, the "all" row); at the end a table of
all runs found under OUT is printed.

Runs are resumable across sessions: a method whose ``summary.json`` exists is skipped (``--force``
reruns it), one whose run folder holds ``checkpoint.pt`` continues from its last epoch. Then
``wall_s`` covers only the last process; ``train_s`` (the sum of the per-epoch seconds in
``metrics.csv``: training, Infer-PL and tracking, without the final evaluation) covers them all.

``--budget small`` (the default, ``BUDGETS["small"]``), per model: 10 epochs x 10 steps of batch 8
per stage at a constant LR; pseudo-labels on the first 30 non-template training images
(``method.pl_images``); 10 test images tracked every 2 epochs; no fine stage; the final evaluation
on every Test1 image at the grid argmax against the template alone (``evaluate --set
eval.subpixel=true --set eval.template_copies=8`` adds the refinements; ``max_move.py RUN --fine-from
OTHER`` the fine stage that the run OTHER trained, the same network for every method). It is far below the
paper's (300 epochs over 149 images): sized so that all methods, 19 SLA/C-ATD models included, fit
a few hours on 2 CPU cores.

``--budget preset``: the ``cpu`` preset unchanged (16 epochs x 20 steps per stage, cosine LR, PLs on
60 images, the fine stage trained in the run, the answer refined). The coarse and refined rows of a
finished run: ``benchmarks/max_move.py RUN --moves 3 none``. SLA and C-ATD (19 models)
at this budget, 2 threads, bf16 on an Intel Xeon with AMX-BF16: 38.6 and 75.3 epoch minutes, 42 and
79 minutes wall (RESULTS, forty-eighth session). Not run on an AVX2-only CPU (float32), where the
C-Adapter's epochs take ~5x those where bf16 is native.

Needs $CC2DKIT_ISBI_ROOT and $CC2DKIT_WEIGHTS (the cpu preset's data and weights).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

BUDGETS = {  # overrides of the cpu preset, per trained model
    "small": {"train.epochs": 10, "train.steps_per_epoch": 10, "method.pl_images": 30, "eval.track_images": 10,
              "eval.track_every": 2, "train.lr_schedule": "constant", "eval.subpixel": False,
              "eval.template_copies": 0, "eval.centroid": None, "refine.enabled": False},
    "preset": {},
}


def config_for(spec: str, sets: list[str], budget: str = "small"):
    from cc2dkit.config import parse_sets, preset
    from cc2dkit.methods import method_config

    return method_config(preset("cpu", **{**BUDGETS[budget], **spec_overrides(spec), **parse_sets(sets)}))


def spec_overrides(spec: str) -> dict:
    """A METHOD spec as config overrides: ``adapter:N`` sets C_A, ``wide:N`` the extra channels."""
    name, _, arg = spec.partition(":")
    over = {"method.name": name}
    if arg and name == "adapter":
        over["method.adapter_channels"] = int(arg)
    elif arg and name == "wide":
        over["net.extra_channels"] = int(arg)
    elif arg:
        raise SystemExit(f"{spec!r}: only adapter:N and wide:N take a number")
    return over


def run_dir_of(out: Path, spec: str) -> Path:
    return out / spec.replace(":", "_")


def run_one(spec: str, out: Path, sets: list[str], budget: str = "small") -> None:
    from cc2dkit.config import parse_sets
    from cc2dkit.methods import run_method
    from cc2dkit.methods.runfolder import CHECKPOINT, trained_networks
    from cc2dkit.network.accounting import trainable_parameter_count

    cfg = config_for(spec, sets, budget)
    run_dir = run_dir_of(out, spec)
    resume = (run_dir / CHECKPOINT).exists()
    if resume:
        print(f"{spec}: resuming from {run_dir / CHECKPOINT}", flush=True)
    t0 = time.perf_counter()
    result = run_method(cfg, run_dir, progress=True, resume=resume)
    wall = time.perf_counter() - t0
    models, fine = trained_networks(result.predictor)
    train_s = result.metrics.groupby("epoch")["seconds"].first().sum()
    summary = {"method": spec, "wall_s": round(wall, 1), "train_s": round(float(train_s), 1), "resumed": resume,
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
               "trainable_params": sum(trainable_parameter_count(m) for m in models),
               "fine_params": None if fine is None else trainable_parameter_count(fine),
               "models": len(models), "budget_name": budget, "budget": dict(BUDGETS[budget], **parse_sets(sets)),
               "num_threads": cfg.num_threads,
               "all": result.table.loc["all"].to_dict()}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(json.dumps(summary, default=float))


STAGES = {"cc2d": 1, "multi": 1, "wide": 1, "sla": 1, "atd": 2, "adapter": 2}  # training stages per epoch


def throughput(run_dir: Path, models: int) -> dict:
    """Training samples per second of a finished run, from its metrics.csv.

    ``epoch_samples_per_s``: over whole epochs (training, Infer-PL, tracking); ``train_samples_per_s``:
    over the training stages only (``train_seconds``, NaN for runs logged before that column existed).
    """
    cfg = json.loads((run_dir / "config.json").read_text())
    per_epoch = pd.read_csv(run_dir / "metrics.csv").groupby("epoch").first()
    samples = cfg["train"]["steps_per_epoch"] * cfg["train"]["batch_size"] * STAGES[cfg["method"]["name"]] * models
    timed = per_epoch["train_seconds"].dropna() if "train_seconds" in per_epoch else pd.Series(dtype=float)
    return {"epoch_samples_per_s": round(samples * len(per_epoch) / per_epoch["seconds"].sum(), 2),
            "train_samples_per_s": round(samples * len(timed) / timed.sum(), 2) if len(timed) else float("nan")}


def table(out: Path) -> pd.DataFrame:
    rows = []
    for f in sorted(out.glob("*/summary.json")):
        s = json.loads(f.read_text())
        rows.append({"method": s["method"], **{k: round(v, 2) for k, v in s["all"].items()},
                     "models": s["models"], "trainable_params": s["trainable_params"],
                     "fine_params": s.get("fine_params"),
                     **throughput(f.parent, s["models"]),
                     "train_min": round(s.get("train_s", float("nan")) / 60, 1),
                     "wall_min": round(s["wall_s"] / 60, 1), "peak_rss_mb": s["peak_rss_mb"]})
    return pd.DataFrame(rows).set_index("method") if rows else pd.DataFrame()


def landmark_table(out: Path, column: str = "MRE_mm") -> pd.DataFrame:
    """One ``evaluation.csv`` column per finished run: landmarks x methods."""
    cols = {json.loads(f.read_text())["method"]: pd.read_csv(_evaluation_file(f.parent), index_col="landmark")[column]
            for f in sorted(out.glob("*/summary.json"))}
    return pd.DataFrame(cols).round(2)


def outlier_table(out: Path, far_mm: float = 10.0) -> pd.DataFrame:
    """Median radial error and gross failures (> ``far_mm``) per finished run, from its test predictions
    against the Test1 annotations (reads $CC2DKIT_ISBI_ROOT): where MRE and median disagree."""
    import numpy as np

    from cc2dkit.data import build_datasets
    from cc2dkit.methods import run_config
    from cc2dkit.metrics import radial_errors_mm

    rows, test = [], None
    for f in sorted(out.glob("*/summary.json")):
        if test is None:
            cfg = run_config(f.parent)
            _, test = build_datasets(cfg.data, cfg.seed)
            samples = [test[i] for i in range(len(test))]
        pred = pd.read_csv(_predictions_file(f.parent), dtype={"image": str})
        pred["image"] = [Path(v).stem for v in pred["image"]]  # RawImage/Test1Data/151.bmp (0.1 runs: 151)
        pred = pred.set_index(["image", "landmark"])
        errors = np.stack([radial_errors_mm(pred.loc[str(s.id)].loc[list(test.landmark_names), ["x", "y"]]
                                            .to_numpy()[None], np.asarray(s.landmarks)[None], s.spacing_mm)[0]
                           for s in samples])  # (N, L) mm
        far = errors > far_mm
        rows.append({"method": json.loads(f.read_text())["method"], "MRE_mm": errors.mean(),
                     "median_mm": float(np.median(errors)), f"n_over_{far_mm:g}mm": int(far.sum()),
                     "of": errors.size, "max_mm": errors.max(), f"MRE_without_over_{far_mm:g}mm": errors[~far].mean()})
    return pd.DataFrame(rows).set_index("method").round(2)


def _evaluation_file(run_dir: Path) -> Path:
    """evaluation_test.csv (cc2dkit 0.1 runs: evaluation.csv)."""
    new = run_dir / "evaluation_test.csv"
    return new if new.exists() else run_dir / "evaluation.csv"


def _predictions_file(run_dir: Path) -> Path:
    """predictions_test.csv (cc2dkit 0.1 runs: predictions.csv)."""
    new = run_dir / "predictions_test.csv"
    return new if new.exists() else run_dir / "predictions.csv"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("methods", nargs="*")
    p.add_argument("--out", default="runs/methods")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--budget", choices=sorted(BUDGETS), default="small", help="per-model budget (see above)")
    p.add_argument("--force", action="store_true", help="rerun methods that already have a summary.json")
    p.add_argument("--per-landmark", default=None, metavar="COLUMN",
                   help="also print this evaluation.csv column (e.g. MRE_mm, SDR_2.0mm) per landmark and method")
    p.add_argument("--outliers", action="store_true",
                   help="also print median error and gross failures (> 10 mm) per method (needs the Test1 data)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: run in this process
    args = p.parse_args()
    out = Path(args.out)
    if args.one:
        run_one(args.methods[0], out, args.set, args.budget)
        return
    print(f"budget per model: {args.budget} = cpu preset +", BUDGETS[args.budget], "overrides:", args.set)
    for spec in args.methods:
        if (run_dir_of(out, spec) / "summary.json").exists() and not args.force:
            print(f"{spec}: done already ({run_dir_of(out, spec) / 'summary.json'}), skipped")
            continue
        cmd = ([sys.executable, __file__, spec, "--out", str(out), "--budget", args.budget, "--one"]
               + [a for s in args.set for a in ("--set", s)])
        subprocess.run(cmd, check=True)
    with pd.option_context("display.width", 200):
        print(table(out).to_string())
        if args.per_landmark:
            print(f"\n{args.per_landmark} per landmark:")
            print(landmark_table(out, args.per_landmark).to_string())
        if args.outliers:
            print("\nmedian error and gross failures:")
            print(outlier_table(out).to_string())


if __name__ == "__main__":
    main()

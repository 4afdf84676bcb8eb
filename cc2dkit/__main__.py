"""Command line: ``python -m cc2dkit {run,train,predict,evaluate} --preset NAME --out RUN_DIR``.

Examples::

    python -m cc2dkit run --preset smoke --out runs/smoke
    python -m cc2dkit train --preset cpu --out runs/cpu --set data.root=../shared/data/isbi2015
    python -m cc2dkit train --run runs/cpu --resume          # continue an interrupted run
    python -m cc2dkit predict --run runs/cpu
    python -m cc2dkit evaluate --run runs/cpu
    python -m cc2dkit train --method atd --preset cpu --out runs/cpu-atd   # a method of He et al.

``--method`` picks cc2d (default), multi, wide, sla, atd or adapter (see ``cc2dkit.methods``).
The pseudo-label methods train, predict the test split and evaluate in one go; their run folder
holds config.json, metrics.csv (per epoch and landmark), pl_history.csv, predictions.csv,
evaluation.csv and the trained model(s); ``--resume`` continues an interrupted one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from . import pipeline
from .config import PRESETS, Config, apply_overrides, preset
from .inference import predictions_frame
from .methods import METHODS, load_predictor, run_config, run_method
from .metrics import per_landmark_table, radial_errors_mm


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _config(args) -> Config:
    if args.preset is None and (Path(args.out) / "config.json").exists():
        cfg = run_config(args.out)
    else:
        cfg = preset(args.preset or "smoke")
    sets = _parse_sets(args.set)
    if args.method is not None:
        sets["method.name"] = args.method
    return apply_overrides(cfg, sets)


def _print_table(table: pd.DataFrame) -> None:
    with pd.option_context("display.max_rows", 100, "display.width", 120, "display.precision", 2):
        print(table.to_string(float_format=lambda v: f"{v:.2f}"))


def _method_command(command: str, cfg: Config, out: Path, split: str, resume: bool, progress: bool) -> int:
    """run / train / predict / evaluate for the methods of ``cc2dkit.methods`` (not plain CC2D)."""
    if command in ("run", "train"):
        result = run_method(cfg, out, progress=progress, resume=resume)
        if result.table is not None:
            _print_table(result.table)
        print(f"results in {out}/ (metrics.csv, pl_history.csv, predictions.csv, evaluation.csv)")
        return 0
    session = pipeline.prepare(cfg, progress)
    data = session.train_data if split == "train" else session.test_data
    predictor = load_predictor(out, session.train_data, session.device)
    pred = predictor.predict(data, progress=progress)
    keep = predictor.landmark_indices
    predictions_frame(pred[:, keep], data.ids, [data.landmark_names[l] for l in keep]).to_csv(
        out / f"predictions_{split}.csv", index=False)
    if command == "predict":
        print(f"predictions written to {out}/predictions_{split}.csv")
        return 0
    errors = radial_errors_mm(pred[:, keep], data.original_landmarks[:, keep], data.spacing_mm)
    table = per_landmark_table(errors, [data.landmark_names[l] for l in keep], cfg.eval.radii_mm)
    table.to_csv(out / f"evaluation_{split}.csv")
    _print_table(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cc2dkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "train", "predict", "evaluate", "show-config"])
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="named configuration (default: the run folder's config.json, else smoke)")
    parser.add_argument("--out", "--run", dest="out", default="runs/default", help="run folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN_DIR/checkpoint.pt (cc2d) or RUN_DIR/method_state.pt (--method runs)")
    parser.add_argument("--method", choices=METHODS, default=None,
                        help="method to train (default: the config's method.name, cc2d in every preset)")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    cfg = _config(args)
    progress = not args.no_progress
    out = Path(args.out)
    if args.command == "show-config":
        print(cfg.to_json())
        return 0
    if cfg.method.name != "cc2d":
        return _method_command(args.command, cfg, out, args.split, args.resume, progress)
    if args.command == "run":
        _, history, table = pipeline.run_all(cfg, out, args.resume, progress)
        print(f"trained {len(history)} epochs; final loss {history[-1]['loss']:.3f}" if history else "no training")
        _print_table(table)
        print(f"results in {out}/ (evaluation.csv, evaluation.json, predictions.csv, predictions.png)")
        return 0
    session = pipeline.prepare(cfg, progress)
    if args.command == "train":
        history = pipeline.train(session, out, args.resume, progress)
        print(f"trained to epoch {history[-1]['epoch']}; loss {history[-1]['loss']:.3f}; checkpoint in {out}/")
        return 0
    epoch = pipeline.load_trained(session, out)
    pred = pipeline.predict(session, args.split, out, progress)
    if args.command == "predict":
        print(f"predictions of epoch {epoch} written to {out}/predictions.csv")
        return 0
    _, table = pipeline.evaluate(session, pred, args.split, out)
    _print_table(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

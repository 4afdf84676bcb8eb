"""Command line: ``python -m cc2dkit {train,run,predict,evaluate,show-config}``.

Examples::

    python -m cc2dkit train --preset smoke --out runs/smoke
    python -m cc2dkit train --preset cpu --out runs/cpu --set data.root=../shared/data/isbi2015
    python -m cc2dkit train --run runs/cpu --resume          # continue an interrupted run
    python -m cc2dkit predict --run runs/cpu --split train
    python -m cc2dkit predict --run runs/cpu --images my_xrays/ --template my_xrays/t.png   # your own images
    python -m cc2dkit evaluate --run runs/cpu
    python -m cc2dkit train --method atd --preset cpu --out runs/cpu-atd   # a method of He et al.

``train`` (``run`` is the same) trains ``--method`` (default: the config's ``method.name``, cc2d in
every preset; multi, wide, sla, atd, adapter), predicts the test split and evaluates it when it is
labelled. Every method writes the same run folder (``cc2dkit/methods/runfolder.py``): config.json,
checkpoint.pt, model.pt, metrics.csv, pl_history.csv, predictions_test.csv, evaluation_test.csv,
errors_test.csv, predictions_test.png. ``predict`` / ``evaluate`` write the ``_<split>`` files of
the split they are given, never another split's. ``predict --images FOLDER`` applies a run to a
folder of your own (any image size; ``--template IMAGE`` with its landmarks in ``--template-csv``
to match against your own template instead of the run's) and writes ``predictions.csv`` (the
folder format, to correct in the annotator) and one overlay per image. ``--fine-from RUN`` refines
the answers with the fine stage another run trained (``refine.enabled``; one fine network serves
every method's model at the same grid).

Several processes (``torch.distributed``)::

    torchrun --standalone --nproc_per_node=4 -m cc2dkit train --method sla --preset paper --out runs/sla

One model trains data parallel (``train.batch_size`` is the global batch, divided over the
processes), K single-landmark models are shared out; rank 0 writes the run folder
(``cc2dkit/distributed.py``). If one process dies, the others stop with a message naming the last
checkpoint and the command that resumes it (with torchrun or without).
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import pandas as pd

from .config import PRESETS, Config, apply_overrides, config_diff, parse_sets, preset
from .data import build_datasets, landmarks_frame
from .distributed import current, env_dist, shutdown
from .data.grid import GridImages
from .inference import Template
from .methods import METHODS, load_predictor, run_config, run_method, write_results
from .methods.apply import predict_folder, split_images, user_template, with_fine_stage
from .methods.checkpoint import load_checkpoint
from .methods.runfolder import CHECKPOINT, write_csv_atomic
from .runtime import setup
from .viz import plot_landmarks, prediction_gallery


class UsageError(Exception):
    """A command line that does not make sense (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        raise UsageError(message)


def _config(args) -> Config:
    """The config of a command: a preset (train; default smoke), the run folder's config.json
    (train --resume, predict, evaluate), then ``--method`` and the ``--set`` overrides."""
    out = Path(args.out)
    uses_run = args.command in ("predict", "evaluate") or (args.resume and args.preset is None)
    if args.command in ("predict", "evaluate") and args.preset is not None:
        raise UsageError(f"{args.command} uses the run folder's own config; --preset does not apply")
    if uses_run:
        if not (out / "config.json").exists():
            what = "nothing to resume" if args.resume else "not a run folder"
            raise FileNotFoundError(f"{out}: {what} (no config.json)")
        cfg = run_config(out)
    else:
        cfg = preset(args.preset or "smoke")
    try:
        sets = parse_sets(args.set)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.method is not None:
        sets["method.name"] = args.method
    return apply_overrides(cfg, sets)


def _print_table(table: pd.DataFrame) -> None:
    with pd.option_context("display.max_rows", 100, "display.width", 120, "display.precision", 2):
        print(table.to_string(float_format=lambda v: f"{v:.2f}"))


def _figure(out: Path, split: str, data: GridImages, pred, landmarks: list[int], n: int) -> None:
    """``predictions_<split>.png``: the first ``n`` images, predictions against ground truth."""
    n = min(n, len(data))
    if n == 0 or not data.labelled[:n].all():
        return
    fig = prediction_gallery([data.dataset[i].image for i in range(n)], pred[:n][:, landmarks],
                             data.original_landmarks[:n][:, landmarks], data.ids[:n])
    fig.savefig(out / f"predictions_{split}.png", dpi=80)


def _train(cfg: Config, out: Path, resume: bool, progress: bool) -> int:
    result = run_method(cfg, out, progress=progress, resume=resume)
    if not current().main:  # rank 0 reports
        return 0
    print(f"trained {cfg.method.name} for {cfg.train.epochs} epochs")
    if result.table is not None:
        _print_table(result.table)
        _figure(out, "test", result.data[1], result.predictions, result.predictor.landmark_indices, cfg.eval.figures)
    print(f"results in {out}/")
    return 0


TEMPLATE_KEYS = ("data.source", "data.root", "data.csv", "data.template", "data.train_split")


def _predict(command: str, cfg: Config, out: Path, split: str, progress: bool, fine_from: str | None = None) -> int:
    device, _ = setup(cfg)
    predictor = load_predictor(out, device, cfg, progress=progress)
    train_set, test_set = build_datasets(cfg.data, cfg.seed)
    other_data = any(k in TEMPLATE_KEYS for k in config_diff(run_config(out), cfg))
    if other_data or ((cfg.eval.template_copies or len(cfg.eval.poses) > 1 or fine_from)
                       and predictor.template.original is None):
        # another dataset: its own template; augmented / posed templates and the fine stage need its own image
        predictor = predictor.with_template(Template.from_dataset(train_set, cfg.data.template, cfg.data.grid))
    if fine_from is not None:
        predictor = with_fine_stage(predictor, fine_from, device, cfg.refine)
    data = split_images(cfg, train_set, test_set, split, progress)
    if command == "evaluate" and not data.labelled.all():
        raise ValueError(f"cannot evaluate split {split!r}: it has images without ground truth (use predict)")
    pred = predictor.predict(data, progress=progress)
    landmarks = predictor.landmark_indices
    table = write_results(out, split, data, pred, landmarks, cfg.eval.radii_mm, evaluate=command == "evaluate")
    if command == "predict":
        print(f"predictions written to {out}/predictions_{split}.csv")
        return 0
    _figure(out, split, data, pred, landmarks, cfg.eval.figures)
    _print_table(table)
    return 0


def _predict_images(args, cfg: Config, progress: bool) -> int:
    """``predict --images FOLDER``: every image of the folder; predictions and overlays in ``--output``."""
    device, _ = setup(cfg)
    run, folder = Path(args.out), Path(args.images)
    template = None
    if args.template is not None:
        csv = Path(args.template_csv) if args.template_csv else Path(args.template).parent / "landmarks.csv"
        template = user_template(args.template, csv, cfg.data.grid)
    data, pred, predictor = predict_folder(run, folder, template, device, cfg, progress, args.fine_from)
    target = Path(args.output) if args.output else run / f"predictions_{folder.resolve().name}"
    target.mkdir(parents=True, exist_ok=True)
    refs = [data.dataset.image_ref(i) for i in range(len(data))]
    write_csv_atomic(landmarks_frame(pred, refs, predictor.landmark_names), target / "predictions.csv", index=False)
    for i in range(len(data)):
        fig = plot_landmarks(data.dataset[i].image, pred[i], predictor.landmark_names, title=refs[i])
        fig.savefig(target / f"{data.ids[i]}.png", dpi=80)
    print(f"{len(data)} images, {len(predictor.landmark_names)} landmarks: {target}/predictions.csv and overlays")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cc2dkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "run", "predict", "evaluate", "show-config"])
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="named configuration for train (default: smoke; with --resume: the run's config.json)")
    parser.add_argument("--out", "--run", dest="out", default="runs/default", help="run folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    parser.add_argument("--method", choices=list(METHODS), default=None,
                        help="method to train (default: the config's method.name, cc2d in every preset)")
    parser.add_argument("--split", default="test", choices=["test", "train"],
                        help="predict / evaluate: the test images, or the unlabelled training images (every one "
                             "but the template)")
    parser.add_argument("--images", default=None, help="predict: every image of this folder (no labels needed)")
    parser.add_argument("--template", default=None,
                        help="predict --images: your own template image (default: the run's template)")
    parser.add_argument("--template-csv", default=None,
                        help="its landmarks (the folder CSV format; default: landmarks.csv beside it)")
    parser.add_argument("--output", default=None, help="predict --images: where to write (default: RUN/predictions_<folder>)")
    parser.add_argument("--fine-from", default=None, metavar="RUN",
                        help="predict / evaluate: refine with the fine stage another run trained (refine.enabled)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    return parser


def _run(args) -> int:
    if env_dist().active and args.command not in ("train", "run"):
        raise UsageError(f"{args.command} runs in one process: start it with python -m cc2dkit, not torchrun "
                         "(torchrun is for train)")
    if args.fine_from is not None and args.command not in ("predict", "evaluate"):
        raise UsageError("--fine-from goes with predict or evaluate")
    cfg = _config(args)
    progress = not args.no_progress
    out = Path(args.out)
    if args.command == "show-config":
        print(cfg.to_json())
        return 0
    if args.command in ("train", "run"):
        return _train(cfg, out, args.resume, progress)
    if args.images is not None:
        if args.command != "predict":
            raise UsageError("--images goes with predict (a folder has no labels to evaluate)")
        return _predict_images(args, cfg, progress)
    if args.template is not None:
        raise UsageError("--template goes with predict --images (for a dataset: --set data.template=ID)")
    return _predict(args.command, cfg, out, args.split, progress, args.fine_from)


def _interrupted(out: Path, what: str = "interrupted") -> str:
    """Where an interrupted training can continue from."""
    ckpt = out / CHECKPOINT
    if not ckpt.exists():
        return f"{what}; nothing was saved yet in {out}"
    try:
        epoch = load_checkpoint(out)["epoch"]
    except (OSError, ValueError):
        return f"{what}; {ckpt} cannot be read"
    d = env_dist()
    if d.active:  # --out, not --run: torchrun's own parser would take --run for its --run-path
        again = f"torchrun --standalone --nproc_per_node={d.world} -m cc2dkit train --out {out} --resume"
    else:
        again = f"python -m cc2dkit train --run {out} --resume"
    return f"{what}; the last checkpoint is {ckpt} (epoch {epoch}). Continue with: {again}"


class Stopped(BaseException):
    """torchrun stopped this process (SIGTERM), e.g. because another process of the run failed. A
    BaseException, like KeyboardInterrupt: no ``except Exception`` on the way may swallow it."""


def _stop(signum, frame):
    raise Stopped()


def _peer_failure(e: BaseException) -> bool:
    """An error of the process group: another rank died or the group timed out."""
    import torch.distributed as dist

    return env_dist().active and (isinstance(e, dist.DistError) or (
        isinstance(e, RuntimeError) and any(w in str(e) for w in ("gloo", "NCCL", "Connection closed", "timed out"))))


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 an error in the data, the config or a run folder, 2 a command-line usage
    error, 130 interrupted (Ctrl-C). Errors print one line; ``--debug`` shows the traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    d = env_dist()
    if d.active:  # torchrun stops the other processes with SIGTERM when one fails
        signal.signal(signal.SIGTERM, _stop)
    try:
        args = _parser().parse_args(argv)
        return _run(args)
    except Stopped:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the message short
        out = Path(args.out) if "args" in locals() else Path(".")
        print(f"rank {d.rank}: " + _interrupted(out, "stopped by torchrun (another process of the run failed?)"),
              file=sys.stderr)
        return 1
    except UsageError as e:
        if debug:
            raise
        prefix = f"rank {d.rank}: " if d.active else ""
        print(f"{prefix}error: {e} (python -m cc2dkit --help)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        training = "args" in locals() and args.command in ("train", "run")
        print(_interrupted(Path(args.out)) if training else "interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, OSError) as e:
        if debug:
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        prefix = f"rank {d.rank}: " if d.active else ""
        print(f"{prefix}error: {' '.join(str(message).split())}", file=sys.stderr)
        return 1
    except Exception as e:
        if debug or not _peer_failure(e):
            raise
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # torchrun's SIGTERM follows: finish the message first
        out = Path(args.out) if "args" in locals() else Path(".")
        reason = str(e).strip().splitlines()[0][:160]
        print(f"rank {d.rank}: " + _interrupted(out, f"stopped: another process of the run failed ({reason})"),
              file=sys.stderr)
        return 1
    finally:
        shutdown()

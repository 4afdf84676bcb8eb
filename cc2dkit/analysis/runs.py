"""Run folders read back: one folder's config, evaluation and metrics; all finished runs under a
root; many runs as one tidy frame (a row per run and landmark, each run's "all" row last).

A run folder is what ``cc2dkit.methods.run_method`` writes (``config.json``,
``evaluation_test.csv``, ``metrics.csv``; cc2dkit 0.1 wrote ``evaluation.csv``). Trainable
parameters are counted on the run's decoder(s) (:func:`cc2dkit.network.accounting.parameter_counts`)
built from its config and its number of trained landmarks K.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..config import Config
from ..methods.registry import METHODS, method_config, method_spec
from ..methods.runfolder import CONFIG, METRICS as METRICS_CSV, evaluation_csv
from ..metrics.tables import ALL_ROW
from ..network import AdapterBlocks, PlainBlocks
from ..network.accounting import parameter_counts

METRICS = ("MRE_mm", "SD_mm", "SDR_2.0mm", "SDR_2.5mm", "SDR_3.0mm", "SDR_4.0mm")
EVALUATION = evaluation_csv("test")
LEGACY_EVALUATION = "evaluation.csv"  # cc2dkit 0.1
RUN_FILES = (CONFIG, EVALUATION, METRICS_CSV)


def _read_csv(path: Path, label: str, **kw) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kw)
    except Exception as e:  # empty or malformed file
        raise ValueError(f"run {label!r}: cannot read {path}: {e}") from e


def read_run(folder, label: str | None = None) -> tuple[Config, pd.DataFrame, pd.DataFrame]:
    """(config, per-landmark evaluation table with its ``"all"`` row, per-epoch metrics) of a run folder.

    Raises FileNotFoundError naming the folder or the missing file, ValueError naming a file
    that is unreadable or lacks what the tables need.
    """
    folder = Path(folder)
    label = str(folder) if label is None else label
    if not folder.is_dir():
        raise FileNotFoundError(f"run {label!r}: run folder {folder} does not exist")
    evaluation = _evaluation_file(folder)
    for path in (folder / CONFIG, evaluation, folder / METRICS_CSV):
        if not path.is_file():
            raise FileNotFoundError(f"run {label!r}: {path} is missing (a run folder needs "
                                    f"{', '.join(RUN_FILES)}; did the run finish on a labelled test split?)")
    try:
        cfg = Config.from_dict(json.loads((folder / CONFIG).read_text()))
    except Exception as e:
        raise ValueError(f"run {label!r}: {folder / CONFIG} is not a cc2dkit config: {e}") from e
    table = _read_csv(evaluation, label, index_col=0)
    table.index = table.index.astype(str)
    if ALL_ROW not in table.index or "MRE_mm" not in table.columns:
        raise ValueError(f"run {label!r}: {evaluation} is not a per-landmark table "
                         f"(needs an MRE_mm column and an {ALL_ROW!r} row)")
    metrics = _read_csv(folder / METRICS_CSV, label)
    missing = {"epoch", "seconds"} - set(metrics.columns)
    if missing:
        raise ValueError(f"run {label!r}: {folder / METRICS_CSV} lacks column(s) {sorted(missing)}")
    return cfg, table, metrics


def _evaluation_file(folder: Path) -> Path:
    """The test split's evaluation of a run folder (cc2dkit 0.1 named it evaluation.csv)."""
    legacy = folder / LEGACY_EVALUATION
    return legacy if legacy.is_file() and not (folder / EVALUATION).is_file() else folder / EVALUATION


def trainable_params(cfg: Config, n_landmarks: int) -> int:
    """Trainable parameters of a run of ``cfg`` training K = ``n_landmarks`` landmarks (all its models)."""
    cfg = method_config(cfg)
    spec = method_spec(cfg)
    blocks = AdapterBlocks(n_landmarks=n_landmarks, extra=cfg.method.adapter_channels) if spec.adapters \
        else PlainBlocks()
    one = parameter_counts(cfg.net, cfg.backbone.arch, blocks)["total"]
    return one * n_landmarks if spec.per_landmark else one


def finished_runs(root: str | Path) -> dict[str, Path]:
    """``{folder name: folder}`` of the finished runs under ``root`` (those with a test evaluation),
    e.g. every method of ``benchmarks/run_methods.py --out ROOT``; runs still training are left out."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"run root {root} is not a folder")
    runs = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and _evaluation_file(p).is_file()}
    if not runs:
        raise FileNotFoundError(f"no finished run (a folder with {EVALUATION}) under {root}")
    return runs


def run_labels(folders) -> dict[str, Path]:
    """``{label: folder}`` of run folders given one by one: the folder name, or parent/name where names
    repeat (runs/a/run, runs/b/run -> a/run, b/run); the same folder twice is an error naming it."""
    paths = [Path(f) for f in folders]
    names = [p.name for p in paths]
    labels = {}
    for p in paths:
        label = f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name
        if label in labels:
            raise ValueError(f"run folder {p} given twice (or two folders labelled {label!r}: name them apart)")
        labels[label] = p
    return labels


def collect_runs(run_dirs: Mapping[str, str | Path | None]) -> pd.DataFrame:
    """One tidy frame of ``{label: run folder}``: a row per (run, landmark), each run's ``"all"`` row last.

    Columns: run, folder, method, adapter_channels (adapter runs only), extra_channels,
    n_landmarks (K trained), models, trainable_params, epochs, seconds (training, summed over
    epochs), landmark, then the evaluation's MRE_mm, SD_mm, SDR_... A label mapped to None is a
    run not done yet and is left out (the tables show it as "not run").
    """
    frames = []
    for label, folder in run_dirs.items():
        if folder is None:
            continue
        cfg, table, metrics = read_run(folder, str(label))
        mcfg = method_config(cfg)
        k = int((table.index != ALL_ROW).sum())
        per_epoch = metrics.groupby("epoch")["seconds"].first()
        info = {
            "run": str(label), "folder": str(folder), "method": cfg.method.name,
            "adapter_channels": cfg.method.adapter_channels if cfg.method.name == "adapter" else pd.NA,
            "extra_channels": mcfg.net.extra_channels, "n_landmarks": k,
            "models": k if METHODS[cfg.method.name].per_landmark else 1,
            "trainable_params": trainable_params(cfg, k),
            "epochs": int(per_epoch.index.max()) if len(per_epoch) else 0,
            "seconds": float(per_epoch.sum()),
        }
        part = table.reset_index(names="landmark")
        for key, value in reversed(info.items()):
            part.insert(0, key, value)
        frames.append(part)
    if not frames:
        cols = ["run", "folder", "method", "adapter_channels", "extra_channels", "n_landmarks", "models",
                "trainable_params", "epochs", "seconds", "landmark", *METRICS]
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    out["adapter_channels"] = out["adapter_channels"].astype("Int64")
    return out

"""Results of several run folders laid out like the tables of He et al., beside the paper's figures.

- :data:`PAPER`: the paper's figures the kit knows (ISBI 2015 Test1, 384x384), as data. Only
  MRE and SDR 2 mm of CC2D, C-ATD (19 models) and C-Adapter (1 model) are recorded; every other
  cell is NaN, noted "not recorded in cc2dkit" (never fill them in from memory).
- :func:`collect_runs`: run folders (``config.json``, ``evaluation_test.csv``, ``metrics.csv``, as
  ``cc2dkit.methods.run_method`` writes them; cc2dkit 0.1's ``evaluation.csv`` too) -> one tidy
  frame, a row per (run, landmark) plus each run's ``"all"`` row.
- :func:`table1` (methods), :func:`table2` (per-landmark MRE of C-ATD vs C-Adapter),
  :func:`table3` (the C_A sweep and the widened decoders): rows the collection lacks stay, NaN,
  with ``run = "not run"``.
- :func:`compare_tables`: per-landmark tables of in-memory results side by side (figures of all
  these: ``cc2dkit.viz.results``).

Run rows are matched by their config (``method.name``, ``method.adapter_channels``,
``net.extra_channels``); pass ``labels={row: run label}`` to pick runs by hand. Trainable
parameters are counted on the run's decoder(s) (:func:`cc2dkit.network.accounting.parameter_counts`)
built from its config and its number of trained landmarks K.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from ..config import Config
from ..data.isbi import ISBI_LANDMARKS
from ..methods.registry import METHODS, method_config, method_spec
from ..methods.runfolder import CONFIG, METRICS as METRICS_CSV, evaluation_csv
from ..metrics.tables import ALL_ROW
from ..network import AdapterBlocks, PlainBlocks
from ..network.accounting import parameter_counts

METRICS = ("MRE_mm", "SD_mm", "SDR_2.0mm", "SDR_2.5mm", "SDR_3.0mm", "SDR_4.0mm")
EVALUATION = evaluation_csv("test")
LEGACY_EVALUATION = "evaluation.csv"  # cc2dkit 0.1
RUN_FILES = (CONFIG, EVALUATION, METRICS_CSV)
NOT_RUN = "not run"
NOT_RECORDED = "not recorded in cc2dkit"
PAPER_SETTING = "He et al., ISBI 2015 Test1, 384x384"
PAPER_PREFIX = "paper "
INT_COLUMNS = ("models", "extra_channels", "n_landmarks", "trainable_params", "epochs")  # nullable Int64 in tables

TABLE1_ROWS = ("CC2D", "multi", "SLA", "C-ATD", "C-Adapter")
TABLE1_SPEC = {"CC2D": {"method": "cc2d"}, "multi": {"method": "multi"}, "SLA": {"method": "sla"},
               "C-ATD": {"method": "atd"}, "C-Adapter": {"method": "adapter", "adapter_channels": 16}}
TABLE3_ADAPTER_CHANNELS = (0, 4, 8, 16, 32)
TABLE3_WIDE = ("wide +16", "wide +16xK")
TABLE3_ROWS = tuple(f"C_A={a}" for a in TABLE3_ADAPTER_CHANNELS) + TABLE3_WIDE


def _paper() -> pd.DataFrame:
    """The paper's Table 1 as far as the kit records it (see the module docstring)."""
    nan = float("nan")
    known = {"CC2D": (2.04, 62.5), "C-ATD": (1.79, 72.0), "C-Adapter": (1.96, 67.8)}
    models = {"CC2D": 1, "multi": 1, "SLA": 19, "C-ATD": 19, "C-Adapter": 1}
    rows = []
    for name in TABLE1_ROWS:
        row = dict.fromkeys(METRICS, nan)
        if name in known:
            row["MRE_mm"], row["SDR_2.0mm"] = known[name]
            row["note"] = f"MRE, SDR 2 mm: {PAPER_SETTING}; SD, SDR 2.5/3/4 mm: {NOT_RECORDED}"
        else:
            row["note"] = f"all figures: {NOT_RECORDED}"
        row["models"] = models[name]
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(TABLE1_ROWS, name="method"))[["models", *METRICS, "note"]]

PAPER = _paper()


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


def _collected(runs) -> pd.DataFrame:
    return runs if isinstance(runs, pd.DataFrame) else collect_runs(runs)


def _match(summary: pd.DataFrame, spec: dict) -> str | None:
    """Label of the first run whose "all" row matches ``spec`` (method, adapter_channels, extra_channels)."""
    rows = summary
    for key, value in spec.items():
        if key == "extra_channels" and value == "16K":
            rows = rows[rows["extra_channels"] == 16 * rows["n_landmarks"]]
        elif isinstance(value, str):
            rows = rows[rows[key].astype(str) == value]
        else:
            rows = rows[pd.to_numeric(rows[key], errors="coerce").astype(float) == float(value)]
    return None if rows.empty else str(rows["run"].iloc[0])


def _layout(runs, specs: dict[str, dict], labels: Mapping[str, str] | None, columns: list[str]) -> pd.DataFrame:
    """One row per spec: the matched run's "all" row (``columns``), or NaN and run = "not run"."""
    data = _collected(runs)
    summary = data[data["landmark"] == ALL_ROW]
    labels = dict(labels or {})
    unknown = set(labels) - set(specs)
    if unknown:
        raise KeyError(f"labels for unknown row(s) {sorted(unknown)}; rows: {list(specs)}")
    rows = []
    for name, spec in specs.items():
        label = labels[name] if name in labels else _match(summary, spec)
        hit = summary[summary["run"] == label] if label is not None else summary.iloc[:0]
        row = {"run": label if not hit.empty else NOT_RUN}
        for c in columns:
            row[c] = hit[c].iloc[0] if not hit.empty and c in hit.columns else np.nan
        rows.append(row)
    t = pd.DataFrame(rows, index=pd.Index(list(specs), name="method"))
    for c in columns:
        if c in INT_COLUMNS:
            t[c] = pd.array([None if pd.isna(v) else int(v) for v in t[c]], dtype="Int64")
    return t


def table1(runs, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The paper's Table 1: CC2D, multi, SLA, C-ATD, C-Adapter (C_A 16) beside :data:`PAPER`.

    ``runs``: :func:`collect_runs`' frame or a ``{label: folder}`` mapping. Columns: run (label or
    "not run"), models, MRE_mm, SD_mm, SDR_2.0mm .. SDR_4.0mm, seconds, then "paper MRE_mm" ..
    (NaN: not recorded) and note.
    """
    t = _layout(runs, TABLE1_SPEC, labels, ["models", *METRICS, "seconds"])
    for m in METRICS:
        t[PAPER_PREFIX + m] = PAPER[m]
    t["note"] = [("" if r != NOT_RUN else f"{NOT_RUN}; ") + "paper " + PAPER.loc[name, "note"]
                 for name, r in zip(t.index, t["run"])]
    return t


def table2(runs, atd: str | None = None, adapter: str | None = None) -> pd.DataFrame:
    """The paper's Table 2: per-landmark MRE (mm) of C-ATD vs C-Adapter (C_A 16), then the "all" row.

    Rows: the landmarks of the runs (ISBI's 19 when neither was run). Columns: "C-ATD MRE_mm",
    "C-Adapter MRE_mm", "difference_mm" (C-Adapter - C-ATD), the paper's figures (per landmark:
    not recorded, NaN; the "all" row: the paper's overall MRE) and note.
    """
    data = _collected(runs)
    summary = data[data["landmark"] == ALL_ROW]
    picked = {"C-ATD": atd if atd is not None else _match(summary, TABLE1_SPEC["C-ATD"]),
              "C-Adapter": adapter if adapter is not None else _match(summary, TABLE1_SPEC["C-Adapter"])}
    series, landmarks = {}, []
    for name, label in picked.items():
        part = data[(data["run"] == label) & (data["landmark"] != ALL_ROW)] if label is not None else data.iloc[:0]
        if not part.empty:
            series[name] = data[data["run"] == label].set_index("landmark")["MRE_mm"]
            landmarks += [l for l in part["landmark"] if l not in landmarks]
    if not landmarks:
        landmarks = list(ISBI_LANDMARKS)
    index = pd.Index([*landmarks, ALL_ROW], name="landmark")
    t = pd.DataFrame(index=index)
    for name in picked:
        t[f"{name} MRE_mm"] = series[name].reindex(index).to_numpy(float) if name in series else np.nan
    t["difference_mm"] = t["C-Adapter MRE_mm"] - t["C-ATD MRE_mm"]
    for name in picked:
        t[f"{PAPER_PREFIX}{name} MRE_mm"] = np.nan
        t.loc[ALL_ROW, f"{PAPER_PREFIX}{name} MRE_mm"] = PAPER.loc[name, "MRE_mm"]
    notes = []
    for lm in index:
        parts = [f"{n}: {NOT_RUN}" for n in picked if n not in series]
        parts += [f"{n}: landmark not trained" for n in series if np.isnan(series[n].get(lm, np.nan))]
        parts.append(f"paper: overall MRE, {PAPER_SETTING}" if lm == ALL_ROW else f"paper: {NOT_RECORDED}")
        notes.append("; ".join(parts))
    t["note"] = notes
    t.attrs["runs"] = {n: (picked[n] if n in series else NOT_RUN) for n in picked}
    return t


def table3(runs, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The paper's Table 3: C-Adapter with C_A 0, 4, 8, 16, 32 and the widened shared decoders.

    Rows "C_A=0" .. "C_A=32" (adapter runs; C_A 0 is one shared model on the adapter schedule),
    "wide +16" and "wide +16xK" (``wide`` runs with ``net.extra_channels`` 16 and 16 x K, K the run's
    landmarks; the paper's +16x19). Columns: run, C_A, extra_channels, n_landmarks,
    trainable_params, MRE_mm .. SDR_4.0mm, seconds, the paper's MRE / SDR 2 mm (not recorded: NaN)
    and note.
    """
    specs = {f"C_A={a}": {"method": "adapter", "adapter_channels": a} for a in TABLE3_ADAPTER_CHANNELS}
    specs["wide +16"] = {"method": "wide", "extra_channels": 16}
    specs["wide +16xK"] = {"method": "wide", "extra_channels": "16K"}
    t = _layout(runs, specs, labels, ["extra_channels", "n_landmarks", "trainable_params", *METRICS, "seconds"])
    t.insert(1, "C_A", pd.array([*TABLE3_ADAPTER_CHANNELS, None, None], dtype="Int64"))
    t[PAPER_PREFIX + "MRE_mm"] = np.nan
    t[PAPER_PREFIX + "SDR_2.0mm"] = np.nan
    t["note"] = [("" if r != NOT_RUN else f"{NOT_RUN}; ") + f"paper: {NOT_RECORDED}" for r in t["run"]]
    return t


def compare_tables(tables: Mapping[str, pd.DataFrame], columns=("MRE_mm", "SDR_2.0mm")) -> pd.DataFrame:
    """Per-landmark tables (``per_landmark_table``, e.g. ``result.table``) side by side.

    Columns ``"<label> <column>"`` in the order of ``tables`` then ``columns``; rows the union of
    the landmarks, ``"all"`` last; with two tables, ``"difference MRE_mm"`` (second - first).
    """
    if not tables:
        raise ValueError("compare_tables needs at least one table")
    landmarks: list[str] = []
    for label, tab in tables.items():
        missing = set(columns) - set(tab.columns)
        if missing:
            raise ValueError(f"table {label!r} lacks column(s) {sorted(missing)}")
        landmarks += [str(l) for l in tab.index if l != ALL_ROW and str(l) not in landmarks]
    index = pd.Index([*landmarks, ALL_ROW], name="landmark")
    out = pd.DataFrame(index=index)
    for label, tab in tables.items():
        tab = tab.set_axis(tab.index.astype(str))
        for c in columns:
            out[f"{label} {c}"] = tab[c].reindex(index).to_numpy(float)
    if len(tables) == 2 and "MRE_mm" in columns:
        a, b = list(tables)
        out["difference MRE_mm"] = out[f"{b} MRE_mm"] - out[f"{a} MRE_mm"]
    return out

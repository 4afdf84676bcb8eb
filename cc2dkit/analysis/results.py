"""Results of several run folders laid out like the tables of He et al., beside the paper's figures.

- :data:`PAPER`: the paper's figures the kit knows (ISBI 2015 Test1, 384x384), as data. Only
  MRE and SDR 2 mm of CC2D, C-ATD (19 models) and C-Adapter (1 model) are recorded; every other
  cell is NaN, noted "not recorded in cc2dkit" (never fill them in from memory).
- the runs come as :func:`cc2dkit.analysis.runs.collect_runs`' frame or as ``{label: run folder}``.
- :func:`table1` (methods), :func:`table2` (per-landmark MRE of C-ATD vs C-Adapter),
  :func:`table3` (the C_A sweep and the widened decoders): rows the collection lacks stay, NaN,
  with ``run = "not run"``.
- :func:`compare_tables`: per-landmark tables of in-memory results side by side (figures of all
  these: ``cc2dkit.viz.results``).

Run rows are matched by their config (``method.name``, ``method.adapter_channels``,
``net.extra_channels``); pass ``labels={row: run label}`` to pick runs by hand.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.isbi import ISBI_LANDMARKS
from ..metrics.tables import ALL_ROW
from ..methods.runfolder import errors_csv
from .runs import METRICS, collect_runs

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
    "C-Adapter MRE_mm", "C-Adapter - C-ATD MRE_mm" (> 0: the C-Adapter is worse), the paper's figures (per landmark:
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
    t["C-Adapter - C-ATD MRE_mm"] = t["C-Adapter MRE_mm"] - t["C-ATD MRE_mm"]
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
    the landmarks, ``"all"`` last; with two tables, ``"<second> - <first> MRE_mm"`` (the second's
    MRE minus the first's: > 0 where the second is worse).
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
        out[f"{b} - {a} MRE_mm"] = out[f"{b} MRE_mm"] - out[f"{a} MRE_mm"]
    return out


GROSS_MM = 10.0  # an error over this is a gross miss (the count issue 14's targets name)


def _errors(folder) -> pd.Series:
    """A run's test errors (mm) indexed by (image, landmark); the image named by its file stem, so
    that run folders of kit versions that wrote ``151`` or ``RawImage/Test1Data/151.jpg`` agree."""
    path = Path(folder) / errors_csv("test")
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"run folder {folder} does not exist")
    if not path.is_file():
        raise FileNotFoundError(f"run folder {folder} has no {errors_csv('test')} (evaluate it first)")
    errors = pd.read_csv(path)
    stems = [Path(str(i)).stem for i in errors["image"]]
    return pd.Series(errors["error_mm"].to_numpy(float), index=pd.MultiIndex.from_arrays(
        [stems, errors["landmark"].astype(str)], names=["image", "landmark"]))


def _tail(folder) -> tuple[float, float]:
    """(median error mm, count of errors over GROSS_MM) from a run's ``errors_test.csv``; NaN without one."""
    if not (Path(folder) / errors_csv("test")).is_file():
        return np.nan, np.nan
    errors = _errors(folder).dropna()
    return float(errors.median()), float((errors > GROSS_MM).sum())


def gross_errors(runs: Mapping[str, str | Path], threshold: float = GROSS_MM) -> pd.DataFrame:
    """Where runs miss by more than ``threshold`` mm: a row per landmark some run misses (then
    ``"all"``), a column per run with its count of misses, and ``"in every run"``: how many of the
    (image, landmark) pairs every run misses. Misses every run shares sit on hard images; the
    others are the run's own draw."""
    if not runs:
        raise ValueError("gross_errors needs at least one run folder")
    over = {label: _errors(folder) > threshold for label, folder in runs.items()}
    both = pd.concat(over, axis=1, join="inner").all(axis=1)  # a pair some run lacks is not in every run
    table = pd.DataFrame({**{label: o.groupby(level="landmark").sum() for label, o in over.items()},
                          "in every run": both.groupby(level="landmark").sum()}).fillna(0).astype(int)
    table = table[(table > 0).any(axis=1)].sort_values("in every run", ascending=False)
    table.loc[ALL_ROW] = table.sum()
    return table


def budget_curve(runs, method: str | None = None) -> pd.DataFrame:
    """The "all" rows of runs as a curve of accuracy against training time: a row per run, sorted by
    ``minutes`` (training, Infer-PL and tracking summed over epochs, from ``metrics.csv``), with
    run, method, epochs, MRE_mm .. SDR_4.0mm, median_mm and ``> 10 mm`` (the count of errors over
    10 mm; both from ``errors_test.csv``, NaN for a run without it). ``method``: only runs of that
    method."""
    frame = _collected(runs)
    rows = frame[frame["landmark"] == ALL_ROW]
    if method is not None:
        rows = rows[rows["method"] == method]
    if rows.empty:
        raise ValueError(f"no finished run{'' if method is None else f' of method {method!r}'} to draw a curve from")
    out = rows.assign(minutes=rows["seconds"] / 60.0)[["run", "method", "epochs", "minutes", *METRICS]].copy()
    median, gross = zip(*(_tail(f) for f in rows["folder"]))
    out["median_mm"] = median
    out[f"> {GROSS_MM:g} mm"] = pd.array([None if np.isnan(g) else int(g) for g in gross], dtype="Int64")
    return out.sort_values("minutes").reset_index(drop=True)

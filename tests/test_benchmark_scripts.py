"""The benchmark scripts that open a finished run: a user error is one line, before any long work.

Each opens its run through ``cc2dkit.methods.open_run`` / ``run_settings`` (the run's config, the
script's defaults, the user's ``--set``, the script's fixed values, in that order)."""
import importlib
import sys
from pathlib import Path

import pytest

from cc2dkit.methods import run_settings

from .conftest import tiny_cfg

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

# script: the arguments it requires besides its run folder(s)
SCRIPTS = {"back_check": [], "bench_inference": [], "centroid_check": [], "cycle_check": [], "ensemble_check": [],
           "max_move": [], "other_template": ["--template", "151"], "pose_check": [], "refine_run": ["--out", "x"],
           "scale_evidence": [], "shape_guard": [], "shape_misses": [], "shape_variants": [], "template_pool": []}


def run_script(name, runs, extra, monkeypatch):
    """``python benchmarks/<name>.py RUN [RUN2] EXTRA`` (ensemble_check compares two or more runs);
    returns the message it exits with."""
    runs = runs if name == "ensemble_check" else runs[:1]
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *map(str, runs), *extra])
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(name).main()
    return exit_.value.code


def test_the_scripts_name_a_missing_run_folder_in_one_line(tmp_path, monkeypatch):
    for name, extra in {**SCRIPTS, "refine_diagnosis": []}.items():  # the last takes no --set
        message = run_script(name, [tmp_path / "no_such_run", tmp_path / "nor_this"], extra, monkeypatch)
        assert isinstance(message, str) and "\n" not in message, (name, message)
        assert "no_such_run" in message and "config.json" in message, (name, message)


def test_the_scripts_name_a_bad_set_key_or_value_in_one_line(tmp_path, monkeypatch):
    runs = [tmp_path / "run", tmp_path / "run2"]
    for run in runs:
        run.mkdir()
        (run / "config.json").write_text(tiny_cfg().to_json())  # all a script reads before its overrides
    for name, extra in SCRIPTS.items():
        for bad, named in (("eval.no_such_key=1", "eval.no_such_key"), ("eval.batch_size=-3", "-3"),
                           ("eval.batch_size", "KEY=VALUE")):
            message = run_script(name, runs, [*extra, "--set", bad], monkeypatch)
            assert isinstance(message, str) and "\n" not in message and named in message, (name, bad, message)


def test_run_settings_reads_the_run_then_defaults_then_sets_then_fixed(tmp_path):
    (tmp_path / "config.json").write_text(tiny_cfg(**{"eval.batch_size": 2}).to_json())
    assert run_settings(tmp_path).eval.batch_size == 2
    assert run_settings(tmp_path, defaults={"eval.batch_size": 3}).eval.batch_size == 3
    assert run_settings(tmp_path, ["eval.batch_size=5"], defaults={"eval.batch_size": 3}).eval.batch_size == 5
    assert run_settings(tmp_path, ["eval.batch_size=5"], fixed={"eval.batch_size": 7}).eval.batch_size == 7

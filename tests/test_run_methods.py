"""benchmarks/run_methods.py: the named per-model budgets become the configs the runs train with."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import run_methods  # noqa: E402
from cc2dkit.config import preset  # noqa: E402


def test_small_budget_overrides_the_cpu_preset():
    cfg = run_methods.config_for("atd", [], "small")
    assert (cfg.method.name, cfg.train.epochs, cfg.train.steps_per_epoch, cfg.method.pl_images) == ("atd", 10, 10, 30)
    assert not cfg.refine.enabled and cfg.train.lr_schedule == "constant"
    # its answer: the grid argmax against the template alone
    assert (cfg.eval.subpixel, cfg.eval.template_copies, cfg.eval.centroid) == (False, 0, None)


def test_preset_budget_is_the_cpu_preset_with_the_method_and_sets():
    cpu = preset("cpu")
    cfg = run_methods.config_for("sla", ["seed=3"], "preset")
    assert cfg.method.name == "sla" and cfg.seed == 3
    assert (cfg.train, cfg.refine, cfg.eval, cfg.data) == (cpu.train, cpu.refine, cpu.eval, cpu.data)
    assert run_methods.config_for("adapter:16", [], "preset").method.adapter_channels == 16


def test_unknown_spec_argument_is_one_clear_error():
    with pytest.raises(SystemExit, match="only adapter:N and wide:N"):
        run_methods.config_for("sla:3", [], "preset")

"""benchmarks/gpu_check.py at tiny sizes on the CPU: the code the GPU runs, so that it cannot rot."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import gpu_check  # noqa: E402


def test_gpu_check_runs_tiny_on_cpu(tmp_path, capsys):
    out = tmp_path / "check.json"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--weights", "none", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["check"], r["variant"]): r for r in report["rows"]}
    assert {c for c, _ in rows} == set(gpu_check.CHECKS)
    assert report["machine"]["device"] == "cpu" and report["failed"] == []
    # six training variants, K models one after the other and in 3 stack sizes, six predictors
    assert sum(c == "train" for c, _ in rows) == 6 and sum(c == "sla" for c, _ in rows) == 4
    assert all(r["samples_per_s"] > 0 for r in rows.values() if "samples_per_s" in r)
    assert all(r["ms_per_image"] > 0 for (c, _), r in rows.items() if c == "infer") and \
        sum(c == "infer" for c, _ in rows) == 6
    for name in ("C-Adapter C_A 16", "4 models one at a time"):  # local passes ran, the answers the whole maps'
        local = rows["infer", f"{name}, finest stages local, 4 landmarks"]
        assert local["max_px_from_whole"] == 0.0 and local["redone_pairs"].endswith("/8"), local
    assert [v for (c, v), r in rows.items() if c == "method" and r["ok"]] == \
        [f"{m}: 1 epoch" for m in ("cc2d", "multi", "sla", "atd", "adapter", "wide")]
    adapter = rows["adapter", "C-Adapter C_A 16"]["params"]
    assert adapter > rows["adapter", "one CC2D"]["params"]
    assert "gradient cosine" in rows["bf16", "one step: bf16 vs fp32"]["detail"]
    printed = capsys.readouterr().out
    assert "samples_per_s" in printed and f"written: {out}" in printed


def test_gpu_check_names_unknown_checks(capsys):
    import pytest

    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "cpu", "--tiny", "--checks", "train,nope"])
    assert "unknown check(s) ['nope']" in capsys.readouterr().err

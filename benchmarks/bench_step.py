"""Seconds per training step of config variants, interleaved in one process (a busy or noisy
machine slows every variant alike).

    python benchmarks/bench_step.py --variant whole:train.crop_below=null --variant crop2:train.crop_below=2
    python benchmarks/bench_step.py --network cc2d --variant whole:train.crop_below=null --steps 4

Each variant (``NAME:KEY=VALUE[,KEY=VALUE...]``, applied over the `cpu` preset with ``--network``'s
method, as ``bench_networks.py``) gets its own model, optimizer and the same batches; "base" (the
preset as it is) always runs. The steps take turns, variant after variant; the median per variant
is printed with its ratio to the base (the preset crops the finest stages, ``train.crop_below=4``: a
``whole`` variant as above times the whole maps). Random VGG16 weights (speed only), ISBI data when
$CC2DKIT_ISBI_ROOT is set (the phantom otherwise), the feature cache warmed, one untimed step each.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, sep, sets = text.partition(":")
    if not sep or not name or not sets:
        raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE...]")
    return name, sets.split(",")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE[,KEY=VALUE...] (repeatable)")
    ap.add_argument("--network", default="adapter:4", help="cc2d, wide:N or adapter:N (bench_networks.py)")
    ap.add_argument("--grid", type=int, default=192)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per variant")
    ap.add_argument("--images", type=int, default=8)
    args = ap.parse_args()
    from bench_networks import bench, config
    from cc2dkit.training import ssl_step

    variants = [("base", [])] + [parse_variant(v) for v in args.variant]
    names = [name for name, _ in variants]
    if len(set(names)) < len(names):
        raise SystemExit(f"--variant: each name once, and not 'base' (the preset's own): {names[1:]}")
    cfgs = {name: config(args.network, args.grid, 8, args.images, sets) for name, sets in variants}
    b = bench(cfgs["base"], args.images)
    batches = b.batches(args.steps + 1)
    nets = {"base": (b.model, b.opt, cfgs["base"])}
    for name, cfg in cfgs.items():
        if name != "base":
            nets[name] = (*b.network(cfg), cfg)  # each variant its own weights, seeded alike; one warm cache
    for model, opt, cfg in nets.values():
        ssl_step(model, batches[:1], opt, cfg.train, b.device)  # warm-up
    times = {name: [] for name in nets}
    for batch in batches[1:]:
        for name, (model, opt, cfg) in nets.items():
            t0 = time.perf_counter()
            ssl_step(model, [batch], opt, cfg.train, b.device)
            times[name].append(time.perf_counter() - t0)
    rows = [{"variant": name, "sets": ",".join(sets) or "(the preset)", "s/step": float(np.median(times[name])),
             "range": f"{min(times[name]):.2f}-{max(times[name]):.2f}"} for name, sets in variants]
    table = pd.DataFrame(rows).set_index("variant")
    table["/ base"] = table["s/step"] / table.loc["base", "s/step"]
    print(f"{args.network}, grid {args.grid}, batch 8, {args.steps} steps each, {torch.get_num_threads()} threads; "
          "medians")
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(table.to_string())


if __name__ == "__main__":
    main()

"""Training throughput, Infer-PL time and peak memory of each method's network, one model.

    python benchmarks/bench_networks.py                                  # cc2d wide:16 wide:304 adapter:0/4/16
    python benchmarks/bench_networks.py cc2d adapter:16 --grid 128 --steps 2
    python benchmarks/bench_networks.py --set train.channels_last=on --set device=cuda

NETWORK specs: ``cc2d`` (the network of multi, and of each SLA / C-ATD model), ``wide:N`` (every
decoder conv widened by N channels), ``adapter:N`` (C-Adapter with C_A = N; every sample carries a
random landmark id, as in the adapter's mixed batches). Throughput is samples per second of the
training step (``ssl_step``) on patches of ISBI images when $CC2DKIT_ISBI_ROOT is set, the
phantom (19 landmarks) otherwise; the feature cache is warmed and one step run before timing.
Infer-PL is the cascade inference of all 19 landmarks per query image as the methods run it
(``ModelPredictor``: one decoder pass for cc2d/wide, one per landmark through its adapter),
cached features. The cost of a method per epoch follows: multi = cc2d; SLA and C-ATD = 19 x cc2d
(or one stacked step, ``bench_sla.py``); C-ATD and C-Adapter train two stages per epoch.
Each spec runs in its own subprocess (its own peak RSS). Backbone VGG16, random weights (speed only).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

DEFAULT_SPECS = ("cc2d", "wide:16", "wide:304", "adapter:0", "adapter:4", "adapter:16")


def _config(spec: str, args):
    from cc2dkit.config import parse_sets, preset
    from cc2dkit.methods import method_config
    from run_methods import spec_overrides  # the same METHOD specs as run_methods.py

    if spec.partition(":")[0] not in ("cc2d", "wide", "adapter"):
        raise SystemExit(f"unknown network spec {spec!r}: cc2d, wide:N or adapter:N")
    over = {"data.grid": args.grid, "backbone.weights": "none", "train.batch_size": args.batch,
            **spec_overrides(spec)}
    if os.environ.get("CC2DKIT_ISBI_ROOT"):
        over["data.source"] = "isbi"
    else:
        over.update({"data.source": "phantom", "data.phantom_train": args.images, "data.phantom_test": 2,
                     "data.phantom_landmarks": 19, "data.phantom_size": 512, "data.template": "train_000"})
    return method_config(preset("cpu", **{**over, **parse_sets(args.set)}))


def measure(spec: str, args) -> dict:
    from cc2dkit.data import SubsetDataset, build_datasets
    from cc2dkit.data.grid import GridImages
    from cc2dkit.inference import ModelPredictor, Template
    from cc2dkit.methods import method_spec
    from cc2dkit.network.accounting import trainable_parameter_count
    from cc2dkit.runtime import setup
    from cc2dkit.training import RandomPatchSource, make_optimizer, ssl_step

    cfg = _config(spec, args)
    device, gen = setup(cfg)
    train, _ = build_datasets(cfg.data, cfg.seed)
    data = GridImages(SubsetDataset(train, train.ids[:args.images]), cfg.data.grid, "train", progress=False)
    n_lm = len(data.landmark_names)
    model = method_spec(cfg).build_model(cfg, n_lm).to(device)
    opt = make_optimizer(model, cfg)
    src = RandomPatchSource(data, cfg.train)
    model.cache.features(data.keys, data.images)  # warm: every image's frozen features once

    def batch():
        b = src.sample(cfg.train.batch_size, gen)
        ids = torch.randint(0, n_lm, (cfg.train.batch_size,), generator=gen)  # mixed landmarks
        return dataclasses.replace(b, landmark_ids=ids) if cfg.method.name == "adapter" else b

    batches = [batch() for _ in range(args.steps + 1)]
    ssl_step(model, batches[:1], opt, cfg.train, device)  # warm-up
    t0 = time.perf_counter()
    for b in batches[1:]:
        ssl_step(model, [b], opt, cfg.train, device)
    train_s = time.perf_counter() - t0
    labelled = [i for i in range(len(data)) if data.labelled[i]]
    predictor = ModelPredictor(model, Template(data.images[labelled[0]], data.landmarks[labelled[0]]),
                               list(range(n_lm)), device, cfg.eval.batch_size)
    predictor.predict_grid(data, [1])  # warm-up
    queries = list(range(1, 1 + args.queries))
    t0 = time.perf_counter()
    predictor.predict_grid(data, queries)
    infer_s = (time.perf_counter() - t0) / len(queries)
    return {"network": spec, "grid": cfg.data.grid, "data": cfg.data.source, "device": device.type,
            "trainable_params": trainable_parameter_count(model),
            "train_samples_per_s": round(args.steps * cfg.train.batch_size / train_s, 3),
            "s_per_step": round(train_s / args.steps, 3), "infer_pl_s_per_image": round(infer_s, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="*", default=list(DEFAULT_SPECS))
    ap.add_argument("--grid", type=int, default=192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--images", type=int, default=8, help="training images (cache warm-up cost)")
    ap.add_argument("--queries", type=int, default=4, help="query images timed for Infer-PL")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.specs[0], args)))
        return
    rows = []
    for spec in args.specs:
        cmd = [sys.executable, __file__, spec, "--one", "--grid", str(args.grid), "--batch", str(args.batch),
               "--steps", str(args.steps), "--images", str(args.images), "--queries", str(args.queries),
               *[f"--set={s}" for s in args.set]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).set_index("network").to_string())


if __name__ == "__main__":
    main()

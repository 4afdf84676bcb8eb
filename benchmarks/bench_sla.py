"""Batched vs sequential SLA: training throughput, Infer-PL time and peak memory for K models.

SLA trains one CC2D per landmark (K = 19 on ISBI). "sequential" runs the K models one after the
other (``ssl_step`` per model, as ``method.batched=False``, the default off CUDA); "batched" trains
them as one ``StackedModels`` (one ``ssl_step`` of the stack). Infer-PL always runs stacked
(``ModelSetPredictor``; "sequential" times it with stacks of one model, ``method.stack_size=1``).
Each mode runs in its own subprocess so its peak resident memory (ru_maxrss) is its own.

    python benchmarks/bench_sla.py                              # K=19, grid 192, 3 steps, batch 8
    python benchmarks/bench_sla.py --k 4 --grid 128 --steps 2   # quick check
    python benchmarks/bench_sla.py --device cuda                # on a GPU
    python benchmarks/bench_sla.py --weights env                # VGG16 weights from $CC2DKIT_WEIGHTS

Data: ISBI 2015 when $CC2DKIT_ISBI_ROOT is set, the phantom (12 landmarks, its most) otherwise. Decoder
widths 256,128,128,64,64, embedding 64 (the ``cpu`` preset). The feature cache is warmed and one
step is run before timing; the K x steps batches are drawn before timing (so both modes time the
model only). Training throughput counts the samples of all K models; Infer-PL is the cascade
inference of all K landmarks per query image (template embedding included).
"""
from __future__ import annotations

import argparse
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


def _config(args):
    from cc2dkit.config import PHANTOM_MAX_LANDMARKS, preset

    source = "isbi" if os.environ.get("CC2DKIT_ISBI_ROOT") else "phantom"
    over = {"data.source": source, "data.grid": args.grid, "backbone.weights": args.weights,
            "net.decoder_widths": "256,128,128,64,64", "net.embed_dim": 64, "train.batch_size": args.batch,
            "eval.batch_size": 4, "device": args.device,
            "train.crop_below": None}  # a stack cannot crop (one model per step): both modes on whole maps
    if source == "phantom":
        over.update({"data.phantom_train": args.images, "data.phantom_test": 2,
                     "data.phantom_landmarks": PHANTOM_MAX_LANDMARKS, "data.phantom_size": 512,
                     "data.template": "train_000"})
    return preset("cpu", **over)


def measure(mode: str, args) -> dict:
    from cc2dkit.data import SubsetDataset, build_datasets
    from cc2dkit.data.grid import GridImages
    from cc2dkit.inference import ModelSetPredictor, Template
    from cc2dkit.methods import METHODS
    from cc2dkit.network import StackedModels
    from cc2dkit.runtime import setup
    from cc2dkit.training import RandomPatchSource, make_optimizer, ssl_step

    cfg = _config(args)
    device, gen = setup(cfg)
    train, _ = build_datasets(cfg.data, cfg.seed)
    train = SubsetDataset(train, train.ids[:args.images])
    data = GridImages(train, args.grid, "train", progress=False)
    t = [i for i in range(len(data)) if data.labelled[i]][0]
    landmarks = [i % len(data.landmark_names) for i in range(args.k)]
    models = [m.to(device) for m in METHODS["sla"].build_models(cfg, args.k)]
    models[0].cache.features(data.keys, data.images.to(device))  # warm: every image's frozen features once
    src = RandomPatchSource(data, cfg.train)
    draws = [[src.sample(args.batch, gen) for _ in range(args.k)] for _ in range(args.steps + 1)]
    template = Template(data.images[t], data.landmarks[t])
    if mode == "batched":
        stack = StackedModels(models)
        opt = make_optimizer(stack, cfg)

        def step(batches):
            ssl_step(stack, batches, opt, cfg.train, device)

        predictor = ModelSetPredictor(models, template, landmarks, device, cfg.eval.batch_size)
    else:
        opts = [make_optimizer(m, cfg) for m in models]

        def step(batches):
            for m, b, o in zip(models, batches, opts):
                ssl_step(m, [b], o, cfg.train, device)

        predictor = ModelSetPredictor(models, template, landmarks, device, cfg.eval.batch_size, stack_size=1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    step(draws[0])  # warm-up
    sync()
    t0 = time.perf_counter()
    for batches in draws[1:]:
        step(batches)
    sync()
    train_s = time.perf_counter() - t0
    queries = list(range(min(args.queries, len(data))))
    predictor.predict_grid(data, queries[:1])  # warm-up
    sync()
    t0 = time.perf_counter()
    predictor.predict_grid(data, queries)
    sync()
    infer_s = (time.perf_counter() - t0) / len(queries)
    return {"mode": mode, "k": args.k, "grid": args.grid, "batch": args.batch, "device": str(device),
            "train_samples_per_s": args.steps * args.k * args.batch / train_s, "s_per_step_all_k": train_s / args.steps,
            "infer_pl_s_per_image_all_k": infer_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan"),
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=19, help="number of single-landmark models")
    ap.add_argument("--grid", type=int, default=192)
    ap.add_argument("--steps", type=int, default=3, help="timed steps (each trains all K models once)")
    ap.add_argument("--batch", type=int, default=8, help="batch size per model")
    ap.add_argument("--images", type=int, default=8, help="training images (cache warm-up cost)")
    ap.add_argument("--queries", type=int, default=4, help="query images timed for Infer-PL")
    ap.add_argument("--weights", default="none", help='"none" (random, speed only), "env" ($CC2DKIT_WEIGHTS), a path')
    ap.add_argument("--device", default="cpu", help='"cpu", "cuda", "auto"')
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default); on a shared "
                    "machine 1 avoids OpenMP oversubscription, which can slow steps down tenfold")
    ap.add_argument("--modes", default="sequential,batched")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.one, args)))
        return
    passed = [f"--{name}={value}" for name, value in vars(args).items() if name not in ("modes", "one")]
    rows = []
    for mode in args.modes.split(","):
        out = subprocess.run([sys.executable, __file__, *passed, "--one", mode], capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"{mode} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    if len(rows) == 2:
        frame["speedup"] = frame["train_samples_per_s"] / frame["train_samples_per_s"].iloc[0]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.round(3).to_string(index=False))


if __name__ == "__main__":
    main()

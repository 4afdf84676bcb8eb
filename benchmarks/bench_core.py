"""Core speed and memory figures: SSL training throughput and inference time.

Each configuration runs in its own subprocess so its peak resident memory (ru_maxrss) is its own.

    python benchmarks/bench_core.py                      # grids 384 and 192, cache on/off
    python benchmarks/bench_core.py --grids 192 --steps 3
    python benchmarks/bench_core.py --run runs/cpu       # also print that run's Test1 metrics
    python benchmarks/bench_core.py --grids 384 --set train.channels_last=on --set train.amp=bf16
    python benchmarks/bench_core.py --grids 192 --set method.name=cc2d     # a plain CC2D, not the C-Adapter
    python benchmarks/bench_core.py --grids 192 --set method.pl_walk=1.0   # each step with the round trip

Data: ISBI 2015 when $CC2DKIT_ISBI_ROOT is set (the speed does not depend on the pixels), the
phantom otherwise. Backbone: VGG16 (random weights: speed only). The network is one model of the
config's method (the ``cpu`` preset's: the C-Adapter C_A 4, its batches' landmark ids drawn at
random; SLA / C-ATD: one of their K plain models); inference matches all landmarks in
``eval.amp``'s precision (``--set eval.amp=bf16``). Prints a pandas table.
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


def _config(grid: int, cache: bool, n_images: int, sets: list[str]):
    from cc2dkit.config import PHANTOM_MAX_LANDMARKS, parse_sets, preset

    source = "isbi" if os.environ.get("CC2DKIT_ISBI_ROOT") else "phantom"
    over = {"data.source": source, "data.grid": grid, "backbone.weights": "none", "backbone.cache_features": cache,
            "net.decoder_widths": "256,128,128,64,64", "net.embed_dim": 64, "train.batch_size": 8,
            **parse_sets(sets)}
    if source == "isbi":
        return preset("cpu", **over), n_images
    return preset("cpu", **over, **{"data.phantom_train": n_images, "data.phantom_test": 4,
                                    "data.phantom_landmarks": PHANTOM_MAX_LANDMARKS, "data.phantom_size": 512,
                                    "data.template": "train_000"}), n_images


def measure_one(grid: int, cache: bool, steps: int, n_images: int, sets: list[str]) -> dict:
    """Steady-state SSL throughput (cache warmed first) and per-image inference time."""
    from cc2dkit.data import SubsetDataset, build_datasets
    from cc2dkit.data.grid import GridImages
    from cc2dkit.inference import ModelPredictor, Template
    from cc2dkit.methods.registry import method_spec
    from cc2dkit.runtime import setup, use_bf16
    from cc2dkit.training import RandomPatchSource, make_optimizer, ssl_step
    from cc2dkit.training.loss import Walk

    cfg, n = _config(grid, cache, n_images, sets)
    device, gen = setup(cfg)
    train, test = build_datasets(cfg.data, cfg.seed)
    train = SubsetDataset(train, train.ids[:n])
    data = GridImages(train, grid, "train", progress=False)
    k = len(data.landmark_names)
    model = method_spec(cfg).build_model(cfg, k).to(device)
    opt = make_optimizer(model, cfg)
    src = RandomPatchSource(data, cfg.train)

    def batch():  # an adapter's samples each train one landmark's adapter
        b = src.sample(cfg.train.batch_size, gen)
        ids = torch.randint(0, k, (len(b.images),), generator=gen) if model.n_landmarks else None
        b = dataclasses.replace(b, landmark_ids=ids)
        if walk:  # the round trip's partners: other images of the set (the speed does not depend on which)
            pick = torch.randint(len(data), (len(b.images),), generator=gen).tolist()
            b = dataclasses.replace(b, partners=data.images[pick], partner_keys=[data.keys[i] for i in pick],
                                    partner_points=b.image_points)
        return b

    walk = Walk(cfg.method.pl_walk, cfg.method.pl_walk_stride) if cfg.method.pl_walk else None

    if cache:  # warm: every image's frozen features computed once
        model.cache.features(data.keys, data.images)
    ssl_step(model, [batch()], opt, cfg.train, device, walk=walk)  # warm-up step
    t0 = time.perf_counter()
    for _ in range(steps):
        ssl_step(model, [batch()], opt, cfg.train, device, walk=walk)
    train_s = time.perf_counter() - t0
    labelled = [i for i in range(len(data)) if data.labelled[i]]
    template = Template(data.images[labelled[0]], data.landmarks[labelled[0]])
    predictor = ModelPredictor(model, template, range(k), device, 4, bf16=use_bf16(cfg.eval.amp, device))
    predictor.predict_grid(data, [0])  # warm-up
    t0 = time.perf_counter()
    predictor.predict_grid(data, [0, 1, 2, 3])
    infer_s = (time.perf_counter() - t0) / 4
    return {
        "grid": grid, "cache": "on" if cache else "off", "data": cfg.data.source, "method": cfg.method.name,
        "landmarks": len(data.landmark_names), "train_samples_per_s": steps * cfg.train.batch_size / train_s,
        "s_per_step": train_s / steps, "infer_s_per_image_all_landmarks": infer_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(), "device": device.type, "amp": cfg.train.amp, "eval_amp": cfg.eval.amp,
        "channels_last": cfg.train.channels_last, "pl_walk": cfg.method.pl_walk,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grids", default="384,192")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--images", type=int, default=16, help="training images used (cache warm-up cost)")
    ap.add_argument("--run", default=None, help="a finished run folder whose test evaluation to print")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every configuration measured (repeatable)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        grid, cache = args.one.split(":")
        print(json.dumps(measure_one(int(grid), cache == "on", args.steps, args.images, args.set)))
        return
    rows = []
    for grid in (int(g) for g in args.grids.split(",")):
        for cache in ("on", "off"):
            out = subprocess.run([sys.executable, __file__, "--one", f"{grid}:{cache}", "--steps", str(args.steps),
                                  "--images", str(args.images), *[f"--set={s}" for s in args.set]],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(pd.DataFrame(rows).round(3).to_string(index=False))
    if args.run:
        print(f"\nrun {args.run}:")
        print(pd.read_csv(Path(args.run) / "evaluation_test.csv", index_col=0).round(2).to_string())


if __name__ == "__main__":
    main()

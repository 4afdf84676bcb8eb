"""Training throughput, Infer-PL time and peak memory of each method's network, one model.

    python benchmarks/bench_networks.py                                  # cc2d wide:16 wide:304 adapter:0/4/16
    python benchmarks/bench_networks.py cc2d adapter:16 --grid 128 --steps 2
    python benchmarks/bench_networks.py --set train.channels_last=on --set device=cuda

NETWORK specs: ``cc2d`` (the network of multi, and of each SLA / C-ATD model), ``wide:N`` (every
decoder conv widened by N channels), ``adapter:N`` (C-Adapter with C_A = N; every sample carries a
random landmark id, as in the adapter's mixed batches). Throughput is samples per second of the
training step (``ssl_step``) on patches of ISBI images when $CC2DKIT_ISBI_ROOT is set, the
phantom (12 landmarks, its most) otherwise; the feature cache is warmed and one step run before timing.
Infer-PL is the cascade inference of all the landmarks (19 on ISBI) per query image as the methods run it
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


def config(spec: str, grid: int, batch: int, images: int, sets: list[str]):
    """The `cpu` preset for network ``spec`` at ``grid``, batch ``batch``, random VGG16 weights, ISBI
    when $CC2DKIT_ISBI_ROOT is set (a phantom of ``images`` training images otherwise), then ``sets``."""
    from cc2dkit.config import PHANTOM_MAX_LANDMARKS, parse_sets, preset
    from cc2dkit.methods import method_config
    from run_methods import spec_overrides  # the same METHOD specs as run_methods.py

    if spec.partition(":")[0] not in ("cc2d", "wide", "adapter"):
        raise SystemExit(f"unknown network spec {spec!r}: cc2d, wide:N or adapter:N")
    over = {"data.grid": grid, "backbone.weights": "none", "train.batch_size": batch, **spec_overrides(spec)}
    if os.environ.get("CC2DKIT_ISBI_ROOT"):
        over["data.source"] = "isbi"
    else:
        over.update({"data.source": "phantom", "data.phantom_train": images, "data.phantom_test": 2,
                     "data.phantom_landmarks": PHANTOM_MAX_LANDMARKS, "data.phantom_size": 512,
                     "data.template": "train_000"})
    return method_config(preset("cpu", **{**over, **parse_sets(sets)}))


@dataclasses.dataclass
class Bench:
    """What the benchmarks time: ``images`` training images on the grid, a patch source, the device
    and generator of ``cfg`` (seeded), and the network of ``cfg`` with its optimizer, cache warm."""

    cfg: object
    device: torch.device
    gen: torch.Generator
    data: object  # GridImages
    src: object  # RandomPatchSource
    model: torch.nn.Module
    opt: torch.optim.Optimizer

    @property
    def n_landmarks(self) -> int:
        return len(self.data.landmark_names)

    @property
    def template(self) -> int:
        """The predictor's template: the first labelled image."""
        return next(i for i in range(len(self.data)) if self.data.labelled[i])

    def network(self, cfg):
        """Another network (of ``cfg``, seeded by it) and its optimizer, sharing this one's warm cache."""
        from cc2dkit.methods import method_spec
        from cc2dkit.training import make_optimizer

        torch.manual_seed(cfg.seed)
        model = method_spec(cfg).build_model(cfg, self.n_landmarks).to(self.device)
        model.cache = self.model.cache
        return model, make_optimizer(model, cfg)

    def batches(self, n: int) -> list:
        """``n`` training batches; for the C-Adapter each sample carries a random landmark id, as in its
        mixed batches."""
        size = self.cfg.train.batch_size
        out = [self.src.sample(size, self.gen) for _ in range(n)]
        if self.cfg.method.name != "adapter":
            return out
        return [dataclasses.replace(b, landmark_ids=torch.randint(0, self.n_landmarks, (size,), generator=self.gen))
                for b in out]

    def predictor(self):
        """The methods' predictor of all landmarks (``ModelPredictor``) from :attr:`template`."""
        from cc2dkit.inference import ModelPredictor, Template

        t = self.template
        return ModelPredictor(self.model, Template(self.data.images[t], self.data.landmarks[t]),
                              list(range(self.n_landmarks)), self.device, self.cfg.eval.batch_size)


def bench(cfg, images: int) -> Bench:
    """A :class:`Bench` of ``cfg`` on the first ``images`` training images (their features cached)."""
    from cc2dkit.data import SubsetDataset, build_datasets
    from cc2dkit.data.grid import GridImages
    from cc2dkit.methods import method_spec
    from cc2dkit.runtime import setup
    from cc2dkit.training import RandomPatchSource, make_optimizer

    device, gen = setup(cfg)
    train, _ = build_datasets(cfg.data, cfg.seed)
    data = GridImages(SubsetDataset(train, train.ids[:images]), cfg.data.grid, "train", progress=False)
    torch.manual_seed(cfg.seed)  # the weights Bench.network(cfg) would build
    model = method_spec(cfg).build_model(cfg, len(data.landmark_names)).to(device)
    model.cache.features(data.keys, data.images)  # warm: every image's frozen features once
    return Bench(cfg, device, gen, data, RandomPatchSource(data, cfg.train), model, make_optimizer(model, cfg))


def measure(spec: str, args) -> dict:
    from cc2dkit.network.accounting import trainable_parameter_count
    from cc2dkit.training import ssl_step

    b = bench(config(spec, args.grid, args.batch, args.images, args.set), args.images)
    cfg, model = b.cfg, b.model
    batches = b.batches(args.steps + 1)
    ssl_step(model, batches[:1], b.opt, cfg.train, b.device)  # warm-up
    t0 = time.perf_counter()
    for batch in batches[1:]:
        ssl_step(model, [batch], b.opt, cfg.train, b.device)
    train_s = time.perf_counter() - t0
    predictor = b.predictor()
    predictor.predict_grid(b.data, [1])  # warm-up
    queries = list(range(1, 1 + args.queries))
    t0 = time.perf_counter()
    predictor.predict_grid(b.data, queries)
    infer_s = (time.perf_counter() - t0) / len(queries)
    return {"network": spec, "grid": cfg.data.grid, "data": cfg.data.source, "device": b.device.type,
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

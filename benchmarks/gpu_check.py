"""The GPU check: what the kit's pieces cost on CUDA, in one command (a few minutes on one GPU).

    python benchmarks/gpu_check.py --out runs/gpu_check.json                  # CUDA: the paper network at 384 px
    python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/check.json  # the same code at tiny sizes

Prints one table and writes it, with the machine, as JSON. A row per measurement:

- ``train``: training samples/s of the ``paper`` preset's network (one CC2D): fp32 vs bf16 autocast,
  NCHW vs channels-last, feature cache on vs off;
- ``sla``: K single-landmark decoders (K = 19): one after the other vs stacked, ``method.stack_size``
  K, K/2, K/4; samples/s of all K together and peak memory;
- ``adapter``: C-Adapter C_A 16 vs one CC2D (one decoder pass, mixed landmarks): samples/s, parameters;
- ``infer``: ms per query image for every landmark: one CC2D, K stacked models, C-Adapter C_A 16,
  one CC2D refined by the fine stage (``refine``), and the C-Adapter and the K models with their finest
  decoder stages near the answers only (``eval.local_finest``; ``max_px_from_whole``: the largest
  answer difference to the whole maps, grid px);
- ``method``: one epoch of every method (``run_method``: a few steps per stage, Infer-PL on a few
  images, every phantom landmark), seconds: the methods run on the device;
- ``bf16``: one training step from the same weights and batch, fp32 vs bf16 autocast: relative
  difference of the loss and cosine of the gradients, against the tolerance stated in the row.

Speed needs no labels: the data are phantom images (12 landmarks; K = 19 cycles over them), the
backbone VGG16, random unless ``--weights`` names a file (``env``: $CC2DKIT_WEIGHTS). The exit
status is 1 when the bf16 check is out of tolerance or a method fails. Peak memory is CUDA's (NaN
on the CPU). ``--steps`` / ``--queries`` shorten the timings (e.g. the full sizes on a CPU, once).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

# bf16 keeps 8 bits of mantissa. Measured at the tiny sizes on CPU: loss 0.6% apart, gradient
# cosine 0.90-0.96, while the fp32 gradients of two batches have cosine ~0: bf16's error is small
# beside the noise of drawing a batch. Below these, something beyond rounding is wrong.
BF16_LOSS_RTOL = 0.02
BF16_GRAD_COSINE = 0.85


@dataclasses.dataclass(frozen=True)
class Sizes:
    grid: int
    image: int  # phantom image side (original pixels)
    landmarks: int  # K: the SLA models, the adapter's landmarks, the landmarks inferred
    images: int  # training images (the cache holds them all)
    batch: int
    steps: int  # timed steps per row
    queries: int  # timed query images per inference row
    widths: str | None  # decoder widths (None: the paper preset's)
    embed: int | None
    refine_scale: int
    refine_crop: int


FULL = Sizes(grid=384, image=768, landmarks=19, images=8, batch=8, steps=10, queries=8, widths=None, embed=None,
             refine_scale=4, refine_crop=128)
TINY = Sizes(grid=64, image=128, landmarks=4, images=4, batch=2, steps=2, queries=2, widths="32,32,16,16,16",
             embed=16, refine_scale=2, refine_crop=64)


def base_config(args, s: Sizes):
    from cc2dkit.config import PHANTOM_MAX_LANDMARKS, preset

    over = {"data.source": "phantom", "data.grid": s.grid, "data.phantom_size": s.image,
            "data.phantom_train": s.images, "data.phantom_test": 2,
            "data.phantom_landmarks": min(s.landmarks, PHANTOM_MAX_LANDMARKS),  # K = 19 landmarks cycle over them
            "data.template": "train_000", "backbone.arch": "vgg16", "backbone.weights": args.weights,
            "device": args.device, "train.batch_size": s.batch, "eval.batch_size": 4, "train.epochs": 1,
            "train.steps_per_epoch": 2, "method.atd_copies": 8, "method.pl_images": 2,
            "refine.scale": s.refine_scale, "refine.crop": s.refine_crop, "refine.steps_per_epoch": 2}
    if s.widths:
        over.update({"net.decoder_widths": s.widths, "net.embed_dim": s.embed})
    return preset("paper", **over)


class Timer:
    """Seconds and peak device memory of the code in a ``with`` block (CUDA: synchronised)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self.peak_mb = float("nan")
        self.seconds = time.perf_counter() - self.t0


def row(check: str, variant: str, **values) -> dict:
    return {"check": check, "variant": variant, **values}


class Bench:
    """The data and helpers every check shares."""

    def __init__(self, args, s: Sizes):
        from cc2dkit.data import build_datasets
        from cc2dkit.data.grid import GridImages
        from cc2dkit.inference import Template
        from cc2dkit.runtime import setup

        self.s, self.cfg = s, base_config(args, s)
        self.device, self.gen = setup(self.cfg)
        train, test = build_datasets(self.cfg.data, self.cfg.seed)
        self.train = GridImages(train, s.grid, "train", progress=False)
        self.test = GridImages(test, s.grid, "test", progress=False)
        self.template = Template.from_data(self.train, "train_000")

    def config(self, **over):
        from cc2dkit.methods import method_config

        return method_config(self.cfg.replace(**over)) if over else self.cfg

    def model(self, cfg=None, method: str = "cc2d"):
        from cc2dkit.methods import method_spec

        cfg = cfg or self.cfg
        model = method_spec(cfg.replace(**{"method.name": method})).build_model(cfg, self.s.landmarks)
        return model.to(self.device)

    def warm_cache(self, model) -> None:
        if model.cache.enabled:
            model.cache.features(self.train.keys, self.train.images.to(self.device))

    def batches(self, k: int, n: int, adapter: bool = False) -> list[list]:
        """``n`` steps of ``k`` batches (one per model); adapter batches carry mixed landmark ids."""
        from cc2dkit.training import RandomPatchSource

        src = RandomPatchSource(self.train, self.cfg.train)
        out = []
        for _ in range(n):
            step = []
            for _ in range(k):
                b = src.sample(self.s.batch, self.gen)
                if adapter:
                    b = dataclasses.replace(b, landmark_ids=torch.randint(0, self.s.landmarks, (self.s.batch,),
                                                                          generator=self.gen))
                step.append(b)
            out.append(step)
        return out

    def steps_per_s(self, nets_batches, tcfg) -> tuple[float, float]:
        """Samples/s and peak MB of ``steps`` SSL steps of every (net, optimizer, batch indices)."""
        from cc2dkit.training import ssl_step

        draws = self.batches(sum(len(ix) for _, _, ix in nets_batches), self.s.steps + 1)
        for net, opt, ix in nets_batches:  # warm-up (cuDNN autotuning, caches)
            ssl_step(net, [draws[0][i] for i in ix], opt, tcfg, self.device)
        with Timer(self.device) as t:
            for step in draws[1:]:
                for net, opt, ix in nets_batches:
                    ssl_step(net, [step[i] for i in ix], opt, tcfg, self.device)
        samples = self.s.steps * self.s.batch * sum(len(ix) for _, _, ix in nets_batches)
        return samples / t.seconds, t.peak_mb


def check_train(b: Bench) -> list[dict]:
    from cc2dkit.network.accounting import trainable_parameter_count
    from cc2dkit.training import make_optimizer

    rows = []
    variants = [("off", False, True), ("bf16", False, True), ("off", True, True), ("bf16", True, True),
                ("off", False, False), ("bf16", True, False)]
    for amp, cl, cache in variants:
        cfg = b.config(**{"train.amp": amp, "train.channels_last": cl, "backbone.cache_features": cache})
        model = b.model(cfg)
        b.warm_cache(model)
        rate, peak = b.steps_per_s([(model, make_optimizer(model, cfg), [0])], cfg.train)
        layout = "channels-last" if cl else "NCHW"
        name = f"{'bf16' if amp == 'bf16' else 'fp32'}, {layout}, cache {'on' if cache else 'off'}"
        rows.append(row("train", name, samples_per_s=rate, peak_mb=peak, params=trainable_parameter_count(model)))
    return rows


def check_sla(b: Bench) -> list[dict]:
    from cc2dkit.inference import stack_chunks
    from cc2dkit.methods import METHODS
    from cc2dkit.network import StackedModels
    from cc2dkit.training import make_optimizer

    k, cfg, rows = b.s.landmarks, b.cfg, []
    models = [m.to(b.device) for m in METHODS["sla"].build_models(cfg, k)]
    b.warm_cache(models[0])  # the K models share one frozen backbone and its cache
    rate, peak = b.steps_per_s([(m, make_optimizer(m, cfg), [i]) for i, m in enumerate(models)], cfg.train)
    rows.append(row("sla", f"{k} models one after the other", samples_per_s=rate, peak_mb=peak))
    for size in sorted({k, max(1, k // 2), max(1, k // 4)}, reverse=True):
        stacks = [(StackedModels([models[i] for i in c]), c) for c in stack_chunks(k, size)]
        plan = [(st, make_optimizer(st, cfg), c) for st, c in stacks]
        rate, peak = b.steps_per_s(plan, cfg.train)
        rows.append(row("sla", f"{k} models stacked, stack_size {size}", samples_per_s=rate, peak_mb=peak))
        del stacks, plan
    return rows


def check_adapter(b: Bench) -> list[dict]:
    from cc2dkit.network.accounting import trainable_parameter_count
    from cc2dkit.training import make_optimizer, ssl_step

    rows = []
    for method, over in (("cc2d", {}), ("adapter", {"method.adapter_channels": 16})):
        cfg = b.config(**{"method.name": method, **over})
        model = b.model(cfg, method)
        b.warm_cache(model)
        opt = make_optimizer(model, cfg)
        draws = b.batches(1, b.s.steps + 1, adapter=method == "adapter")
        ssl_step(model, draws[0], opt, cfg.train, b.device)
        with Timer(b.device) as t:
            for step in draws[1:]:
                ssl_step(model, step, opt, cfg.train, b.device)
        rows.append(row("adapter", "C-Adapter C_A 16" if over else "one CC2D",
                        samples_per_s=b.s.steps * b.s.batch / t.seconds, peak_mb=t.peak_mb,
                        params=trainable_parameter_count(model)))
    return rows


def check_infer(b: Bench) -> list[dict]:
    from cc2dkit.inference import ModelPredictor, ModelSetPredictor, RefinedPredictor, fine_template
    from cc2dkit.methods import METHODS
    from cc2dkit.network import CC2D

    k, cfg = b.s.landmarks, b.cfg
    lms = [i % len(b.test.landmark_names) for i in range(k)]  # K landmarks (repeating the phantom's)
    bs = cfg.eval.batch_size
    one = b.model()
    adapter_cfg = b.config(**{"method.name": "adapter", "method.adapter_channels": 16})
    fine = CC2D(cfg.net, cfg.backbone).to(b.device)
    predictors = {
        "one CC2D": ModelPredictor(one, b.template, lms, b.device, bs),
        f"{k} models stacked": ModelSetPredictor([m.to(b.device) for m in METHODS["sla"].build_models(cfg, k)],
                                                 b.template, lms, b.device, bs),
        "C-Adapter C_A 16": ModelPredictor(b.model(adapter_cfg, "adapter"), b.template, lms, b.device, bs),
        f"one CC2D + fine stage x{cfg.refine.scale}": RefinedPredictor.build(
            ModelPredictor(one, b.template, lms, b.device, bs), fine, fine_template(b.template, cfg.refine.scale),
            cfg.refine),
    }
    # eval.local_finest (off on CUDA by default, unmeasured there): the finest decoder stages only near
    # each answer, one landmark's decoder at a time; the same answers as the whole maps up to rounding
    twins = {"C-Adapter C_A 16, finest stages local": "C-Adapter C_A 16",
             f"{k} models one at a time, finest stages local": f"{k} models stacked"}
    locals_ = {name: predictors[whole].configured(False, 0, local=True) for name, whole in twins.items()}
    queries = [i % len(b.test) for i in range(b.s.queries)]
    rows, answers = [], {}
    for name, p in {**predictors, **locals_}.items():
        p.predict_grid(b.test, queries[:1])  # warm-up (and the features of the test images, when cached)
        with Timer(b.device) as t:
            answers[name] = p.predict_grid(b.test, queries)
        extra = {}
        if name in locals_:  # largest distance to the whole maps' answers (grid px), pairs redone whole
            extra["max_px_from_whole"] = float(np.abs(answers[name] - answers[twins[name]]).max())
            counts = p.redone_pairs(b.test, queries)
            extra["redone_pairs"] = "-" if counts is None else "{}/{}".format(*counts)
        rows.append(row("infer", f"{name}, {k} landmarks", ms_per_image=1000 * t.seconds / len(queries),
                        peak_mb=t.peak_mb, **extra))
    return rows


def check_methods(b: Bench) -> list[dict]:
    from cc2dkit.methods import run_method

    rows = []
    for name in ("cc2d", "multi", "sla", "atd", "adapter", "wide"):
        cfg = b.config(**{"method.name": name})
        try:
            with Timer(b.device) as t:
                run_method(cfg, None, (b.train, b.test), progress=False)
            rows.append(row("method", f"{name}: 1 epoch", seconds=t.seconds, peak_mb=t.peak_mb, ok=True))
        except Exception as e:  # a row saying what failed; the exit status says it too
            rows.append(row("method", f"{name}: 1 epoch", ok=False, detail=f"{type(e).__name__}: {e}"[:200]))
    return rows


def check_bf16(b: Bench) -> list[dict]:
    """One step from the same weights: fp32 and bf16 on batch A, and fp32 on batch B for scale (the
    gradient noise of drawing another batch, which SGD lives with)."""
    from cc2dkit.training import make_optimizer, ssl_step

    draws = b.batches(1, 2)
    state = {k: v.clone() for k, v in b.model().state_dict().items()}
    losses, grads = {}, {}
    for amp, i in (("off", 0), ("bf16", 0), ("off", 1)):
        cfg = b.config(**{"train.amp": amp, "train.channels_last": False})
        model = b.model(cfg)
        model.load_state_dict(state)
        b.warm_cache(model)
        losses[amp, i] = ssl_step(model, draws[i], make_optimizer(model, cfg), cfg.train, b.device)[0]
        grads[amp, i] = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
    cosine = lambda x, y: float(torch.nn.functional.cosine_similarity(x, y, dim=0))  # noqa: E731
    rel = abs(losses["bf16", 0] - losses["off", 0]) / abs(losses["off", 0])
    cos, other = cosine(grads["bf16", 0], grads["off", 0]), cosine(grads["off", 1], grads["off", 0])
    ok = rel <= BF16_LOSS_RTOL and cos >= BF16_GRAD_COSINE
    return [row("bf16", "one step: bf16 vs fp32", ok=ok,
                detail=f"loss {losses['off', 0]:.4f} (fp32) vs {losses['bf16', 0]:.4f} (bf16), relative difference "
                       f"{rel:.2e} (tolerance {BF16_LOSS_RTOL}); gradient cosine {cos:.4f} (tolerance "
                       f">= {BF16_GRAD_COSINE}; fp32 on another batch: {other:.4f})")]


CHECKS = {"train": check_train, "sla": check_sla, "adapter": check_adapter, "infer": check_infer,
          "method": check_methods, "bf16": check_bf16}


def machine(device: torch.device) -> dict:
    out = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
           "cpu_threads": torch.get_num_threads(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["gpu_memory_gb"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return out


def run(argv: list[str] | None = None) -> tuple[dict, int, str | None]:
    """Parse ``argv``, run the checks; returns (report, exit status, the --out path)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help='"cuda" (default), "cpu" or "auto"')
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (grid 64, 4 landmarks, 2 steps): the CPU test")
    ap.add_argument("--weights", default="env" if os.environ.get("CC2DKIT_WEIGHTS") else "none",
                    help='backbone weights: "none" (random: speed only), "env" ($CC2DKIT_WEIGHTS), a path')
    ap.add_argument("--checks", default=",".join(CHECKS), help=f"comma-separated subset of {','.join(CHECKS)}")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per row (default: 10; tiny: 2)")
    ap.add_argument("--queries", type=int, default=None,
                    help="timed query images per inference row (default: 8; tiny: 2)")
    ap.add_argument("--out", default=None, help="JSON file for the table (default: print only)")
    args = ap.parse_args(argv)
    unknown = [c for c in args.checks.split(",") if c not in CHECKS]
    if unknown:
        ap.error(f"unknown check(s) {unknown}; choose from {list(CHECKS)}")
    sizes = TINY if args.tiny else FULL
    sizes = dataclasses.replace(sizes, steps=args.steps or sizes.steps, queries=args.queries or sizes.queries)
    t0 = time.perf_counter()
    bench = Bench(args, sizes)
    rows = []
    for name in args.checks.split(","):
        print(f"{name} ...", file=sys.stderr, flush=True)
        t1 = time.perf_counter()
        rows += (done := CHECKS[name](bench))
        for r in done:  # as they come: a long run cut short still shows what it measured
            values = {k: v for k, v in r.items() if k not in ("check", "variant")}
            print(f"  {r['variant']}: {values}", file=sys.stderr, flush=True)
        print(f"{name}: {time.perf_counter() - t1:.0f} s", file=sys.stderr, flush=True)
    failed = [r["variant"] for r in rows if r.get("ok") is False]
    report = {"machine": machine(bench.device), "sizes": dataclasses.asdict(sizes), "rows": rows,
              "seconds": time.perf_counter() - t0, "failed": failed}
    return report, int(bool(failed)), args.out


def table(report: dict) -> pd.DataFrame:
    frame = pd.DataFrame(report["rows"]).set_index(["check", "variant"])
    return frame.astype({"params": "Int64"} if "params" in frame else {})


def main(argv: list[str] | None = None) -> int:
    report, status, out = run(argv)
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.max_colwidth", 90,
                           "display.float_format", "{:.4g}".format):
        print(table(report).drop(columns=["detail"], errors="ignore").to_string(na_rep=""))
    m = report["machine"]
    print(f"{m.get('gpu', m['device'])}, torch {m['torch']}; {report['seconds']:.0f} s in all"
          + (f"; FAILED: {report['failed']}" if report["failed"] else ""))
    for r in report["rows"]:
        if r.get("detail"):
            print(f"{r['variant']}: {r['detail']}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=1, default=float))
        print(f"written: {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())

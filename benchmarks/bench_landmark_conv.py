"""The C-Adapter's landmark-specific conv: the kit's against one grouped conv laid out NCHW.

``LandmarkConv2d`` (cc2dkit/network/blocks.py) runs a training batch as one grouped conv laid out
NHWC on the CPU (its output back in NCHW), and in eval a batch of one landmark (inference embeds one
landmark at a time) as one plain conv. The reference is what it did before: one grouped conv
(``groups=B``) in NCHW for every batch. Both give the same values (tests/test_adapter.py); this
prints their speed at three levels, the two versions interleaved in one process (so a busy or noisy
machine slows both alike): the conv alone at the shapes of the `cpu` preset's decoder (grid 192),
the C-Adapter's training step (``ssl_step``, batches of mixed landmarks), and Infer-PL
(``predict_grid`` of the plain predictor, every landmark (19 on ISBI) one after the other).

    python benchmarks/bench_landmark_conv.py                    # 12 steps, 8 Infer-PL images, each version
    python benchmarks/bench_landmark_conv.py --steps 4 --images 2 --grid 128   # quick

Data: ISBI when $CC2DKIT_ISBI_ROOT is set, the phantom (12 landmarks, its most) otherwise; VGG16 with random
weights (speed only); the feature cache is warmed first; medians over the repeats.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cc2dkit.network import blocks  # noqa: E402

KIT = blocks.LandmarkConv2d.forward


def reference(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The earlier LandmarkConv2d.forward: one grouped conv, NCHW, whatever the landmarks."""
    b, c, h, w = x.shape
    weight = self.weight[ids].reshape(b * self.c_out, c, *self.kernel_size)
    y = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=self.padding, dilation=self.dilation, groups=b)
    return y.reshape(b, self.c_out, h, w)


VERSIONS = {"reference (grouped, NCHW)": reference, "kit": KIT}


def interleaved(run, repeats: int) -> dict[str, float]:
    """Median seconds of ``run()`` under each version, the versions taking turns."""
    times = {name: [] for name in VERSIONS}
    for _ in range(repeats):
        for name, forward in VERSIONS.items():
            blocks.LandmarkConv2d.forward = forward
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    blocks.LandmarkConv2d.forward = KIT
    return {name: float(np.median(t)) for name, t in times.items()}


def conv_rows(grid: int, repeats: int) -> list[dict]:
    """The conv alone at the decoder's three largest landmark-conv shapes (C_A = 4, batch 8)."""
    rows, gen = [], torch.Generator().manual_seed(0)
    for c_in, side in ((132, grid // 2), (68, grid // 2), (260, grid // 4)):
        conv = blocks.LandmarkConv2d(19, c_in, 4)
        x = torch.rand(8, c_in, side, side, generator=gen, requires_grad=True)
        mixed = torch.randint(0, 19, (8,), generator=gen)
        one = torch.full((8,), 3)

        def train_step():
            conv.train()
            conv.weight.grad = x.grad = None
            conv(x, mixed).square().mean().backward()

        def infer():
            conv.eval()
            with torch.no_grad():
                conv(x, one)
        shape = f"(8, {c_in}, {side}, {side})"
        rows.append({"level": "conv fwd+bwd, mixed landmarks", "shape": shape, **interleaved(train_step, repeats)})
        rows.append({"level": "conv fwd, one landmark", "shape": shape, **interleaved(infer, repeats)})
    return rows


def model_rows(args) -> list[dict]:
    """The C-Adapter's training step and Infer-PL."""
    from bench_networks import bench, config
    from cc2dkit.training import ssl_step

    b = bench(config("adapter:4", args.grid, 8, args.images + 1, args.set), args.images + 1)
    cfg, model = b.cfg, b.model
    batches = iter(b.batches(2 * args.steps + 1))
    ssl_step(model, [next(batches)], b.opt, cfg.train, b.device)  # warm-up
    step = interleaved(lambda: ssl_step(model, [next(batches)], b.opt, cfg.train, b.device), args.steps)
    predictor = b.predictor().plain()
    queries = [i for i in range(len(b.data)) if i != b.template][:args.images]
    predictor.predict_grid(b.data, queries[:1])  # warm-up
    infer = interleaved(lambda: predictor.predict_grid(b.data, queries), 1)
    return [{"level": "C-Adapter C_A 4 training step (batch 8)", "shape": f"grid {cfg.data.grid}", **step},
            {"level": f"Infer-PL, {len(queries)} images, {b.n_landmarks} landmarks", "shape": f"grid {cfg.data.grid}", **infer}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", type=int, default=192)
    ap.add_argument("--steps", type=int, default=12, help="training steps timed per version")
    ap.add_argument("--images", type=int, default=8, help="query images of the Infer-PL timing")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of the conv-alone timings")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = conv_rows(args.grid, args.repeats) + model_rows(args)
    table = pd.DataFrame(rows).set_index(["level", "shape"])
    table["kit / reference"] = table["kit"] / table["reference (grouped, NCHW)"]
    print(f"threads {torch.get_num_threads()}, data {'isbi' if os.environ.get('CC2DKIT_ISBI_ROOT') else 'phantom'}; "
          "median seconds")
    with pd.option_context("display.width", 200, "display.max_columns", 10, "display.float_format", "{:.3f}".format):
        print(table.to_string())


if __name__ == "__main__":
    main()

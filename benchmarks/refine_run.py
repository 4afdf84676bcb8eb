"""The fine stage on top of a finished run: train a fine network, evaluate coarse against refined.

    python benchmarks/refine_run.py runs/budget/adapter_4 --steps 300 --out runs/refined_adapter_4
    python benchmarks/refine_run.py RUN --scale 2 --crop 96 --set eval.subpixel=true
    python benchmarks/refine_run.py RUN --scale 2 --steps 600 --set refine.coarse_gate=true --set eval.subpixel=true

The run's trained predictor stays as it is (its own config: data, grid, template); a fine network
(``refine.scale``, ``refine.crop``, the run's decoder widths and backbone) is trained by the same
self-supervision on windows of the run's training images at the fine grid for ``--steps`` steps
(batch ``train.batch_size``, Adam ``train.lr``), then both predictors are evaluated on the test split.
Prints the two "all" rows, the seconds of the fine training and of each evaluation, and writes
``--out``: the refined run's ``model.pt`` (coarse + fine) and ``evaluation_test[_coarse].csv``.
Separates the fine stage's effect from the coarse training (the ablation "without / with").
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from cc2dkit.data import build_datasets
    from cc2dkit.data.grid import GridImages
    from cc2dkit.inference import RefinedPredictor, Template, fine_template
    from cc2dkit.methods import load_predictor, run_config, run_settings
    from cc2dkit.methods.runfolder import CONFIG, evaluation, save_model, write_csv_atomic
    from cc2dkit.network import CC2D
    from cc2dkit.runtime import setup
    from cc2dkit.training import CropPatchSource, make_optimizer, ssl_step

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="eval.* / num_threads overrides")
    args = ap.parse_args()
    try:
        cfg = run_settings(args.run, args.set, fixed={"refine.enabled": True, "refine.scale": args.scale,
                                                      "refine.crop": args.crop})
    except (OSError, ValueError) as e:
        sys.exit(f"refine_run.py: {e}")
    device, gen = setup(cfg)
    train_set, test_set = build_datasets(cfg.data, cfg.seed)
    train = GridImages(train_set, cfg.data.grid, "train")
    test = GridImages(test_set, cfg.data.grid, "test")
    template = Template.from_data(train, cfg.data.template)  # with its original image (template copies need it)
    own = run_config(args.run).refine  # the coarse run's own (unused) fine-stage fields
    coarse = load_predictor(args.run, device, cfg.replace(**{"refine.enabled": False, "refine.scale": own.scale,
                                                             "refine.crop": own.crop})).with_template(template)

    torch.manual_seed(cfg.seed)
    fine = CC2D(cfg.net, cfg.backbone).to(device)
    source = CropPatchSource(GridImages(train_set, args.scale * cfg.data.grid, "fine").images, args.crop, cfg.train)
    opt = make_optimizer(fine, cfg)
    t0, losses = time.perf_counter(), []
    for _ in tqdm(range(args.steps), desc="fine network"):
        losses += ssl_step(fine, [source.sample(cfg.train.batch_size, gen)], opt, cfg.train, device)
    train_s = time.perf_counter() - t0
    refined = RefinedPredictor.build(coarse, fine, fine_template(template, args.scale), cfg.refine)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(args.run) / CONFIG, out / "source_config.json")
    (out / CONFIG).write_text(cfg.to_json())
    rows, cols = {}, coarse.landmark_indices
    for name, predictor in (("coarse", coarse), ("refined", refined)):
        t0 = time.perf_counter()
        pred = predictor.predict(test, progress=True)
        seconds = time.perf_counter() - t0
        errors, table = evaluation(test, pred, cols, cfg.eval.radii_mm)
        write_csv_atomic(table, out / ("evaluation_test.csv" if name == "refined" else "evaluation_test_coarse.csv"))
        rows[name] = {**table.loc["all"].round(3).to_dict(), "median_mm": round(float(np.median(errors)), 3),
                      "over_10mm": int((errors > 10).sum()), "s_per_image": round(seconds / len(test), 3)}
    save_model(out, refined, dataclasses.replace(cfg), cfg.train.epochs)
    print(f"fine network: {args.steps} steps in {train_s:.0f} s, loss {np.mean(losses[:20]):.2f} -> "
          f"{np.mean(losses[-20:]):.2f}; scale {args.scale}, crop {args.crop}, threads {torch.get_num_threads()}")
    with pd.option_context("display.width", 200):
        print(pd.DataFrame(rows).T.to_string())


if __name__ == "__main__":
    main()

"""Why does the fine stage not help? Its answers on labelled training images from three starts.

    python benchmarks/refine_diagnosis.py runs/refined_adapter_4 --images 12

For the first ``--images`` training images of a refined run (``benchmarks/refine_run.py``) it prints,
per landmark, the radial error (mm) of the coarse answer, of the refined answer, and of the fine
stage started at the ground truth (a perfect coarse stage); then the mean signed displacement the
fine stage applies to the ground truth (a coordinate error would show as a consistent offset) and
the template matched against itself from its own landmarks (the geometry alone: near 0).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np
    import pandas as pd

    from cc2dkit.data import SubsetDataset, build_datasets
    from cc2dkit.data.grid import GridImages
    from cc2dkit.inference import RefinedPredictor
    from cc2dkit.methods import load_predictor, run_config
    from cc2dkit.runtime import setup

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a run folder whose model.pt holds a fine stage")
    ap.add_argument("--images", type=int, default=12)
    args = ap.parse_args()
    try:
        cfg = run_config(args.run)
        setup(cfg)
        p = load_predictor(args.run)
    except (OSError, ValueError) as e:
        sys.exit(f"refine_diagnosis.py: {e}")
    if not isinstance(p, RefinedPredictor):
        sys.exit(f"{args.run}: its model has no fine stage (train one with benchmarks/refine_run.py)")
    train, _ = build_datasets(cfg.data, cfg.seed)
    data = GridImages(SubsetDataset(train, train.ids[:args.images]), cfg.data.grid, "train", progress=False)
    t = train.ids.index(cfg.data.template)
    template = GridImages(SubsetDataset(train, [train.ids[t]]), cfg.data.grid, "train", progress=False)
    lm, rows = p.landmark_indices, list(range(len(data)))

    def mm(grid_delta: np.ndarray, images: GridImages, rows: list[int]) -> np.ndarray:
        """(N, K, 2) grid-pixel differences -> (N, K, 2) mm at each image's own resolution."""
        scale = np.stack([np.array(images.dataset[i].image.shape[::-1]) / cfg.data.grid
                          * images.dataset[i].spacing_mm for i in rows])
        return grid_delta * scale[:, None, :]

    truth = data.landmarks[:, lm]
    vectors = p.fine_vectors()
    coarse = p.coarse.predict_grid(data, rows)
    refined = np.stack([p.refine(data.dataset[i].image, coarse[i], vectors) for i in rows])
    from_truth = np.stack([p.refine(data.dataset[i].image, truth[i], vectors) for i in rows])
    err = lambda a: np.linalg.norm(mm(a - truth, data, rows), axis=-1)  # noqa: E731
    names = [data.landmark_names[k] for k in lm]
    table = pd.DataFrame({"coarse": err(coarse).mean(0), "refined": err(refined).mean(0),
                          "fine from truth": err(from_truth).mean(0)}, index=names)
    table.loc["all"] = [err(coarse).mean(), err(refined).mean(), err(from_truth).mean()]
    print(f"radial error, mm, training images {train.ids[0]}..{train.ids[args.images - 1]}")
    print(table.round(2).to_string())
    shift = mm(from_truth - truth, data, rows).reshape(-1, 2)
    print(f"fine stage from the truth: mean signed displacement x {shift[:, 0].mean():+.2f} mm, "
          f"y {shift[:, 1].mean():+.2f} mm; SD x {shift[:, 0].std():.2f}, y {shift[:, 1].std():.2f}")
    tt = template.landmarks[:, lm]
    own = p.refine(template.dataset[0].image, tt[0], vectors)[None]
    print("template against itself from its landmarks, mm:", np.round(np.linalg.norm(mm(own - tt, template, [0]),
                                                                                     axis=-1)[0], 2).tolist())


if __name__ == "__main__":
    main()

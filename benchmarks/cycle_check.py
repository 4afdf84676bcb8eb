"""A label-free cycle check of the coarse answers (an ablation; not in any predictor).

    python benchmarks/cycle_check.py runs/cpufine --set num_threads=1

For each test image and landmark, the candidates are the local maxima of the cascade product
(non-maximum suppression over 13 x 13 grid px) that reach half the product's maximum, at most 5.
Each candidate's own embeddings (every scale) are matched back over the *template* image: a true
answer should find the template's landmark again. Two rules, fixed before any run:

- ``cycle``: keep the top answer unless its back-match lands over 3 grid px from the template's
  landmark and another candidate's lands within 3 px; then that one.
- ``ratio``: the candidate with the largest forward product x (backward product at the template's
  landmark / its maximum over the template).

A re-picked candidate gets the same sub-pixel peak as the top answer. The test labels only score
the three answers. One-model runs (CC2D, multi, wide, C-Adapter); prints the table, how many answers
each rule changed and the gross errors (> 10 mm) per landmark.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CANDIDATES, NMS, KEEP, CYCLE_PX = 5, 6, 0.5, 3.0


def main() -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from cc2dkit.analysis import compare_answers
    from cc2dkit.inference import ModelPredictor
    from cc2dkit.inference.cascade import cascade_argmax, peak_offset, similarity_maps
    from cc2dkit.methods import open_run
    from cc2dkit.network.sampling import sample_at

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a run folder of a one-model method")
    ap.add_argument("--set", action="append", default=["eval.subpixel=true", "eval.template_copies=8"],
                    metavar="KEY=VALUE", help="eval.* / num_threads (default: sub-pixel, 8 template copies)")
    args = ap.parse_args()
    try:
        cfg, device, predictor, test = open_run(args.run, args.set)
    except (OSError, ValueError) as e:
        sys.exit(f"cycle_check.py: {e}")
    coarse = predictor.coarse_stage
    if not isinstance(coarse, ModelPredictor):
        sys.exit(f"{args.run}: a one-model run is needed (CC2D, multi, wide, C-Adapter)")
    model, grid, k_all = coarse.model.eval(), coarse.template.grid, len(coarse.landmark_indices)
    per_k = bool(model.n_landmarks)  # a C-Adapter embeds once per landmark
    landmarks = coarse.template.points_of(coarse.landmark_indices).to(device)  # (K, 2)

    def embed(images, keys=None):  # K x [S x (B, D, h, w)], one decoder pass per adapter
        taps = model.taps(images, keys)
        return [model.decoder(taps, k) for k in range(k_all)] if per_k else [model.decoder(taps)] * k_all

    answers = {r: np.zeros((len(test), k_all, 2)) for r in ("top", "cycle", "ratio")}
    changed = {"cycle": 0, "ratio": 0}
    t0 = time.perf_counter()
    with torch.no_grad():
        template = embed(coarse.template.image[None].to(device))
        match = coarse.matcher()
        for start in range(0, len(test), coarse.batch_size):
            rows = list(range(start, min(start + coarse.batch_size, len(test))))
            images, keys = test.images[rows].to(device), [test.keys[i] for i in rows]
            maps = match(images, keys)  # (S, B, K, G, G)
            top = cascade_argmax(maps, coarse.subpixel).cpu().double().numpy()  # (B, K, 2)
            prod = maps.prod(0)  # (B, K, G, G)
            peaks = (prod == F.max_pool2d(prod, 2 * NMS + 1, 1, NMS)) & (prod > 0)
            query = embed(images, keys)
            for k in range(k_all):
                for b, i in enumerate(rows):
                    best = (prod[b, k] * peaks[b, k]).flatten().topk(CANDIDATES)
                    keep = (best.values >= KEEP * best.values[0]) & (best.values > 0)
                    keep[0] = True  # a closed gate (product 0 everywhere): the top answer alone
                    idx, fwd = best.indices[keep], best.values[keep]
                    cand = torch.stack([idx % grid, idx // grid], 1).float()  # (n, 2), the top answer first
                    vecs = [F.normalize(sample_at(e[b:b + 1].expand(len(cand), -1, -1, -1), cand, grid), dim=1)
                            for e in query[k]]
                    back = similarity_maps(template[k], vecs, grid)[:, 0].prod(0)  # (n, G, G) over the template
                    flat = back.flatten(1).argmax(1)
                    miss = (torch.stack([flat % grid, flat // grid], 1).float() - landmarks[k]).norm(dim=1)
                    at_landmark = sample_at(back[:, None], landmarks[k].expand(len(cand), 2), grid)[:, 0]
                    ratio = at_landmark / back.flatten(1).amax(1).clamp(min=1e-12)
                    passing = (miss <= CYCLE_PX).nonzero().flatten()
                    picks = {"cycle": int(passing[0]) if miss[0] > CYCLE_PX and len(passing) else 0,
                             "ratio": int((fwd * ratio).argmax())}
                    answers["top"][i, k] = top[b, k]
                    for rule, c in picks.items():
                        if c == 0:
                            answers[rule][i, k] = top[b, k]
                            continue
                        xy = cand[c].long()
                        off = peak_offset(prod[b:b + 1, k:k + 1], xy[None, None])[0, 0] if coarse.subpixel else 0
                        answers[rule][i, k] = (cand[c] + off).cpu().double().numpy()
                        changed[rule] += 1
    comparison = compare_answers(answers, test, coarse.landmark_indices, cfg.eval.radii_mm)
    print(f"{args.run}: {len(test)} images, {time.perf_counter() - t0:.0f} s; answers changed: {changed}")
    print(comparison.summary())


if __name__ == "__main__":
    main()

"""Which pseudo-labels a shape check of the PLs would doubt, epoch by epoch, against the truth
(analysis only: the unlabelled images' labels are read to describe, never to choose).

    python benchmarks/pl_shape_flags.py runs/s25/cross10 --landmark gonion
    python benchmarks/pl_shape_flags.py runs/s23/seed10 --reach 3

RUN is a finished (or running) run folder of a PL method with its ``checkpoint.pt``. For every
epoch's PLs, a shape model is fitted to them (the one ``eval.shape_reach``'s check fits to a run's
answers, ``cc2dkit.analysis.pl_shape_flags``) and the PLs further than ``--reach`` spreads from
where the other PLs of their image put them are counted, beside how many PLs lie over 10 mm from
the truth and how many of those, and of the PLs within 4 mm, it flags: all landmarks, and each
``--landmark`` alone. Seconds (no network runs).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import pandas as pd

    from cc2dkit.analysis import pl_shape_flags
    from cc2dkit.methods import run_config
    from cc2dkit.methods.checkpoint import load_checkpoint
    from cc2dkit.methods.context import prepare_context
    from cc2dkit.training import PLState

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a PL method's run folder (with checkpoint.pt)")
    ap.add_argument("--reach", type=float, default=3.0, help="spreads beyond which a PL is flagged (default 3)")
    ap.add_argument("--landmark", action="append", default=[], help="a landmark (name or index) counted alone")
    args = ap.parse_args()
    try:
        cfg = run_config(args.run)
        state = load_checkpoint(Path(args.run))
        if state.get("pl_history") is None:
            raise ValueError(f"{args.run}: its checkpoint holds no PLs (a method without pseudo-labels?)")
        ctx = prepare_context(cfg.replace(num_threads=1), None, None, progress=False)
        names = [ctx.train.landmark_names[k] for k in ctx.landmarks]
        pl = PLState(state["pls"], ctx.unlabelled, ctx.landmarks, names)
        pl.history = list(state["pl_history"])
        reference = ctx.template.points[ctx.landmarks]
        parts = {"all": pl_shape_flags(pl, ctx.train, reference, args.reach)}
        for name in args.landmark:
            key = int(name) if name.isdigit() else name
            parts[str(name)] = pl_shape_flags(pl, ctx.train, reference, args.reach, landmarks=[key])
    except (ValueError, FileNotFoundError, KeyError) as err:
        sys.exit(f"pl_shape_flags: {err}")
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(f"{args.run}: PLs on {len(ctx.unlabelled)} images, reach {args.reach:g} spreads")
        print(pd.concat(parts, axis=1).to_string())


if __name__ == "__main__":
    main()

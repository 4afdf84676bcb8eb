"""The named configurations: ``smoke`` (tests, seconds), ``cpu`` (2 CPU cores), ``paper`` (a CUDA GPU)."""
from __future__ import annotations

from typing import Any

from .sections import (BackboneConfig, Config, DataConfig, EvalConfig, MethodConfig, NetConfig, RefineConfig,
                       TrainConfig, apply_overrides)


def _smoke() -> Config:
    return Config(
        name="smoke",
        data=DataConfig(source="phantom", grid=128, template="train_000", phantom_train=12,
                        phantom_test=6, phantom_landmarks=5, phantom_size=256),
        backbone=BackboneConfig(arch="vgg16", weights="none", cache_max_mb=512),
        net=NetConfig(embed_dim=32, decoder_widths=(64, 64, 32, 32, 16)),
        train=TrainConfig(epochs=3, batch_size=4, lr=1e-3, steps_per_epoch=3, amp="off"),  # exact float32 for tests
        device="cpu",
    )


def _cpu() -> Config:
    # The kit's best one-model recipe on 2 CPU cores (benchmarks/RESULTS.md, "The cpu preset with its
    # fine stage"): a C-Adapter C_A 4, PLs on 60 images, 16 epochs x 20 steps per stage with a cosine
    # LR, answers (the product's top centroid) against the template and 8 augmented copies of it, refined by a
    # fine network at 2x the grid (50 steps per epoch on 128-pixel windows), gated by the coarse
    # product, moving an answer at most 3 grid pixels. Without the fine stage (run E1):
    # --set refine.enabled=false. Shorter, ~30 min on an AVX2-only machine: --set train.epochs=4 (there
    # 31.7 min, 1.92 mm, seed 0, forty-sixth session; 25.3 min with eval.local_finest, forty-seventh; where
    # bf16 is native 5-6 min, 1.92 / 1.98 mm). eval.local_finest (a default on the CPU, not a preset choice):
    # the C-Adapter's finest decoder stages near each answer only, the same answers; Infer-PL 0.53x, inference
    # 0.82x the time.
    # Template poses (eval.pose_*) gained 0.02 mm for 0.12 s per image (1.06 s): left out (RESULTS, ninth session).
    # Both stages answer with the top centroid at half the peak (eval.centroid=0.5, no cost): 0.05 mm on
    # each of three models (two preset runs: 1.88, 1.87 mm; RESULTS, tenth session); --set eval.centroid=none
    # gives the argmax. On a CPU with native bf16 (AVX512-BF16 / AMX) both networks run in bfloat16 at
    # inference (eval.amp="auto"; the cosines in float32): 0.78 against 1.24 s per image, the same answers
    # (MRE within 0.01 mm on two runs; RESULTS, eleventh session); elsewhere float32. The training step too
    # (train.amp="auto"): two runs trained so answered 1.86 / 1.85 mm against their float32 twins' 1.88 / 1.87,
    # with 0.84x the training-step minutes, 51 min wall (RESULTS, twelfth session). The shape check
    # (eval.shape_reach=3: an answer over 3 spreads from where its nearest landmarks put it is re-picked
    # near there; fitted to the model's own answers on the unlabelled training images) on four preset
    # runs: -0.03 to -0.08 mm, 5-7 fewer errors over 10 mm (RESULTS, thirteenth session). Its prior
    # (eval.shape_prior=2: every other answer weighed by a Gaussian of 2 spreads around its expected
    # place) on five preset runs: -0.02 to -0.04 mm, SDR 4 mm +0.32 to +0.67 points, 93 -> 75 errors
    # over 10 mm in all (RESULTS, sixteenth session). Its spreads read across each landmark's slide
    # (shape.spreads) on two runs (the preset; the preset at grid 224), Test1 and training split:
    # SDR 4 mm +0.11 to +0.25 points, 75 -> 72 errors over 10 mm (RESULTS, nineteenth session).
    # The decoder's two finest stages trained only on the cells the loss reads (train.crop_below=4):
    # its rule passed on two seeds of 10-epoch runs (seeds 0 / 11: 1.81 / 1.79 mm against 1.85 / 1.81,
    # SDR 4 mm +0.63 / -0.28 points, errors over 10 mm 13 / 15 against 18 / 15) with the training stages
    # in 0.70x / 0.75x the time (RESULTS, "Crops of the finest decoder stages"). A stack of SLA / C-ATD
    # models cannot crop, so with it method.batched's default trains one model per step on CUDA too;
    # to stack there: --set train.crop_below=null.
    # Not the cap on the prior's spreads (eval.shape_prior_cap, an option): on five bf16 seeds' unlabelled
    # training split it took 90 -> 74 errors over 10 mm (thirty-ninth session), but its confirmation on
    # three fresh seeds' training split failed on SDR 2 mm (-0.59 points on average, bound 0.3; fortieth
    # session), and by that rule it left the preset in the forty-first.
    # 16 epochs, not 30 (the thirty-sixth session): on an AVX2-only 2-core machine (no native bf16) 30
    # take 3-4 h; 16 cropped epochs wrote model.pt in ~98-100 min idle and answered, on two seeds (11, 0),
    # 1.76 / 1.76 mm, SDR 2 mm 71.54 / 70.77%, SDR 4 mm 92.07 / 91.61%, 11 / 11 errors over 10 mm (their
    # 10-epoch runs: 1.79 / 1.81 mm, 15 / 13 errors; RESULTS, "The 120-minute run on this machine type").
    # Where bf16 is native (a Zen 5 with AVX512-BF16) the 16 epochs wrote model.pt in 17-18 min: seeds
    # 0 / 11 / 1 / 2 / 3, 1.75 / 1.78 / 1.74 / 1.80 / 1.72 mm, SDR 4 mm 92.21 / 92.00 / 92.63 / 91.51 / 92.46%,
    # 10 / 17 / 13 / 16 / 9 errors over 10 mm (RESULTS, thirty-seventh and thirty-eighth sessions); fresh
    # seeds 4 / 5 / 6 / 7 / 8 (model.pt in 17.4-19.5 min idle, seed 6 busy): 1.72 / 1.81 / 1.76 / 1.79 /
    # 1.77 mm, SDR 2 mm 72.28 / 70.28 / 71.40 / 70.42 / 71.47%, SDR 4 mm 92.53 / 91.16 / 91.86 / 91.40 /
    # 92.39%, 11 / 16 / 14 / 13 / 15 errors over 10 mm (thirty-ninth and fortieth sessions, read without
    # the cap as the preset now reads).
    # Not C_A 16 (the paper's) nor a loss temperature of 5 or 20: each failed its rule on two seeds' unlabelled
    # training images (C_A 16 SDR 2 mm +1.91 / -2.40 points; T = 20 took gonion's misses 10 -> 3 on one seed but
    # SDR 2 mm -3.71 on the other; RESULTS, forty-second session).
    # Not LR 6e-4 nor a patch rotation of 10 or 30 degrees (forty-third session, training images): LR 6e-4 SDR 4 mm
    # -0.75 points on seed 11; rotation 30 took the errors over 10 mm 56 -> 42 over three seeds but SDR 2 mm -0.85.
    # Not 128-px patches (train.patch_frac=0.67; forty-fifth session): errors over 10 mm 18 -> 20 / 19 -> 19 on
    # seeds 0 / 11's training images, SDR 4 mm -0.71 points on seed 11.
    # An older bf16 machine took 43-66 min for 30 uncropped epochs (1.73-1.80 mm):
    # --set train.epochs=30 --set train.crop_below=null.
    return Config(
        name="cpu",
        data=DataConfig(source="isbi", grid=192, template="125"),
        backbone=BackboneConfig(arch="vgg16", weights="env",
                                cache_max_mb=4096),
        net=NetConfig(embed_dim=64, decoder_widths=(256, 128, 128, 64, 64)),
        train=TrainConfig(epochs=16, batch_size=8, lr=3e-4, steps_per_epoch=20, lr_schedule="cosine", amp="auto",
                          crop_below=4),
        eval=EvalConfig(subpixel=True, template_copies=8, centroid=0.5, amp="auto", shape_reach=3.0, shape_prior=2.0,
                        track_every=3, track_images=10),
        method=MethodConfig(name="adapter", adapter_channels=4, pl_images=60),
        refine=RefineConfig(enabled=True, scale=2, crop=128, steps_per_epoch=50, max_move=3.0),
        device="cpu",
    )


def _paper() -> Config:
    return Config(
        name="paper",
        data=DataConfig(source="isbi", grid=384, template="125"),
        backbone=BackboneConfig(arch="vgg19", weights="imagenet", cache_max_mb=8192),
        net=NetConfig(embed_dim=64, decoder_widths=(256, 256, 128, 64, 64)),
        train=TrainConfig(epochs=300, batch_size=8, lr=1e-4),
        device="auto",
    )


PRESETS = {"smoke": _smoke, "cpu": _cpu, "paper": _paper}


def preset(name: str, **overrides: Any) -> Config:
    """A named preset, optionally with dotted overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    return apply_overrides(cfg, overrides) if overrides else cfg

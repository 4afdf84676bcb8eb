"""A finished run applied to new images: a folder of your own, another template, no retraining.

:func:`load_run` reads a finished run back with its test split; :func:`open_run` does it the way
a script does (the run's config with ``--set`` overrides, the runtime set up from it);
:func:`user_template` reads one annotated image (the image file and a landmark CSV naming it, the
folder format);
:func:`predict_folder` predicts every image of a folder with a run's model(s),
matched against the run's own template or the given one. Images may have any size: each answer
is mapped back to its own image's pixels. :func:`with_fine_stage` refines any run's answers with
the fine stage another run trained (one fine network serves every method).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import Config, RefineConfig, apply_overrides, parse_sets
from ..data import ImageFolder, build_datasets, read_grayscale
from ..data.folder import read_image_rows
from ..data.grid import GridImages
from ..inference import Predictor, RefinedPredictor, Template
from ..runtime import setup
from .context import unlabelled_rows
from .runfolder import load_predictor, run_config


def user_template(image: str | Path, csv: str | Path, grid: int) -> Template:
    """The template of one image file and the landmark rows a CSV gives it (the folder format)."""
    image = Path(image)
    rows = read_image_rows(csv, image.name)
    if not rows:
        raise ValueError(f"{csv} has no landmark rows for {image.name!r} (expected rows image,landmark,x,y)")
    return Template.from_image(read_grayscale(image), np.array(list(rows.values())), list(rows), grid)


def load_run(run_dir: str | Path, device: torch.device | str = "cpu", cfg: Config | None = None,
             progress: bool = False, fine_from: str | Path | None = None, split: str = "test",
             refined: bool = False) -> tuple[Predictor, GridImages]:
    """A finished run's predictor and its test split at the model grid (``cfg``: the run's config
    with inference or path changes; None: the run's own). The predictor is matched against the
    run's template read from its data, with the template's original image, which template copies
    and the fine stage need (model files of older versions lack it); refined by the fine stage of
    the run ``fine_from``, if given (:func:`with_fine_stage`). ``split="train"``: the unlabelled
    training images instead (every one but the template's; what a shape check is fitted to).
    ``refined``: a ValueError unless the predictor has a fine stage (its own or ``fine_from``'s)."""
    check_split(split)  # before the model and the images are read
    cfg = run_config(run_dir) if cfg is None else cfg
    predictor = load_predictor(run_dir, device, cfg, progress=progress)
    train_set, test_set = build_datasets(cfg.data, cfg.seed)
    template = Template.from_dataset(train_set, cfg.data.template, cfg.data.grid)
    predictor = predictor.with_template(template)
    if fine_from is not None:
        predictor = with_fine_stage(predictor, fine_from, device, cfg.refine)
    if refined and not isinstance(predictor, RefinedPredictor):
        raise ValueError(f"{run_dir}: its model has no fine stage (a run trained with refine.enabled=true has one; "
                         "--fine-from RUN takes another run's where a benchmark offers it)")
    return predictor, split_images(cfg, train_set, test_set, split, progress)


def run_settings(run_dir: str | Path, sets: list[str] | tuple[str, ...] = (), defaults: dict | None = None,
                 fixed: dict | None = None) -> Config:
    """A run's config as a script reads it: its config.json, then the script's ``defaults``, then
    the user's ``--set KEY=VALUE`` strings ``sets``, then what the script ``fixed`` (a value the
    script varies itself). A missing run folder or a bad key or value: one OSError / ValueError line."""
    return apply_overrides(run_config(run_dir), {**(defaults or {}), **parse_sets(list(sets)), **(fixed or {})})


def open_run(run_dir: str | Path, sets: list[str] | tuple[str, ...] = (), defaults: dict | None = None,
             fixed: dict | None = None, **load) -> tuple[Config, torch.device, Predictor, GridImages]:
    """What a benchmark script opens: the config of :func:`run_settings`, the runtime set up from it
    (seed, threads, device), and the run's predictor with a split (:func:`load_run`'s keywords
    ``load``). Every user error (no such run, a bad ``--set``, a split, a missing fine stage) is an
    OSError or ValueError naming it, raised before any long work, for the script's one-line exit."""
    cfg = run_settings(run_dir, sets, defaults, fixed)
    device, _ = setup(cfg)
    predictor, data = load_run(run_dir, device, cfg, **load)
    return cfg, device, predictor, data


def check_split(split: str) -> None:
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train' (the unlabelled training images), got {split!r}")


def split_images(cfg: Config, train_set, test_set, split: str, progress: bool = False) -> GridImages:
    """A split at the config's grid: ``"test"``, or ``"train"``: the unlabelled training images (every
    one but the template's, whose landmarks were given; what a shape check is fitted to)."""
    check_split(split)
    if split == "test":
        return GridImages(test_set, cfg.data.grid, "test", progress)
    train = GridImages(train_set, cfg.data.grid, "train", progress)
    return train.subset(unlabelled_rows(train, cfg.data.template))


def predict_folder(run_dir: str | Path, images: str | Path, template: Template | None = None,
                   device: torch.device | str = "cpu", cfg: Config | None = None, progress: bool = True,
                   fine_from: str | Path | None = None) -> tuple[GridImages, np.ndarray, Predictor]:
    """Predict every image of the folder ``images`` with the run ``run_dir`` (refined by the fine
    stage of the run ``fine_from``, if given: :func:`with_fine_stage`).

    Returns the images (unlabelled GridImages), the predictions (N, K, 2) in each image's own
    pixels (landmarks in ``predictor.landmark_names`` order) and the predictor used.
    """
    predictor = load_predictor(run_dir, device, cfg)
    if template is not None:
        predictor = predictor.with_template(template)
    if fine_from is not None:
        predictor = with_fine_stage(predictor, fine_from, device, None if cfg is None else cfg.refine)
    data = GridImages(ImageFolder(images, predictor.landmark_names), predictor.template.grid, "new", progress)
    return data, data.to_original(predictor.predict_grid(data, progress=progress)), predictor


def with_fine_stage(predictor: Predictor, fine_run: str | Path, device: torch.device | str = "cpu",
                    refine: RefineConfig | None = None) -> RefinedPredictor:
    """``predictor``'s coarse stage refined by the fine stage that the run ``fine_run`` trained
    (``refine.enabled=true``). The fine network is one plain CC2D trained on image windows without
    landmarks or pseudo-labels, so one trained fine stage serves any method's model at the same grid
    (e.g. one fine network for every row of a comparison). ``refine``: the inference settings
    (``coarse_gate``, ``max_move``, ``whole_image``, ``template_copies``, ``back_check``; None: the fine run's);
    scale and crop are the fine run's, since its network was trained at them. The fine template is cut from
    ``predictor``'s own template image."""
    fine_run = Path(fine_run)
    donor = load_predictor(fine_run, device)
    if not isinstance(donor, RefinedPredictor):
        raise ValueError(f"{fine_run}: its model has no fine stage (a run trained with refine.enabled=true has one)")
    if donor.template.grid != predictor.template.grid:
        raise ValueError(f"{fine_run}: its fine stage was trained at {donor.scale} x grid {donor.template.grid}; "
                         f"this model's grid is {predictor.template.grid}")
    if predictor.template.original is None:
        raise ValueError("a fine stage needs the template's own image, which this model file lacks (an older "
                         "cc2dkit): give the template again (--template, or Predictor.with_template)")
    settings = {} if refine is None else RefinedPredictor.settings_of(refine)
    return donor.variant(coarse=predictor.coarse_stage, **settings).with_template(predictor.template)


def evaluate_predictor(predictor: Predictor, data: GridImages, rows: list[int] | None = None,
                       radii=(2.0, 2.5, 3.0, 4.0)):
    """The per-landmark table of ``predictor`` on ``data``'s labelled ``rows`` (default: all), e.g. to
    compare templates. The predictor's landmarks are matched to ``data``'s by name (by index for a
    model file without names)."""
    from .runfolder import evaluation

    sub = data if rows is None else data.subset(rows)
    names = [n.lower() for n in data.landmark_names]
    if predictor.template.names:
        missing = [n for n in predictor.landmark_names if n.lower() not in names]
        if missing:
            raise ValueError(f"the images have no ground truth for landmark(s) {missing}; they have {data.landmark_names}")
        cols = [names.index(n.lower()) for n in predictor.landmark_names]
    else:  # a model file from before names were stored: its landmark indices are the data's
        cols = list(predictor.landmark_indices)
    return evaluation(sub, sub.to_original(predictor.predict_grid(sub), cols), cols, radii)[1]

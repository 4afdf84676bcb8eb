"""The fine stage: windows cut at the fine grid around coarse answers, matched, mapped back."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from cc2dkit.data.base import LandmarkDataset, Sample
from cc2dkit.data.grid import GridImages
from cc2dkit.inference import ModelSetPredictor, Predictor, RefinedPredictor, Template
from cc2dkit.analysis import PredictorComparison, compare_answers, compare_predictors
from cc2dkit.inference.cascade import cascade_argmax
from cc2dkit.inference.refine import crop_origins, cut, keep_coarse, refinement_variants, window_gate
from cc2dkit.methods import load_predictor, run_method, with_fine_stage
from cc2dkit.methods.runfolder import trained_networks
from cc2dkit.widgets import refinement_explorer
from cc2dkit.widgets.refinement import PeakView

from .conftest import intensity_network, phantom_grids, tiny_cfg

GRID, SCALE, CROP = 32, 4, 64  # fine grid 128
DOTS = np.array([[40.0, 30.0], [90.0, 100.0], [20.0, 110.0]])  # original pixels of a 130 x 120 image


class Dots(LandmarkDataset):
    """Images (H 120 x W 130) with a small bright blob at each landmark, shifted per image."""

    def __init__(self, shifts):
        self.ids = [str(i) for i in range(len(shifts))]
        self.landmark_names = ("a", "b", "c")
        self.spacing_mm = 0.1
        self.shifts = np.asarray(shifts, dtype=np.float64)

    def _load(self, i):
        pts = DOTS + self.shifts[i]
        ys, xs = np.mgrid[0:120, 0:130]
        img = sum(np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8.0) for x, y in pts)
        return Sample(self.ids[i], img.astype(np.float32), pts, self.spacing_mm)


class Fixed(Predictor):
    """A coarse stage that answers given grid points."""

    def __init__(self, template, points):
        super().__init__(template, [0, 1, 2], "cpu", 2)
        self.points = points

    strides = (32, 16, 8, 4, 2)

    def pose_matcher(self):
        raise NotImplementedError

    def embedder(self):
        raise NotImplementedError

    def predict_grid(self, data, rows=None, progress=False):
        return self.points[list(rows) if rows is not None else slice(None)]


def test_crop_origins_stay_inside_the_grid():
    pts = torch.tensor([[0.0, 127.0], [64.0, 64.0], [100.4, 3.6]])
    assert crop_origins(pts, 64, 128).tolist() == [[0, 64], [32, 32], [64, 0]]
    assert cut(torch.zeros(1, 128, 128), crop_origins(pts, 64, 128), 64).shape == (3, 1, 64, 64)


def test_refinement_finds_the_dots_from_rough_coarse_answers():
    data = GridImages(Dots([(0, 0), (6.3, -4.6), (-3.2, 5.1)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    truth = data.landmarks[1:]  # grid points of images 1, 2
    rough = truth + np.array([[[2.0, -1.5], [-2.5, 2.0], [1.0, 3.0]]])  # 2-3 grid px off (8-12 fine px)
    coarse = Fixed(template, np.concatenate([data.landmarks[:1], rough]))  # row i: image i
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    refined = RefinedPredictor(coarse, intensity_network(), fine_template, SCALE, CROP)
    refined.subpixel = True
    got = refined.predict_grid(data, [1, 2])
    assert np.abs(rough - truth).max() >= 2.0
    assert np.abs(got - truth).max() < 0.15, np.abs(got - truth).max()  # < 0.6 fine px
    whole = refined.variant(whole_image=True)  # one embedding of the whole fine image: the same dots
    whole.subpixel = True
    assert np.abs(whole.predict_grid(data, [1, 2]) - truth).max() < 0.15
    assert whole.with_template(template).whole_image and not whole.variant(whole_image=False).whole_image
    with pytest.raises(ValueError, match="original image"):
        refined.with_template(Template(template.image, template.points))
    assert refined.with_template(template).template_fine.shape == (1, GRID * SCALE, GRID * SCALE)


def test_refined_runs_save_load_and_resume(tmp_path):
    cfg = tiny_cfg(**{"train.epochs": 2, "method.name": "multi", "refine.enabled": True, "refine.scale": 2,
                      "refine.crop": 64, "refine.steps_per_epoch": 2, "eval.subpixel": True})
    data = phantom_grids(cfg)
    full = run_method(cfg, tmp_path / "full", data, progress=False)
    assert isinstance(full.predictor, RefinedPredictor) and full.metrics["loss_fine"].notna().all()
    coarse = full.predictor.coarse
    assert full.predictor.coarse_stage is coarse and coarse.coarse_stage is coarse  # a plain one is its own
    loaded = load_predictor(tmp_path / "full")
    assert isinstance(loaded, RefinedPredictor)
    assert np.array_equal(loaded.predict(data[1]), full.predictions, equal_nan=True)
    assert not np.array_equal(full.predictions, full.predictor.coarse.predict(data[1]), equal_nan=True)
    run_method(cfg.replace(**{"train.epochs": 1}), tmp_path / "cut", data, progress=False)
    resumed = run_method(cfg, tmp_path / "cut", data, progress=False, resume=True)
    np.testing.assert_allclose(resumed.metrics["loss_fine"], full.metrics["loss_fine"], rtol=1e-4)
    with pytest.raises(ValueError, match="refine.enabled: True -> False"):  # the checkpoint has a fine stage
        run_method(cfg.replace(**{"refine.enabled": False}), tmp_path / "cut", data, progress=False, resume=True)


@pytest.mark.parametrize("method", ["multi", "sla"])
def test_trained_networks_of_a_run_with_and_without_a_fine_stage(method):
    cfg = tiny_cfg(**{"train.epochs": 1, "method.name": method, "refine.enabled": True, "refine.scale": 2,
                      "refine.crop": 64, "refine.steps_per_epoch": 1})
    refined = run_method(cfg, None, phantom_grids(cfg), progress=False).predictor
    assert isinstance(refined, RefinedPredictor)
    models, fine = trained_networks(refined)
    assert fine is refined.fine and len(models) == (1 if method == "multi" else len(refined.landmark_indices))
    assert all(m is not fine for m in models)
    assert trained_networks(refined.coarse) == (models, None)  # no fine stage: None


def test_a_run_of_single_landmark_models_trains_and_answers_with_a_fine_stage():
    cfg = tiny_cfg(**{"train.epochs": 1, "method.name": "sla", "refine.enabled": True, "refine.scale": 2,
                      "refine.crop": 64, "refine.steps_per_epoch": 2})
    data = phantom_grids(cfg)
    result = run_method(cfg, None, data, progress=False)
    assert isinstance(result.predictor, RefinedPredictor) and isinstance(result.predictor.coarse, ModelSetPredictor)
    assert result.metrics["loss_fine"].notna().all() and np.isfinite(result.predictions).all()
    assert not np.array_equal(result.predictions, result.predictor.coarse.predict(data[1]))


def test_another_runs_fine_stage_refines_any_model(tmp_path):
    fine_cfg = tiny_cfg(**{"train.epochs": 1, "method.name": "multi", "refine.enabled": True, "refine.scale": 2,
                           "refine.crop": 64, "refine.steps_per_epoch": 2, "refine.max_move": 3.0,
                           "refine.template_copies": True})
    data = phantom_grids(fine_cfg)
    donor = run_method(fine_cfg, tmp_path / "donor", data, progress=False)
    other = run_method(tiny_cfg(**{"train.epochs": 1, "method.name": "sla"}), tmp_path / "sla", data, progress=False)
    # a model with its own run's fine stage answers as that run did
    own = with_fine_stage(load_predictor(tmp_path / "donor"), tmp_path / "donor")
    assert own.max_move == 3.0 and own.fine_copies
    assert np.array_equal(own.predict(data[1]), donor.predictions, equal_nan=True)
    # another method's model keeps its coarse stage and takes the donor's fine network
    settings = dataclasses.replace(fine_cfg.refine, max_move=None, template_copies=False)
    refined = with_fine_stage(other.predictor, tmp_path / "donor", refine=settings)
    assert isinstance(refined.coarse, ModelSetPredictor) and refined.max_move is None and not refined.fine_copies
    assert refined.scale == 2 and refined.crop == 64
    for a, b in zip(refined.fine.state_dict().values(), donor.predictor.fine.state_dict().values()):
        assert torch.equal(a, b)
    coarse, fine = other.predictor.predict(data[1]), refined.predict(data[1])
    assert np.isfinite(fine).all() and not np.array_equal(coarse, fine)
    with pytest.raises(ValueError, match="sla: its model has no fine stage"):
        with_fine_stage(other.predictor, tmp_path / "sla")
    template = other.predictor.template
    at_96 = Template.from_image(template.original, np.zeros((len(template.names), 2)), template.names, 96)
    with pytest.raises(ValueError, match="trained at 2 x grid 64; this model's grid is 96"):
        with_fine_stage(other.predictor.with_template(at_96), tmp_path / "donor")
    no_image = Template(template.image, template.points, None, template.names)  # a model file of an older kit
    with pytest.raises(ValueError, match="needs the template's own image"):
        with_fine_stage(other.predictor.with_template(no_image), tmp_path / "donor")


def test_window_gate_samples_the_coarse_product_inside_each_window():
    g, scale, crop = 16, 4, 32
    ys, xs = np.mgrid[0:g, 0:g]
    peak = (5.0, 9.0)  # grid (x, y)
    product = torch.tensor(np.exp(-((xs - peak[0]) ** 2 + (ys - peak[1]) ** 2) / 4.0), dtype=torch.float32)[None]
    fine_point = torch.tensor([[(peak[0] + 0.5) * scale - 0.5, (peak[1] + 0.5) * scale - 0.5]])
    origins = crop_origins(fine_point, crop, g * scale)
    gate = window_gate(product * 0.3, origins, crop, g * scale)  # any scale of the product: peak 1
    assert gate.shape == (1, crop, crop) and 0.9 < float(gate.max()) <= 1  # pixels miss the node by 1/8
    y, x = divmod(int(gate[0].argmax()), crop)
    assert abs(x + origins[0, 0].item() - fine_point[0, 0].item()) <= 2  # within half a grid pixel
    assert abs(y + origins[0, 1].item() - fine_point[0, 1].item()) <= 2
    torch.testing.assert_close(window_gate(product * 1e-33, origins, crop, g * scale), gate)  # a weak model's
    closed = window_gate(torch.zeros(1, g, g), origins, crop, g * scale)  # no basin: a flat gate
    torch.testing.assert_close(closed, torch.full_like(closed, float(closed[0, 0, 0])))


class Bumps(Fixed):
    """A coarse stage whose maps are one bump per landmark at ``peaks`` (grid px) on every image."""

    def __init__(self, template, peaks, n_images: int = 2):
        self.peaks = np.asarray(peaks, dtype=np.float64)
        super().__init__(template, np.repeat(self.peaks[None], n_images, axis=0))

    def pose_matcher(self):
        ys, xs = np.mgrid[0:GRID, 0:GRID]
        bumps = np.stack([np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 6.0) for x, y in self.peaks])  # (K, G, G)
        maps = torch.tensor(bumps, dtype=torch.float32)[None]  # (1, K, G, G): one scale at the grid
        return lambda images, keys: [[maps.expand(len(images), -1, -1, -1)]]  # one pose


def test_coarse_gate_keeps_the_fine_answer_in_the_coarse_basin():
    data = GridImages(Dots([(0, 0), (3.0, -2.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    peaks = [[12.0, 9.0], [20.0, 21.0], [6.0, 25.0]]
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    flat = intensity_network()
    flat.forward = lambda images, keys=None, landmark_ids=None: [torch.ones(len(images), 4, *images.shape[-2:])] * 5
    loose = RefinedPredictor(Bumps(template, peaks), flat, fine_template, SCALE, CROP)
    gated = RefinedPredictor(Bumps(template, peaks), flat, fine_template, SCALE, CROP, coarse_gate=True)
    # a fine network without information: alone it answers its window's first pixel, gated the coarse peak
    assert np.abs(loose.predict_grid(data, [1]) - peaks).max() > 3
    np.testing.assert_allclose(gated.predict_grid(data, [1])[0], peaks, atol=0.5)
    assert gated.with_template(template).coarse_gate


def test_refinement_variants_of_a_coarse_and_of_a_refined_predictor():
    data = GridImages(Dots([(0, 0), (3.0, -2.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    coarse = Bumps(template, data.landmarks[1])
    plain = refinement_variants(coarse, copies=4)
    assert list(plain) == ["grid argmax", "sub-pixel", "sub-pixel + 4 template copies",
                           "sub-pixel + 4 template copies, top centroid 0.5"]
    assert [(p.subpixel, p.template_copies, p.centroid) for p in plain.values()] == [
        (False, 0, None), (True, 0, None), (True, 4, None), (True, 4, 0.5)]
    assert list(refinement_variants(coarse, copies=0, centroid=0.3)) == ["grid argmax", "sub-pixel",
                                                                        "sub-pixel, top centroid 0.3"]
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    refined = RefinedPredictor(coarse.configured(False, 0), intensity_network(), fine_template, SCALE, CROP)
    variants = refinement_variants(refined, copies=4)
    assert list(variants)[3:] == ["fine stage", "fine stage, coarse gate", "fine stage, coarse gate, top centroid 0.5"]
    assert [v.coarse_gate for v in list(variants.values())[3:]] == [False, True, True]
    assert all(v.coarse.subpixel and v.fine is refined.fine for v in list(variants.values())[3:])
    assert [(v.coarse.centroid, v.centroid) for v in list(variants.values())[3:]] == [(None, None)] * 2 + [(0.5, 0.5)]
    with pytest.raises(ValueError, match="template_copies"):
        coarse.configured(True, -1)


def test_compare_predictors_scores_each_and_the_explorer_follows_the_picker():
    data = GridImages(Dots([(0, 0), (3.0, -2.0), (-2.0, 4.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    exact, off = Bumps(template, data.landmarks[1], 3), Bumps(template, data.landmarks[1], 3)
    exact.points, off.points = data.landmarks.copy(), data.landmarks + np.array([1.0, 0.0])  # one grid px in x
    comparison = compare_predictors({"exact": exact, "off": off}, data)
    mm_per_grid_x = 130 / GRID * 0.1  # the Dots images are 130 px wide, 0.1 mm per px
    np.testing.assert_allclose(comparison.errors["exact"], 0, atol=1e-9)
    np.testing.assert_allclose(comparison.errors["off"], mm_per_grid_x, rtol=1e-6)
    assert comparison.table.loc["off", "MRE_mm"] == pytest.approx(mm_per_grid_x)
    assert comparison.table.loc["exact", "SDR_2.0mm"] == 100 and comparison.table.loc["off", "> 10"] == 0
    assert comparison.landmark_names == ["a", "b", "c"] and comparison.unit == "mm"
    other = Bumps(template, data.landmarks[1], 3)
    other.landmark_indices = [0, 1]
    with pytest.raises(ValueError, match="predicts landmarks"):
        compare_predictors({"exact": exact, "two": other}, data)
    maps = {label: p.image_maps(data, 1) for label, p in {"exact": exact, "off": off}.items()}
    explorer = refinement_explorer(comparison, maps, 1, "1", start="b")
    assert explorer.peaks.updates == 1 and explorer.histograms.updates == 1
    explorer.picker.select("c")
    assert explorer.peaks.updates == 2 and explorer.histograms.updates == 2
    off_mark = explorer.peaks.marks[0][1]  # panel 0, the marker of "off"
    np.testing.assert_allclose([off_mark.get_xdata()[0], off_mark.get_ydata()[0]], off.points[1, 2])
    legend = [t.get_text() for t in explorer.histograms.ax.get_legend().get_texts()]
    assert legend[1].startswith(f"off: mean {mm_per_grid_x:.2f}")
    with pytest.raises(IndexError):
        refinement_explorer(comparison, maps, 5)
    many = {f"variant {j}": maps["exact"] for j in range(6)}  # more predictors than fit one row
    view = PeakView(many, {label: off.points[1] for label in many}, comparison.landmark_names)
    shown = [ax for ax in view.figure.axes if ax.axison and ax.images]
    assert len(view.axes) == 6 and len(shown) == 6
    assert {round(ax.get_position().width, 3) for ax in view.axes} == {round(view.axes[0].get_position().width, 3)}
    assert len({round(ax.get_position().y0, 2) for ax in view.axes}) == 2  # two rows of panels


def test_max_move_keeps_the_fine_answer_near_the_coarse_one():
    data = GridImages(Dots([(0, 0), (3.0, -2.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    peaks = np.array([[12.0, 9.0], [20.0, 21.0], [6.0, 25.0]])
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    flat = intensity_network()
    flat.forward = lambda images, keys=None, landmark_ids=None: [torch.ones(len(images), 4, *images.shape[-2:])] * 5
    free = RefinedPredictor(Bumps(template, peaks), flat, fine_template, SCALE, CROP)
    capped = free.variant(max_move=2.0)
    # uninformative fine maps: free, the window's first pixel wins (far); capped, the first pixel of the disk
    far = np.linalg.norm(free.predict_grid(data, [1])[0] - peaks, axis=1)
    near = np.linalg.norm(capped.predict_grid(data, [1])[0] - peaks, axis=1)
    assert far.min() > 3 and near.max() <= 2.0 + 1e-6
    assert capped.with_template(template).max_move == 2.0 and capped.variant(max_move=None).max_move is None
    with pytest.raises(ValueError, match="max_move=0"):
        free.variant(max_move=0)
    # the mask also bounds a closed product (0 everywhere allowed): the floored product inside the disk
    maps = torch.zeros(2, 1, 1, 8, 8)
    maps[:, 0, 0, 0, 0] = 1.0  # the only open location lies outside
    allowed = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    allowed[..., 5:7, 5:7] = True
    xy = cascade_argmax(maps, allowed=allowed)[0, 0]
    assert 5 <= xy[0] <= 6 and 5 <= xy[1] <= 6
    assert cascade_argmax(maps)[0, 0].tolist() == [0.0, 0.0]


def test_refinement_variants_add_the_capped_fine_stage():
    data = GridImages(Dots([(0, 0), (3.0, -2.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    refined = RefinedPredictor(Bumps(template, data.landmarks[1]), intensity_network(), fine_template, SCALE, CROP,
                               coarse_gate=True, max_move=3)
    variants = refinement_variants(refined, copies=0)
    assert list(variants)[2:] == ["fine stage", "fine stage, coarse gate",
                                  "fine stage, coarse gate, moves <= 3 grid px",
                                  "fine stage, coarse gate, moves <= 3 grid px, top centroid 0.5"]
    assert [v.max_move for v in list(variants.values())[2:]] == [None, None, 3, 3]


def test_predict_grid_moves_matches_each_capped_predictor_and_compare_answers_its_table():
    data = GridImages(Dots([(0, 0), (3.0, -2.0), (-2.0, 4.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    start = data.landmarks + np.array([2.0, -1.5])  # a coarse stage off by 2.5 grid px
    coarse = Bumps(template, start[1], 3)
    coarse.points = start
    refined = RefinedPredictor(coarse, intensity_network(), fine_template, SCALE, CROP, coarse_gate=False)
    answers = refined.predict_grid_moves(data, [1.0, None])
    np.testing.assert_allclose(answers[0], start)
    for m in (1.0, None):
        np.testing.assert_allclose(answers[m], refined.variant(max_move=m).predict_grid(data), atol=1e-9)
    moved = np.linalg.norm(answers[1.0] - start, axis=-1)
    assert moved.max() <= 1.0 + 1e-6 and moved.min() > 0.5  # the cap binds: the fine stage wants to move 2.5
    table = compare_answers({"coarse": answers[0], "fine": answers[None]}, data, [0, 1, 2]).table
    assert table.loc["fine", "MRE_mm"] < table.loc["coarse", "MRE_mm"]
    by_predictor = compare_predictors({"fine": refined}, data).table
    assert by_predictor.loc["fine", "MRE_mm"] == pytest.approx(table.loc["fine", "MRE_mm"])


class Ridges(Fixed):
    """A coarse stage whose maps are one flat ridge per landmark, x from ``starts`` to 6 px further,
    highest at its start (its argmax) with its middle 3 px further."""

    def __init__(self, template, starts):
        super().__init__(template, None)
        self.starts = np.asarray(starts, dtype=np.float64)

    def pose_matcher(self):
        maps = torch.full((1, len(self.starts), GRID, GRID), 0.05)
        for k, (x, y) in enumerate(self.starts.astype(int)):
            maps[0, k, y, x:x + 7] = 0.9
            maps[0, k, y, x] = 0.91
        return lambda images, keys: [[maps.expand(len(images), -1, -1, -1)]]


def test_both_stages_answer_with_the_top_centroid_when_configured():
    data = GridImages(Dots([(0, 0), (3.0, -2.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    starts = [[8.0, 9.0], [20.0, 21.0], [6.0, 25.0]]
    flat = intensity_network()  # a fine network without information: the gate (the coarse ridge) decides
    flat.forward = lambda images, keys=None, landmark_ids=None: [torch.ones(len(images), 4, *images.shape[-2:])] * 5
    for centroid, shift in ((None, 0.0), (0.5, 3.0)):
        coarse = Ridges(template, starts).configured(False, 0, centroid=centroid)
        refined = RefinedPredictor(coarse, flat, fine_template, SCALE, CROP, coarse_gate=True)
        assert refined.centroid == centroid
        got = refined.predict_grid_moves(data, [None])  # [0]: the coarse answers the windows are cut around
        expected = np.asarray(starts)[None].repeat(2, 0) + [shift, 0.0]
        np.testing.assert_allclose(got[0], expected, atol=0.05)
        np.testing.assert_allclose(got[None], expected, atol=0.3)  # the fine answer reads its maps the same way


def test_the_fine_network_runs_in_bf16_when_the_coarse_stage_does():
    data = GridImages(Dots([(0, 0), (3.0, -2.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    fine, seen = intensity_network(), []
    forward = fine.forward

    def recording(images, keys=None, landmark_ids=None):
        seen.append(torch.is_autocast_enabled("cpu"))
        return forward(images, keys, landmark_ids)

    fine.forward = recording
    starts = np.array([[[9.0, 8.0], [22.0, 25.0], [5.0, 27.0]]] * 2)
    for bf16, whole in ((False, False), (True, False), (True, True)):
        seen.clear()
        coarse = Fixed(template, starts).configured(False, 0, bf16=bf16)
        refined = RefinedPredictor(coarse, fine, fine_template, SCALE, CROP, whole_image=whole)
        assert refined.bf16 == bf16 and refined.predict_grid(data).shape == (2, 3, 2)
        assert seen == [bf16] * 3  # the template's windows, then each image's
        both = refined.configured(True, 0, centroid=0.5, bf16=not bf16)  # both stages take the settings
        assert both.bf16 == both.coarse_stage.bf16 == (not bf16) and both.coarse_stage.centroid == both.centroid == 0.5
    copies = RefinedPredictor(Fixed(template, starts).configured(True, 3, [(1.0, 0.0), (1.1, 0.0)]), fine,
                              fine_template, SCALE, CROP)
    assert (copies.template_copies, copies.poses) == (3, ((1.0, 0.0), (1.1, 0.0)))  # read off the coarse stage


def test_fine_copies_average_the_fine_vectors_over_the_coarse_stages_template_copies():
    data = GridImages(Dots([(0, 0), (3.0, -2.0), (-2.0, 4.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    coarse = Fixed(template, data.landmarks + 0.7).configured(True, 3)
    alone = RefinedPredictor(coarse, intensity_network(), fine_template, SCALE, CROP)
    copied = alone.variant(fine_copies=True)
    assert copied.fine_copies and copied.with_template(template).fine_copies and not alone.fine_copies
    images, points = copied.fine_views()
    assert images.shape == (4, 1, GRID * SCALE, GRID * SCALE) and points.shape == (4, 3, 2)
    assert torch.equal(images[0], fine_template) and alone.fine_views()[0].shape[0] == 1
    # the copies moved as the coarse stage's copies are (the same random moves), at the fine grid
    coarse_copies = torch.stack([c.points_of([0, 1, 2]) for c in template.augmented(3)])
    assert torch.allclose(points[1:], copied.to_fine(coarse_copies.numpy()), atol=1e-3)
    assert (points[1:] - points[:1]).abs().max() > 1.0  # they did move
    for image, pts in zip(images, points):  # each copy's dots where its landmarks say
        xy = pts.round().long()
        assert (image[0, xy[:, 1], xy[:, 0]] > 0.8 * image.max()).all()
    assert copied.configured(True, 0).fine_views()[0].shape[0] == 1  # no copies configured: the template alone
    truth = data.landmarks[1:]
    for whole in (False, True):
        a, c = alone.variant(whole_image=whole), copied.variant(whole_image=whole)
        va, vc = a.fine_vectors(), c.fine_vectors()
        assert [v.shape for v in va] == [v.shape for v in vc] and not torch.allclose(va[-1], vc[-1])
        assert torch.allclose(vc[-1].norm(dim=1), torch.ones(3))
        assert np.abs(c.predict_grid(data, [1, 2]) - truth).max() < 0.3


def test_comparison_per_landmark_means_counts_and_summary():
    errors = {"a": np.array([[1.0, 12.0], [3.0, 2.0]]), "b": np.array([[11.0, 10.0], [15.0, 2.0]])}
    table = pd.DataFrame({"MRE_mm": [4.5, 9.5]}, index=["a", "b"])
    comparison = PredictorComparison(errors, {}, table, ["sella", "nasion"], "mm")
    np.testing.assert_allclose(comparison.per_landmark().to_numpy(), [[2.0, 13.0], [7.0, 6.0]])
    far = comparison.per_landmark(over=10)  # 10.0 itself is not over
    assert far.loc["sella"].tolist() == [0, 2] and far.loc["nasion"].tolist() == [1, 0]
    text = comparison.summary(over=12)  # sella has 15 in b; nasion nothing over 12
    assert "errors over 12 mm" in text and "sella" in text.split("landmark")[-1]
    assert "nasion" not in text.split("landmarks with any):")[-1]
    report = comparison.report().splitlines()  # the table, then the per-landmark means
    assert report[-4] == "per-landmark MRE (mm):" and report[-2].split() == ["sella", "2.0", "13.0"]
    moved = comparison.crossings("a", "b", 3.0)  # 3.0 itself is inside
    assert moved.loc["sella"].tolist() == [2, 0, -2] and moved.loc["nasion"].tolist() == [0, 0, 0]
    assert comparison.crossings("b", "a", 10.0).loc["nasion"].tolist() == [1, 0, -1]  # 10 is in, 12 is not
    assert comparison.crossings("b", "a", 11.0).loc["sella"].tolist() == [0, 1, 1]  # 11 was in; 15 -> 3 comes in
    drift = comparison.drift("a", "b", 1.5)  # wrong in a: sella 3 (-> 15), nasion 12 (-> 10), nasion 2 (-> 2)
    assert drift.loc["sella"].tolist() == [0, 1] and drift.loc["nasion"].tolist() == [1, 0]  # 2 -> 2: neither
    assert comparison.drift("b", "a", 10.0).loc["sella"].tolist() == [2, 0]  # 11 -> 1, 15 -> 3; 10 is not beyond


class HalfLabelled(Dots):
    """``Dots`` whose image "1" has no annotation."""

    def _load(self, i):
        s = super()._load(i)
        return Sample(s.id, s.image, None, s.spacing_mm) if s.id == "1" else s


def test_template_from_dataset_reads_one_image_as_from_data_does():
    dataset = HalfLabelled([(0, 0), (3.0, -2.0)])
    grid = GridImages(dataset, GRID, "train", progress=False)
    a, b = Template.from_dataset(dataset, "0", GRID), Template.from_data(grid, "0")
    torch.testing.assert_close(a.image, b.image)
    np.testing.assert_allclose(a.points, b.points)
    assert a.names == b.names and np.array_equal(a.original, b.original)
    with pytest.raises(ValueError, match="'1' has no \\(or incomplete\\) landmark annotation"):
        Template.from_dataset(dataset, "1", GRID)
    with pytest.raises(KeyError, match="'7' is not in this dataset"):
        Template.from_dataset(dataset, "7", GRID)


def test_to_original_of_some_landmarks_fills_the_others_with_nan():
    data = GridImages(Dots([(0, 0), (3.0, -2.0)]), GRID, "test", progress=False)
    some = data.to_original(data.landmarks[:, [2, 0]], [2, 0])
    assert some.shape == (2, 3, 2) and np.isnan(some[:, 1]).all()
    np.testing.assert_allclose(some[:, [0, 2]], data.to_original(data.landmarks)[:, [0, 2]])
    np.testing.assert_allclose(some[:, [0, 2]], data.original_landmarks[:, [0, 2]], atol=1e-9)


@pytest.mark.parametrize("whole", [False, True])
def test_back_misses_say_how_far_a_point_looks_back_from_the_templates_landmark(whole):
    data = GridImages(Dots([(0, 0), (0, 0)]), GRID, "test", progress=False)  # image 1: the template's twin
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    truth = data.landmarks[1]
    refined = RefinedPredictor(Fixed(template, data.landmarks), intensity_network(), fine_template, SCALE, CROP,
                               whole_image=whole)
    _, origins, embs = refined.window_maps(data.dataset[1].image, truth, refined.fine_vectors())
    off = np.array([[0.5, 0.0], [0.0, -0.5], [0.35, 0.35]])  # 2 fine px off each dot, on its flank
    misses = refined.back_misses(embs, origins, np.stack([truth, truth + off]))
    assert misses.shape == (2, 3)
    np.testing.assert_allclose(misses[0], 0.0, atol=0.05)  # the landmark looks back at itself
    np.testing.assert_allclose(misses[1], np.linalg.norm(off, axis=1), atol=0.15)  # a flank at the same flank


def test_the_back_check_keeps_the_coarse_answer_where_the_fine_one_does_not_look_back():
    assert keep_coarse(np.array([[2.0, 2.0, 0.5, 3.0], [1.0, 2.5, 0.0, 3.0]]), 1.0).tolist() == [
        True, False, False, False]  # fine over the reach and coarse nearer; coarse further; fine within; a tie
    data = GridImages(Dots([(0, 0), (3.0, -2.0), (-2.0, 4.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    truth = data.landmarks[1:]
    plain = RefinedPredictor(Fixed(template, data.landmarks), intensity_network(), fine_template, SCALE, CROP)
    # a fine stage that takes every answer 1 grid px (4 fine px, on the dot's flank) to the right
    plain.answer = lambda maps, origins, grid_points, max_move: grid_points + [1.0, 0.0]
    for reach, kept in ((0.5, True), (2.0, False)):
        checked = plain.variant(back_check=reach)
        checked.answer = plain.answer
        assert checked.back_check == reach and checked.with_template(template).back_check == reach
        got = checked.predict_grid(data, [1, 2])
        np.testing.assert_allclose(got, truth if kept else truth + [1.0, 0.0], atol=1e-6)
        ablation = checked.predict_grid_back(data, [0.5, 2.0], rows=[1, 2])
        np.testing.assert_allclose(ablation[reach], got)
        np.testing.assert_allclose(ablation["fine"], truth + [1.0, 0.0])
        np.testing.assert_allclose(ablation["coarse"], truth)
        np.testing.assert_allclose(ablation["misses"][:, 0], 1.0, atol=0.15)  # (N, fine / coarse, K)
        np.testing.assert_allclose(ablation["misses"][:, 1], 0.0, atol=0.05)
    with pytest.raises(ValueError, match="back_check"):
        plain.variant(back_check=0.0)
    assert RefinedPredictor.settings_of(tiny_cfg(**{"refine.back_check": 2.0}).refine)["back_check"] == 2.0


def test_the_fine_network_trains_at_its_own_rotation_and_the_coarse_one_is_untouched():
    base = tiny_cfg(**{"train.epochs": 1, "method.name": "multi", "refine.enabled": True, "refine.scale": 2,
                       "refine.crop": 64, "refine.steps_per_epoch": 2, "train.rotation_deg": 20.0})
    data = phantom_grids(base)

    def weights(cfg):
        p = run_method(cfg, None, data, progress=False).predictor
        return p.coarse.model.state_dict(), p.fine.state_dict()

    coarse, fine = weights(base)  # refine.rotation_deg None: the fine network at train.rotation_deg
    coarse_0, fine_0 = weights(base.replace(**{"refine.rotation_deg": 0.0}))
    _, fine_20 = weights(base.replace(**{"refine.rotation_deg": 20.0}))
    assert all(torch.equal(coarse[k], coarse_0[k]) for k in coarse)  # the coarse network's draws are its own
    assert any(not torch.equal(fine[k], fine_0[k]) for k in fine)
    assert all(torch.equal(fine[k], fine_20[k]) for k in fine)
    with pytest.raises(ValueError, match="refine.rotation_deg"):
        base.replace(**{"refine.rotation_deg": -1.0})


def test_a_capped_gate_asks_the_coarse_stage_for_answers_exact_around_its_reach(monkeypatch):
    """With max_move the gate is read within max_move (+ its bilinear sources) of each coarse answer:
    the coarse stage may answer from local maps (``inference/local.py``) exact there; uncapped, the
    gate spans the whole window, so the whole maps."""
    data = GridImages(Dots([(0, 0), (3.0, -2.0)]), GRID, "test", progress=False)
    template = Template(data.images[0], data.landmarks[0], data.dataset[0].image)
    fine_template = torch.as_tensor(GridImages(data.dataset, GRID * SCALE, "fine", progress=False).images[0])
    asked = []
    for max_move, expected in ((3.0, (True, 5)), (2.5, (True, 5)), (None, (False, 2))):
        coarse = Bumps(template, [[12.0, 9.0], [20.0, 21.0], [6.0, 25.0]])
        batches = coarse.map_batches

        def recording(data, rows, progress=False, desc="predict", local=False, need=1, batches=batches):
            asked.append((local, need))
            return batches(data, rows, progress, desc, local, need)
        monkeypatch.setattr(coarse, "map_batches", recording)
        refined = RefinedPredictor(coarse, intensity_network(), fine_template, SCALE, CROP, coarse_gate=True,
                                   max_move=max_move)
        refined.predict_grid(data, [1])
        assert asked[-1] == expected

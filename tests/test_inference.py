import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cc2dkit.config import BackboneConfig, NetConfig
from cc2dkit.data.coords import from_grid
from cc2dkit.inference import ModelPredictor, ModelSetPredictor, Template, cascade_argmax, similarity_maps
from cc2dkit.inference.cascade import best_pose, top_centroid, upsampled
from cc2dkit.network import CC2D, AdapterBlocks, check_landmark_ids

from .conftest import phantom_grids, tiny_cfg

CPU = torch.device("cpu")


def _texture(size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 1, size // 4, size // 4, generator=g)
    return F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)[0]


def test_cascade_argmax_finds_the_peak_of_the_product():
    maps = torch.full((3, 1, 2, 16, 16), 0.5)
    maps[:, 0, 0, 5, 9] = 1.0  # landmark 0 at (x=9, y=5) on every scale
    maps[0, 0, 1, 2, 3] = 1.0  # landmark 1: peaks disagree; the product decides
    maps[1, 0, 1, 2, 3] = 0.9
    maps[1, 0, 1, 12, 4] = 1.0
    pts = cascade_argmax(maps)
    assert pts.shape == (1, 2, 2)
    assert pts[0, 0].tolist() == [9.0, 5.0]
    assert pts[0, 1].tolist() == [3.0, 2.0]


def test_closed_gates_do_not_fall_back_to_the_corner():
    """Every location has some scale at 0: the plain product is 0 everywhere (argmax would be (0, 0));
    the prediction is then where the most scales agree, while an open pair is left untouched."""
    maps = torch.full((3, 1, 2, 16, 16), 0.5)
    maps[0, 0, 0] = 0.0  # landmark 0: scale 0 closed everywhere ...
    maps[0, 0, 0, 7, 11] = 0.9  # ... except at (x=11, y=7), where scale 1 is closed
    maps[1, 0, 0, 7, 11] = 0.0
    maps[1:, 0, 0, 3, 6] = 0.95  # (x=6, y=3): two of three scales strong, scale 0 closed
    maps[:, 0, 1, 9, 2] = 0.8  # landmark 1: an ordinary peak at (x=2, y=9)
    maps[0, 0, 1, 4, 4] = 0.0
    assert (maps[:, 0, 0].prod(dim=0) == 0).all()
    pts = cascade_argmax(maps)
    assert pts[0, 0].tolist() == [6.0, 3.0]
    assert pts[0, 1].tolist() == [2.0, 9.0]


def test_shifted_query_gives_the_shift():
    """A query that is the template shifted by a known offset: predictions move by that offset.

    Shifts are multiples of the coarsest stride (32), for which a (random) CNN's features shift
    exactly, so the whole cascade must recover the offset to within one finest-scale cell (2 px).
    """
    torch.manual_seed(0)
    grid, pad = 256, 64
    model = CC2D(NetConfig(embed_dim=32, decoder_widths=(32, 32, 32, 32, 32)),
                 BackboneConfig(arch="vgg16", weights="none"))
    big = _texture(grid + 2 * pad, seed=1)  # (1, 384, 384)
    template = big[:, pad:pad + grid, pad:pad + grid]
    landmarks = np.array([[120.0, 130.0], [150.0, 113.0], [135.0, 160.0]])
    predictor = ModelPredictor(model, Template(template, landmarks), [0, 1, 2], torch.device("cpu"), batch_size=2)
    shifts = [(32, 32), (-32, 0), (64, -32)]
    queries = torch.stack([big[:, pad + dy:pad + dy + grid, pad + dx:pad + dx + grid] for dx, dy in shifts])
    pred = predictor.predict_batch(queries)
    for k, (dx, dy) in enumerate(shifts):
        expected = landmarks - np.array([dx, dy])  # content moves by (-dx, -dy)
        assert np.abs(pred[k] - expected).max() <= 2.0, (dx, dy, pred[k], expected)


def test_similarity_maps_shapes_and_range():
    embs = [torch.randn(2, 8, 128 // s, 128 // s) for s in (32, 16, 8, 4, 2)]
    vecs = [F.normalize(torch.randn(3, 8), dim=1) for _ in range(5)]
    maps = similarity_maps(embs, vecs, 128)
    assert maps.shape == (5, 2, 3, 128, 128)
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6


@pytest.fixture(scope="module")
def tiny():
    cfg = tiny_cfg()
    torch.manual_seed(0)
    return cfg, phantom_grids(cfg)[0], CC2D(cfg.net, cfg.backbone)


def test_predictions_do_not_depend_on_batching_rows_or_landmark_grouping(tiny):
    cfg, data, model = tiny
    template = Template.from_data(data, cfg.data.template)
    both = ModelPredictor(model, template, [3, 1], CPU, batch_size=4).predict_grid(data, [1, 2, 3])
    assert both.shape == (3, 2, 2) and ((both >= 0) & (both <= data.grid - 1)).all()
    assert np.array_equal(both, ModelPredictor(model, template, [3, 1], CPU, 2).predict_grid(data, [1, 2, 3]))
    for k, l in enumerate([3, 1]):
        alone = ModelPredictor(model, template, [l], CPU, 4).predict_grid(data, [1, 2, 3])
        assert np.array_equal(both[:, [k]], alone)
    assert np.array_equal(both[:1], ModelPredictor(model, template, [3, 1], CPU, 4).predict_grid(data, [1]))


def test_an_adapter_model_matches_landmark_k_through_adapter_k(tiny, monkeypatch):
    cfg, data, plain = tiny
    model, seen = CC2D(cfg.net, cfg.backbone, AdapterBlocks(n_landmarks=2, extra=2)), []
    forward = model.decoder.forward

    def recording(taps, ids=None, crops=None):  # the landmark ids each decoder pass runs with
        seen.append(check_landmark_ids(ids, taps[0].shape[0], 2).tolist())
        return forward(taps, ids, crops)

    monkeypatch.setattr(model.decoder, "forward", recording)
    template = Template.from_data(data, cfg.data.template)
    with pytest.raises(ValueError, match="2 landmark adapters for 3 landmarks"):
        ModelPredictor(model, template, [4, 2, 0], CPU, 4)
    out = ModelPredictor(model, template, [4, 2], CPU, 4).predict_grid(data, [1, 2, 3, 4, 5])
    assert out.shape == (5, 2, 2)
    # the template of landmark k through adapter k, then each image batch once per adapter
    assert seen == [[0], [1], [0] * 4, [1] * 4, [0], [1]]
    with pytest.raises(ValueError, match="landmark_ids must be None"):
        plain(data.images[:1], landmark_ids=torch.zeros(1, dtype=torch.long))


def test_another_template_changes_the_answer_not_the_model(tiny):
    cfg, data, model = tiny
    p = ModelPredictor(model, Template.from_data(data, cfg.data.template), [0, 1], CPU, 4)
    t = p.template
    swapped = p.with_template(Template(t.image, t.points[[1, 0, 2, 3, 4]]))  # landmarks 0 and 1 swap places
    assert swapped.model is p.model and p.template is t
    assert swapped.landmark_indices == [0, 1, 2, 3, 4]  # a plain model predicts all of the template's landmarks
    assert np.array_equal(swapped.predict_grid(data, [1, 2])[:, :2], p.predict_grid(data, [1, 2])[:, [1, 0]])
    with pytest.raises(ValueError, match="no \\(or incomplete\\) landmark annotation"):
        ModelPredictor(model, Template(data.images[0], np.full_like(data.landmarks[0], np.nan)), [0], CPU, 4
                       ).predict_grid(data, [1])


def test_subpixel_peak_of_a_gaussian_is_exact_and_stays_within_half_a_pixel():
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    peaks = [(10.3, 5.8), (3.0, 4.45), (7.6, 12.2)]
    maps = torch.stack([torch.stack([torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8.0) for x, y in peaks])] * 2)
    maps = maps[:, None]  # (S=2, B=1, L=3, 16, 16)
    assert cascade_argmax(maps)[0].tolist() == [[10.0, 6.0], [3.0, 4.0], [8.0, 12.0]]
    torch.testing.assert_close(cascade_argmax(maps, subpixel=True)[0], torch.tensor(peaks), atol=1e-4, rtol=0)
    tiny = maps * torch.tensor([1e-16, 1e-18])[:, None, None, None, None]  # a product peaking at 1e-34
    torch.testing.assert_close(cascade_argmax(tiny, subpixel=True)[0], torch.tensor(peaks), atol=1e-4, rtol=0)
    edge = torch.zeros(1, 1, 1, 8, 8)
    edge[0, 0, 0, 0, 3], edge[0, 0, 0, 0, 4] = 1.0, 0.9  # a peak on the border row: no move across it
    assert cascade_argmax(edge, subpixel=True)[0, 0, 1] == 0.0
    assert -0.5 <= float(cascade_argmax(edge, subpixel=True)[0, 0, 0]) - 3 <= 0.5


def test_top_centroid_finds_the_middle_of_a_ridge_and_the_centre_of_a_peak():
    ys, xs = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    peak = torch.exp(-((xs - 10.3) ** 2 + (ys - 13.6) ** 2) / 8.0)  # a clean peak off the pixel centres
    ridge = torch.where((ys == 5) & (xs >= 4) & (xs <= 15), 0.9, 0.1)  # flat along an edge, x 4..15
    ridge[5, 4] = 0.92  # its argmax: the ridge's first pixel
    twins = torch.full((24, 24), 0.1)
    twins[3, 2], twins[19, 20] = 0.8, 0.8  # two places alike: the centroid answers between them
    maps = torch.stack([peak, ridge, twins])[None, None]  # (S=1, B=1, L=3, 24, 24)
    assert cascade_argmax(maps)[0, 1].tolist() == [4.0, 5.0]
    got = cascade_argmax(maps, centroid=0.5)[0]
    torch.testing.assert_close(got[0], torch.tensor([10.3, 13.6]), atol=0.02, rtol=0)
    assert abs(float(got[1, 0]) - 9.5) < 0.1 and float(got[1, 1]) == 5.0  # the ridge's middle, not its end
    torch.testing.assert_close(got[2], torch.tensor([11.0, 11.0]))
    torch.testing.assert_close(top_centroid(maps[0], 0.5)[0], got)  # one scale: the product is the map
    # six maps of a weak model can multiply to a peak of 1e-33 (an SLA run answered at the corner so)
    torch.testing.assert_close(cascade_argmax(maps * 1e-33, centroid=0.5)[0], got, atol=1e-4, rtol=1e-5)
    allowed = torch.zeros(24, 24, dtype=torch.bool)
    allowed[:12, :12] = True  # only the first twin may answer
    torch.testing.assert_close(cascade_argmax(maps, allowed=allowed, centroid=0.5)[0, 2], torch.tensor([2.0, 3.0]))
    with pytest.raises(ValueError, match="must lie in"):
        top_centroid(maps[0], 1.0)


def test_a_predictor_answers_with_the_top_centroid_when_configured(tiny):
    cfg, data, model = tiny
    plain = ModelPredictor(model, Template.from_data(data, cfg.data.template), [0, 1, 2], CPU, 4)
    centred = plain.configured(True, 0, centroid=0.5)
    assert plain.centroid is None and centred.centroid == 0.5 and centred.plain().centroid is None
    with torch.no_grad():
        expected = cascade_argmax(plain.matcher()(data.images[[1, 2]], None), centroid=0.5).double().numpy()
    np.testing.assert_allclose(centred.predict_grid(data, [1, 2]), expected, atol=1e-3)
    assert not np.allclose(expected, plain.predict_grid(data, [1, 2]))
    np.testing.assert_allclose(centred.image_maps(data, 1).prediction, expected[0], atol=1e-3)
    with pytest.raises(ValueError, match="eval.centroid"):
        plain.configured(False, 0, centroid=1.5)


def test_bf16_inference_runs_the_networks_in_bf16_and_reads_float32_maps(tiny, monkeypatch):
    cfg, data, model = tiny
    plain = ModelPredictor(model, Template.from_data(data, cfg.data.template), [0, 1, 2], CPU, 4)
    half = plain.configured(False, 0, bf16=True)
    assert half.bf16 and not plain.bf16 and not half.plain().bf16  # Infer-PL and tracking stay float32
    assert half.configured(True, 0, centroid=0.5).bf16  # other settings keep the precision
    seen, decoder = [], model.decoder.forward

    def recording(taps, ids=None, crops=None):  # the dtype the decoder computes in
        out = decoder(taps, ids, crops)
        seen.append(out[0].dtype)
        return out

    monkeypatch.setattr(model.decoder, "forward", recording)
    with torch.no_grad():
        exact, approx = plain.matcher()(data.images[[1, 2]], None), half.matcher()(data.images[[1, 2]], None)
    assert seen == [torch.float32] * 2 + [torch.bfloat16] * 2  # template and query of each
    assert approx.dtype == torch.float32 and approx.shape == exact.shape
    torch.testing.assert_close(approx, exact, atol=0.05, rtol=0)  # bf16 keeps ~3 significant digits
    assert not torch.equal(approx, exact)


def test_best_pose_keeps_per_image_the_pose_whose_landmarks_match_best():
    low, high = torch.full((2, 2, 3, 8, 8), 0.3), torch.full((2, 2, 3, 8, 8), 0.3)  # (S, B, K, h, w)
    high[:, 0, :, 3:5, 3:5] = 0.9  # image 0: the second pose peaks higher on every landmark
    low[:, 1, :2, 1:3, 1:3] = 0.8  # image 1: the first pose, on two landmarks of three (geometric mean)
    high[:, 1, 2, 5:7, 5:7] = 0.9
    chosen = best_pose([list(low), list(high)], 16)  # maps at 8 x 8, grid 16: scored at 4 x 4
    assert chosen.shape == (2, 2, 3, 16, 16)
    assert torch.equal(chosen[:, 0], upsampled(list(high[:, :1]), 16)[:, 0])
    assert torch.equal(chosen[:, 1], upsampled(list(low[:, 1:]), 16)[:, 0])
    assert torch.equal(best_pose([list(low)], 16), upsampled(list(low), 16))


def test_posed_template_moves_its_landmarks_with_the_image(tiny):
    cfg, data, _ = tiny
    template = Template.from_data(data, cfg.data.template)
    assert template.posed(1.0, 0.0) is template
    h, w = template.original.shape
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    before = from_grid(template.points, (h, w), template.grid)
    bigger = template.posed(1.2, 0.0)
    np.testing.assert_allclose(from_grid(bigger.points, (h, w), bigger.grid), centre + 1.2 * (before - centre),
                               atol=1e-6)
    turned = template.posed(1.0, 90.0)  # a quarter turn keeps the distances to the centre
    np.testing.assert_allclose(np.linalg.norm(from_grid(turned.points, (h, w), turned.grid) - centre, axis=1),
                               np.linalg.norm(before - centre, axis=1), atol=1e-6)
    with pytest.raises(ValueError, match="original image"):
        Template(template.image, template.points).posed(1.1, 0.0)


def test_a_larger_head_is_matched_by_the_larger_pose(tiny):
    """The query is the template enlarged by 1.25: among the poses, the enlarged template's vectors
    match it exactly (product 1 at every landmark), so that pose's maps answer; its template alone
    gives the same answer, the unposed template another."""
    cfg, data, model = tiny
    template = Template.from_data(data, cfg.data.template)
    query = template.posed(1.25, 0.0).image[None]  # (1, 1, G, G)
    lms = list(range(len(template.points)))
    plain = ModelPredictor(model, template, lms, CPU, 4)
    posed = plain.configured(False, 0, [(1.0, 0.0), (1.25, 0.0), (0.8, 0.0)])
    assert plain.poses == ((1.0, 0.0),) and posed.poses[1] == (1.25, 0.0)
    larger = plain.configured(False, 0, [(1.25, 0.0)])
    torch.testing.assert_close(posed.matcher()(query, None), larger.matcher()(query, None), atol=1e-6, rtol=0)
    np.testing.assert_allclose(posed.predict_batch(query), larger.predict_batch(query), atol=1e-4)
    assert not np.array_equal(posed.predict_batch(query), plain.predict_batch(query))
    with pytest.raises(ValueError, match="distinct"):
        plain.configured(False, 0, [(1.0, 0.0), (1.0, 0.0)])


def test_poses_choose_the_same_way_for_an_adapter_and_a_model_set(tiny):
    """The C-Adapter (one embedding per landmark) and K single models (stacked) pick per image among
    the posed templates' maps: with poses, each answers as one of its single-pose predictors."""
    cfg, data, _ = tiny
    template = Template.from_data(data, cfg.data.template)
    torch.manual_seed(1)
    adapter = CC2D(cfg.net, cfg.backbone, AdapterBlocks(n_landmarks=2, extra=2))
    models = [CC2D(cfg.net, cfg.backbone) for _ in range(2)]
    poses = [(1.0, 0.0), (1.1, 6.0)]
    for make in (lambda p: ModelPredictor(adapter, template, [0, 3], CPU, 4, poses=p),
                 lambda p: ModelSetPredictor(models, template, [0, 3], CPU, 4, stack_size=1, poses=p)):
        both = make(poses).matcher()(data.images[1:4], None)  # (S, 3, 2, G, G)
        alone = [make([p]).matcher()(data.images[1:4], None) for p in poses]
        for b in range(3):
            assert any(torch.allclose(both[:, b], a[:, b], atol=1e-6, rtol=0) for a in alone)


class _PinTo:
    """A stand-in shape check whose factor pins landmark 0 to one place (a narrow Gaussian there)."""

    def __init__(self, where):
        self.where, self.seen = where, []

    def guard(self, maps, read):
        points = read(maps).numpy()
        self.seen.append(points)
        size = maps.shape[-1]
        ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                                indexing="ij")
        out = torch.ones(len(points), points.shape[1], size, size)
        out[:, 0] = torch.exp(-((xs - self.where[0]) ** 2 + (ys - self.where[1]) ** 2) / 0.5)
        return out


def test_a_shape_check_joins_the_maps_every_reading_sees(tiny):
    cfg, data, model = tiny
    plain = ModelPredictor(model, Template.from_data(data, cfg.data.template), [0, 1, 2], CPU, 4)
    before = plain.predict_grid(data, [1, 2])
    check = _PinTo((7.0, 9.0))
    checked = plain.with_shape(check)
    assert plain.shape is None and checked.shape is check
    with torch.no_grad():
        maps = checked.matcher()(data.images[[1, 2]], None)
    assert maps.shape[0] == len(model.strides) + 1  # the S scales and the check's factor
    np.testing.assert_allclose(check.seen[0], before, atol=1e-4)  # the check reads the unchecked maps
    after = checked.predict_grid(data, [1, 2])
    np.testing.assert_allclose(after[:, 0], [[7.0, 9.0]] * 2, atol=0.5)
    np.testing.assert_allclose(after[:, 1:], before[:, 1:])
    shown = checked.image_maps(data, 1)
    assert shown.maps.shape[0] == len(model.strides) and np.allclose(shown.prediction[0], [7.0, 9.0], atol=0.5)
    assert checked.configured(True, 0).shape is check and checked.plain().shape is None  # Infer-PL: unchecked
    # a plain model with another template's landmarks: the check (fitted to these landmarks) is dropped
    other = Template.from_data(data, data.ids[2]).subset(list(data.landmark_names)[:4])
    assert checked.with_template(other).shape is None


def test_scale_evidence_names_the_map_that_holds_a_miss_and_each_maps_own_argmax():
    from cc2dkit.analysis import scale_evidence, scale_tables
    from cc2dkit.analysis.scales import FLOOR

    g = 16
    maps = np.full((3, 2, 1, g, g), 0.1)  # 3 maps (coarse, fine, shape factor), 2 images, 1 landmark
    truth = np.array([[[4.0, 5.0]], [[10.0, 10.0]]])
    maps[0, :, 0, 5, 4] = maps[0, :, 0, 10, 10] = 0.9  # the coarse map: a ridge through both truths
    maps[1, 0, 0, 5, 4] = 0.8  # image 0: the fine map peaks at the truth
    maps[1, 1, 0, 2, 13] = 0.8  # image 1: at (13, 2), and shuts the truth out
    maps[1, 1, 0, 10, 10] = 0.0
    maps[0, 1, 0, 2, 13] = 0.45
    answers = np.array([[[4.0, 5.0]], [[13.2, 1.8]]])  # the product's peaks (image 1's off the pixel centre)
    ratio, argmax = scale_evidence(maps, answers, truth)
    np.testing.assert_allclose(ratio[0, 0], 0.0)  # answer = truth
    np.testing.assert_allclose(ratio[1, 0], [np.log(0.9 / 0.45), np.log(FLOOR / 0.8), 0.0])
    np.testing.assert_array_equal(argmax[1, 0, 1], [13, 2])  # the fine map alone: its own peak
    mm = np.array([[1.0, 1.0], [1.0, 2.0]])  # image 1: 2 mm per px in y
    per, misses = scale_tables(ratio, argmax, answers, truth, mm, ["L"], ["i0", "i1"],
                               ["coarse", "fine", "shape"], gross=5.0)
    assert per["> 5"].tolist() == [1]
    assert misses[["image", "landmark"]].values.tolist() == [["i1", "L"]]
    assert misses["error"].iloc[0] == pytest.approx(np.hypot(3.2, 16.4))
    assert misses["fine"].iloc[0] == pytest.approx(np.log(FLOOR / 0.8))
    assert per["fine alone"].iloc[0] == pytest.approx((0.0 + np.hypot(3.0, 16.0)) / 2)  # the median of two
    with pytest.raises(ValueError, match="do not match"):
        scale_evidence(maps, answers[:1], truth)
    with pytest.raises(ValueError, match="do not match"):
        scale_tables(ratio, argmax, answers, truth, mm, ["L"], ["i0"], ["coarse", "fine", "shape"])

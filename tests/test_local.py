"""The finest decoder stages near the answers only (``inference/local.py``): the whole maps' answers."""
import numpy as np
import pytest
import torch

from cc2dkit.config import BackboneConfig, NetConfig, preset
from cc2dkit.data.grid import GridImages
from cc2dkit.data import make_phantom_splits
from cc2dkit.inference import ModelPredictor, ModelSetPredictor, Template
from cc2dkit.inference.cascade import cosine_maps, upsampled
from cc2dkit.inference.local import LOCAL_HALF, LocalPasses, exact_mask, placed, plan_crops, unsettled
from cc2dkit.methods import method_spec
from cc2dkit.network import CC2D, AdapterBlocks

CPU = torch.device("cpu")
BB = BackboneConfig(arch="vgg16", weights="none")
NET = NetConfig(embed_dim=8, decoder_widths=(16, 16, 16, 16, 8))
GRID = 128


@pytest.fixture(scope="module")
def adapter():
    torch.manual_seed(0)
    return CC2D(NET, BB, AdapterBlocks(n_landmarks=3, extra=2)).eval()


@pytest.mark.parametrize("half", [4, 12, 30])
def test_cropped_maps_equal_the_whole_maps_on_the_exact_region_which_holds_the_window(adapter, half):
    """At the corners and edges too: every grid pixel marked exact has the whole pass's cosines at
    every scale, and the window of ``half`` px around each centre is marked."""
    images = torch.rand(6, 1, GRID, GRID, generator=torch.Generator().manual_seed(1))
    centres = torch.tensor([[0, 0], [127, 127], [64, 64], [5, 120], [100, 3], [33, 77]])
    crops = plan_crops(centres, adapter.decoder.croppable, GRID, half)
    assert sorted(crops) == [2, 4] and adapter.decoder.croppable == (4, 2)
    vectors = [torch.nn.functional.normalize(torch.randn(1, 8), dim=1) for _ in adapter.strides]
    with torch.no_grad():
        taps = adapter.taps(images)
        whole = upsampled(cosine_maps(adapter.decoder(taps, 1), vectors), GRID)
        cropped = cosine_maps(adapter.decoder(taps, 1, lambda coarse: crops if len(coarse) == 3 else {}), vectors)
    local = upsampled([placed(m, crops[s], GRID // s) if s in crops else m
                       for m, s in zip(cropped, adapter.strides)], GRID)
    xs, ys = exact_mask(crops, GRID)
    exact = ys[:, :, None] & xs[:, None, :]
    assert 0 < int(exact.sum()) < exact.numel()
    diff = (whole - local).abs()[:, :, 0].masked_fill(~exact[None], 0)
    assert float(diff.max()) < 1e-6
    assert not torch.allclose(whole, local)  # outside it the crops' maps differ (0 or wrong)
    for b, (x, y) in enumerate(centres.tolist()):
        assert bool(xs[b, max(0, x - half):x + half + 1].all()) and bool(ys[b, max(0, y - half):y + half + 1].all())


def test_unsettled_names_the_pairs_a_reading_outside_the_window_could_change():
    g = 16
    maps = torch.full((3, 1, 4, g, g), 0.5)  # scales: two coarse, one local; 4 landmarks
    exact = torch.zeros(1, 4, g, g, dtype=torch.bool)
    exact[..., 4:12, 4:12] = True
    maps[2] = maps[2] * exact  # the local scale: 0 outside the exact region
    maps[:, 0, :, 8, 8] = 1.0  # a clean peak inside, product 1; outside the bound is 0.25
    answers = torch.full((1, 4, 2), 8.0)
    maps[0, 0, 1, 1, 1] = 1.0  # landmark 1: the coarse bound outside reaches 0.5, the top centroid's level
    maps[2, 0, 2, 8, 8] = 0.1  # landmark 2: the local scale lowers the peak under the coarse bound outside
    exact[0, 3] = True  # landmark 3: computed on the whole map, settled whatever its maps
    maps[:, 0, 3] = 0.0
    got = unsettled(maps, exact, coarse=2, scales=3, level=1.0, answers=answers, need=1)
    assert got.tolist() == [[False, False, True, False]]
    assert unsettled(maps, exact, 2, 3, 0.5, answers, 1).tolist() == [[False, True, True, False]]
    near_edge = torch.tensor([[[11.0, 8.0], [8.0, 8.0], [8.0, 8.0], [8.0, 8.0]]])
    assert unsettled(maps, exact, 2, 3, 1.0, near_edge, 1)[0, 0]  # its neighbour at x = 12 is outside
    assert not unsettled(maps, exact, 2, 3, 1.0, near_edge, 0)[0, 0]
    factor = torch.ones(1, 1, 4, g, g)
    factor[..., 8, 8] = 0.1  # a shape check's factor that moves the answer outside the window
    assert unsettled(torch.cat([maps, factor]), exact, 2, 3, 1.0, answers, 1)[0, 0]


class _Far:
    """A stand-in shape check whose factor pins landmark 0 far from its match (a Gaussian there)."""

    def guard(self, maps, read):
        points = read(maps)
        size = maps.shape[-1]
        ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                                indexing="ij")
        out = torch.ones(len(points), points.shape[1], size, size)
        out[:, 0] = torch.exp(-((xs - 10.0) ** 2 + (ys - 100.0) ** 2) / 50.0)
        return out


@pytest.fixture(scope="module")
def phantom():
    cfg = preset("smoke")
    train, _ = make_phantom_splits(cfg.data, cfg.seed)
    data = GridImages(train, GRID, "train", progress=False)
    return data, Template.from_data(data, cfg.data.template)


STRIDES = (32, 16, 8, 4, 2)
FEATURES = [torch.randn(256, 2, generator=torch.Generator().manual_seed(s)) / (2.0 * s) for s in STRIDES]
PHASES = [torch.rand(256, generator=torch.Generator().manual_seed(100 + s)) * 2 * np.pi for s in STRIDES]


def _positions(images: torch.Tensor) -> list[torch.Tensor]:
    """A stand-in decoder with peaked maps (a random network's are flat, they would never settle):
    at stride s the embedding of a cell is random Fourier features of its centre less the image's
    shift (pixel values (0, 0) and (0, 1)), so a cosine map is about a Gaussian of width 2 s around
    where the template's landmark lies shifted; coarse to fine."""
    out = []
    for s, w, phase in zip(STRIDES, FEATURES, PHASES):
        n = images.shape[-1] // s
        centre = (torch.arange(n, dtype=torch.float32) + 0.5) * s - 0.5
        xy = torch.stack(torch.meshgrid(centre, centre, indexing="xy"), dim=-1)  # (n, n, 2) (x, y)
        shifted = xy[None] - images[:, 0, 0, :2][:, None, None, :]  # (B, n, n, 2)
        out.append(torch.cos(shifted @ w.T + phase).permute(0, 3, 1, 2))  # (B, 256, n, n)
    return out


def _shifted(shifts) -> torch.Tensor:
    images = torch.zeros(len(shifts), 1, GRID, GRID)
    images[:, 0, 0, :2] = torch.tensor(shifts, dtype=torch.float32)
    return images


class _Positions(ModelPredictor):
    """A C-Adapter-like predictor on :func:`_positions` (one pass per landmark), its two finest
    strides cropped as the decoder crops them."""

    def embedder(self):
        def per_landmark(images, keys=None):
            for k in range(len(self.landmark_indices)):
                yield [k], _positions(images)
        return per_landmark

    def local_passes(self, half=LOCAL_HALF):
        def decode(taps, k, crops):
            embs = _positions(taps[0])
            if crops is None:
                return embs
            made = crops(embs[:3])
            return embs[:3] + [made[s].of(e) for s, e in zip(STRIDES[3:], embs[3:])]
        return LocalPasses(lambda images, keys: [images], decode, STRIDES, STRIDES[3:], self.template.grid, half)


@pytest.mark.parametrize("reading", ["argmax", "subpixel", "centroid", "shape"])
@pytest.mark.parametrize("half", [4, 16])
def test_local_answers_are_the_whole_maps_answers(adapter, reading, half):
    """Every reading, a shape check's included: pairs settle locally, and those that cannot (a small
    window, a check that moves the answer far) are redone on the whole map; the answers are the whole maps'."""
    template = Template(_shifted([(0.0, 0.0)])[0], np.array([[30.0, 40.0], [70.0, 70.0], [120.0, 5.0]]))
    whole = _Positions(adapter, template, [0, 1, 2], CPU, 4, subpixel=reading == "subpixel",
                       centroid=0.5 if reading == "centroid" else None, local=True)
    whole = whole.with_shape(_Far()) if reading == "shape" else whole
    passes = whole.local_passes(half)
    images = _shifted([(0.0, 0.0), (3.3, -7.0), (-20.0, 10.5), (7.0, 7.0), (-2.0, 40.0), (0.5, 0.5)])
    with torch.no_grad():
        expected = whole.answers(whole.matcher()(images, None))
        got = whole.answers(whole.local_matcher(passes, need=2)(images, None))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert passes.pairs == 18 and (passes.redone > 0 if half == 4 else passes.redone < 18)
    if reading == "shape":  # the check pins landmark 0 far from its window on every image: redone
        assert passes.redone >= 6


def test_the_config_turns_local_passes_on_for_answers_only(adapter, phantom):
    data, template = phantom
    cfg = preset("smoke", **{"method.name": "adapter", "method.adapter_channels": 2})
    assert cfg.eval.local_finest is None  # on the CPU, not on CUDA
    p = method_spec(cfg).predictor(cfg, [adapter], template, [0, 2, 4], CPU)
    assert p.local and p.local_passes() is not None
    with torch.no_grad():
        assert not hasattr(p.matcher(), "passes")  # the whole maps: what the widgets and analyses read
        assert hasattr(p.matcher(local=True), "passes")
        assert hasattr(p.plain().matcher(local=True), "passes")  # Infer-PL's and tracking's reading too
    cfg_off = cfg.replace(**{"eval.local_finest": False})
    off = method_spec(cfg_off).predictor(cfg_off, [adapter], template, [0, 2, 4], CPU)
    with torch.no_grad():
        assert not hasattr(off.matcher(local=True), "passes")
    np.testing.assert_allclose(p.predict_grid(data, [1, 2, 3]), off.predict_grid(data, [1, 2, 3]), atol=1e-4)
    redone, pairs = p.redone_pairs(data, [1, 2, 3])  # the benchmarks' count: 3 images x 3 landmarks
    assert pairs == 9 and 0 <= redone <= 9 and off.redone_pairs(data, [1, 2, 3]) is None
    plain = ModelPredictor(CC2D(NET, BB), template, [0, 2, 4], CPU, 4, local=True)
    assert plain.local_passes() is None  # one decoder for all K: nothing to crop per landmark


def test_k_single_landmark_models_answer_locally_one_model_at_a_time(phantom):
    """SLA / C-ATD: model k's decoder for landmark k, cropped (a stack cannot crop per model)."""
    data, template = phantom
    torch.manual_seed(3)
    first = CC2D(NET, BB)
    models = [first] + [CC2D(NET, BB, shared=first) for _ in range(2)]
    # the argmax: a stack's grouped convolutions round otherwise than one model's, which moves the
    # sub-pixel peaks of these flat (untrained) maps by ~1e-3 px
    whole = ModelSetPredictor(models, template, [0, 2, 4], CPU, 4, stack_size=2)
    local = whole.configured(False, 0, local=True)
    match = local.matcher(local=True)
    with torch.no_grad():
        got = local.answers(match(data.images[:5], None))
        expected = whole.answers(whole.matcher(local=True)(data.images[:5], None))  # whole: local is off
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    assert match.passes.pairs == 15

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cc2dkit.data.base import LandmarkDataset, Sample
from cc2dkit.data.grid import GridImages
from cc2dkit.inference import ModelPredictor, ModelSetPredictor, Template, TemplatePool
from cc2dkit.network import CC2D, AdapterBlocks

from .conftest import intensity_network, phantom_grids, tiny_cfg

CPU = torch.device("cpu")
SIZE = 32
PLUS = np.zeros((5, 5), np.float32)
PLUS[2, :] = PLUS[:, 2] = 1
CROSS = np.eye(5, dtype=np.float32) + np.eye(5, dtype=np.float32)[::-1]
CROSS[2, 2] = 1
STAR = np.maximum(PLUS, CROSS)


class Marks(LandmarkDataset):
    """32 x 32 images, each with small 5 x 5 marks (``PLUS`` / ``CROSS``) at given places; one
    landmark "a", at the first mark of each image."""

    def __init__(self, marks):
        self.marks = marks  # per image: [(pattern, (x, y)), ...]
        self.ids = [str(i) for i in range(len(marks))]
        self.landmark_names = ("a",)
        self.spacing_mm = 0.1

    def _load(self, i):
        img = np.zeros((SIZE, SIZE), np.float32)
        for pattern, (x, y) in self.marks[i]:
            img[y - 2:y + 3, x - 2:x + 3] = pattern
        return Sample(self.ids[i], img, np.array([self.marks[i][0][1]], np.float64), self.spacing_mm)


def _marks():
    """Image 0: the template (a plus); image 1: the query (a plus at (8, 8), a star, plus and cross
    in one, at (22, 22)); images 2-4: crosses; images 5-7: pluses (each at its own place)."""
    query = [(PLUS, (8, 8)), (STAR, (22, 22))]
    crosses = [[(CROSS, (10 + 3 * i, 20 - 2 * i))] for i in range(3)]
    pluses = [[(PLUS, (20 - 3 * i, 9 + 4 * i))] for i in range(3)]
    return GridImages(Marks([[(PLUS, (16, 16))], query] + crosses + pluses), SIZE, "test", progress=False)


def test_the_pools_images_vote_beside_the_template():
    data = _marks()
    template = Template(data.images[0], data.landmarks[0])
    alone = ModelPredictor(intensity_network(), template, [0], CPU, batch_size=2)
    assert np.allclose(alone.predict_grid(data, [1]), [[[8, 8]]])  # the template's plus
    crosses = alone.pool_at(data, [2, 3, 4], data.landmarks[[2, 3, 4]])
    assert crosses.images == 3 and len(crosses.sums) == 5 and crosses.sums[0].shape == (1, 25)
    # the template's plus and the pool's crosses, weighed equally: the star matches both best;
    # a pool of pluses: the plus stays
    assert np.allclose(alone.with_pool(crosses).predict_grid(data, [1]), [[[22, 22]]])
    # equal weight, whatever the pool's size: the cosine at the star is that of (plus + cross) with it
    unit = [F.normalize(torch.tensor(p).flatten() - float(p.mean()), dim=0) for p in (PLUS, CROSS, STAR)]
    at_star = alone.with_pool(crosses).pose_matcher()(data.images[1:2], None)[0][0][0, 0, 22, 22]
    assert float(at_star) == pytest.approx(float(F.normalize(unit[0] + unit[1], dim=0) @ unit[2]), abs=1e-5)
    pluses = alone.pool_at(data, [5, 6, 7], data.landmarks[[5, 6, 7]])
    assert np.allclose(alone.with_pool(pluses).predict_grid(data, [1]), [[[8, 8]]])
    # the pool keeps the sum of the unit vectors at the points (one image: its unit patch, every scale)
    one = alone.pool_at(data, [2], data.landmarks[[2]])
    patch = data.images[2, 0, 18:23, 8:13].flatten()
    assert torch.allclose(one.sums[0][0], F.normalize(patch - patch.mean(), dim=0), atol=1e-6)
    with pytest.raises(ValueError, match="a template pool of 1 landmarks for a predictor of 2"):
        ModelPredictor(intensity_network(), Template(data.images[0], np.repeat(data.landmarks[0], 2, axis=0)),
                       [0, 1], CPU, 2).with_pool(one)
    with pytest.raises(ValueError, match=r"needs \(N >= 1, 1, 2\) points for its N rows"):
        alone.pool_at(data, [2, 3], data.landmarks[[2]])


def test_pooled_reads_its_own_answers_never_a_label():
    data = _marks()
    template = Template(data.images[0], data.landmarks[0])
    alone = ModelPredictor(intensity_network(), template, [0], CPU, batch_size=2)
    rows = [2, 3, 4, 5]
    answers = alone.predict_grid(data, rows)
    data.landmarks[rows] = np.nan  # unlabelled: nothing below may read them
    pooled = alone.pooled(data, rows)
    direct = alone.pool_at(data, rows, answers)
    assert pooled.pool.images == 4 and all(torch.equal(a, b) for a, b in zip(pooled.pool.sums, direct.sums))
    assert alone.pool is None and pooled.plain().pool is None  # Infer-PL and tracking: the template alone
    state = pooled.pool.state()
    again = TemplatePool.from_state({k: [s.numpy() for s in v] if k == "sums" else v for k, v in state.items()})
    assert all(torch.equal(a, b) for a, b in zip(again.sums, pooled.pool.sums))


def test_every_kind_of_predictor_matches_against_its_pool(tiny_models):
    cfg, data, plain, adapter, singles = tiny_models
    template = Template.from_data(data, cfg.data.template)
    rows = [1, 2, 3, 4]
    fifth = Template.from_data(data, data.ids[5])
    kinds = [lambda t: ModelPredictor(plain, t, [4, 2], CPU, 4), lambda t: ModelPredictor(adapter, t, [4, 2], CPU, 4),
             lambda t: ModelSetPredictor(singles, t, [4, 2], CPU, 4, stack_size=1)]
    for kind in kinds:
        predictor = kind(template)
        pool = predictor.pool_at(data, rows, predictor.predict_grid(data, rows))
        assert pool.landmarks == 2 and pool.images == 4
        # image 5's vectors at its landmarks outvoting the template a thousand times answer as image 5
        # would as the template: each landmark's sums reach that landmark's matching
        heavy = predictor.pool_at(data, [5], data.landmarks[[5]][:, [4, 2]])
        heavy = TemplatePool(tuple(s * 1000 for s in heavy.sums), 1)
        assert np.array_equal(predictor.with_pool(heavy).predict_grid(data, rows), kind(fifth).predict_grid(data, rows))
        assert not np.array_equal(predictor.predict_grid(data, rows), kind(fifth).predict_grid(data, rows))
        assert predictor.with_pool(pool).plain().pool is None


@pytest.fixture(scope="module")
def tiny_models():
    cfg = tiny_cfg()
    torch.manual_seed(0)
    plain = CC2D(cfg.net, cfg.backbone)
    adapter = CC2D(cfg.net, cfg.backbone, AdapterBlocks(n_landmarks=2, extra=2))
    singles = [CC2D(cfg.net, cfg.backbone) for _ in range(2)]
    return cfg, phantom_grids(cfg)[0], plain, adapter, singles

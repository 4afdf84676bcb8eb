"""The label-free shape check: the similarity fit, the shape model from answers, the guard."""
import numpy as np
import pytest
import torch

from cc2dkit.inference.cascade import cascade_argmax
from cc2dkit.inference.shape import (ShapeCheck, ShapeModel, ShapeSettings, robust_fit, robust_ridge, similarity_fit,
                                    spreads)

REF = np.array([[10.0, 10.0], [30.0, 12.0], [22.0, 30.0], [12.0, 26.0], [34.0, 28.0], [20.0, 18.0]])


def _similar(points, angle, scale, shift):
    c, s = np.cos(angle), np.sin(angle)
    return scale * points @ np.array([[c, -s], [s, c]]).T + shift


def test_similarity_fit_recovers_a_transform_and_the_robust_fit_ignores_one_wild_point():
    dst = _similar(REF, 0.2, 1.3, np.array([5.0, -3.0]))
    a, t = similarity_fit(REF, dst, np.ones(len(REF)))
    np.testing.assert_allclose(REF @ a.T + t, dst, atol=1e-9)
    wild = dst.copy()
    wild[2] += [25.0, -20.0]
    a, t, w = robust_fit(REF, wild)
    fitted = REF @ a.T + t
    assert np.linalg.norm(fitted[[0, 1, 3, 4, 5]] - dst[[0, 1, 3, 4, 5]], axis=1).max() < 1.0
    assert w[2] < 0.1 * np.delete(w, 2).min()
    mirrored = REF * [-1.0, 1.0]  # a mirror image is never fitted as a rotation of the reference
    a, _ = similarity_fit(REF, mirrored, np.ones(len(REF)))
    assert np.linalg.det(a) > 0


def _answers(rng, n=40, noise=0.5):
    return np.stack([_similar(REF, rng.uniform(-0.2, 0.2), rng.uniform(0.9, 1.1), rng.uniform(-5, 5, 2))
                     + rng.normal(0, noise, REF.shape) for _ in range(n)])


def test_shape_model_learns_the_spread_and_expects_a_wrong_landmark_where_the_others_say():
    rng = np.random.default_rng(0)
    answers = _answers(rng)
    answers[:, 4] += rng.normal(0, 3.0, (len(answers), 2))  # landmark 4 varies more
    model = ShapeModel.from_answers(answers, REF)
    assert model.sigma[4] > 2 * np.delete(model.sigma, 4).max()
    query = _similar(REF, 0.1, 1.0, np.array([2.0, 1.0]))
    wrong = query.copy()
    wrong[1] += [15.0, 0.0]
    mu, sigma = model.expected(wrong)
    assert np.linalg.norm(mu[1] - query[1]) < 2.0  # landmark 1's own (wrong) answer does not pull it
    assert np.linalg.norm(wrong[1] - mu[1]) > 3 * sigma[1]
    with pytest.raises(ValueError, match="N >= 5"):
        ShapeModel.from_answers(answers[:3], REF)


def test_offsets_are_read_in_the_mean_shapes_frame_whatever_the_images_pose():
    rng = np.random.default_rng(4)
    model = ShapeModel.from_answers(_answers(rng), REF)
    points = _similar(REF, 0.1, 1.0, np.array([2.0, 1.0])) + rng.normal(0, 1.0, REF.shape)
    moved = _similar(points, -0.4, 1.7, np.array([-6.0, 9.0]))  # the same answers on a turned, larger image
    np.testing.assert_allclose(model.offsets(moved[None]), model.offsets(points[None]), atol=1e-9)
    mu, spread = model.expected(moved)  # the offset's length is the distance over the fit's scale
    np.testing.assert_allclose(np.linalg.norm(model.offsets(moved[None])[0], axis=1),
                               np.linalg.norm(moved - mu, axis=1) * model.sigma / spread, atol=1e-9)


def test_a_landmark_sliding_along_a_ridge_gets_its_spread_across_it_and_a_round_one_keeps_its_own():
    rng = np.random.default_rng(5)
    n = 200
    answers = _answers(rng, n=n, noise=0.3)
    ridge = np.array([np.cos(0.6), np.sin(0.6)])  # landmark 2 slides along this line of the shape...
    slide = rng.normal(0, 4.0, n)[:, None] * ridge + rng.normal(0, 0.3, (n, 2))
    round_ = rng.normal(0, 2.0, (n, 2))  # ...landmark 4 scatters evenly
    for i in range(n):  # each image's pose turns the shape, and its slide with it
        a, t = similarity_fit(REF, answers[i], np.ones(len(REF)))
        answers[i, 2] += slide[i] @ a.T
        answers[i, 4] += round_[i] @ a.T
    model = ShapeModel.from_answers(answers, REF)
    isotropic, across = spreads(model.offsets(answers))
    np.testing.assert_array_equal(model.sigma, across)  # the model's spreads are the across-ridge ones
    assert isotropic[2] > 2.0 and across[2] < 1.3  # the slide widens the round spread, not the one across it
    assert across[4] > 0.75 * isotropic[4] > 1.2  # no ridge: about the same (a round cloud's short axis a bit less)
    assert (across <= isotropic).all() and (across >= 1.0).all()
    stuck = np.full((6, len(REF), 2), 5.0)  # a model that answers every landmark at one pixel
    np.testing.assert_array_equal(ShapeModel.from_answers(stuck, REF).sigma, np.ones(len(REF)))  # no error, the floor


def _guarded(model, maps, reach, prior=None):
    """What a predictor with the check answers (the maps and the check's factor, read by the argmax),
    and which answers the factor guards (B, K)."""
    factor = ShapeCheck(model, ShapeSettings(reach, prior)).guard(maps, cascade_argmax)
    picked = cascade_argmax(torch.cat([maps, factor[None]])).double().numpy()
    return picked, (factor != 1).flatten(2).any(dim=2).numpy()


def test_the_check_repicks_only_the_far_answer_at_the_second_peak_near_its_place():
    rng = np.random.default_rng(1)
    model = ShapeModel.from_answers(_answers(rng), REF)
    g = 48
    truth = _similar(REF, 0.05, 1.0, np.array([3.0, 2.0]))
    ys, xs = np.mgrid[0:g, 0:g]
    maps = np.stack([np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 4.0) for x, y in truth])  # (K, G, G)
    maps[1] = 0.6 * maps[1] + np.exp(-((xs - 44) ** 2 + (ys - 44) ** 2) / 4.0)  # a stronger look-alike far off
    maps = torch.tensor(maps, dtype=torch.float32)[None, None]  # (S=1, B=1, K, G, G)
    answers = cascade_argmax(maps).double().numpy()  # (B=1, K, 2): the unchecked reading
    assert answers[0, 1].tolist() == [44.0, 44.0]  # the cascade's argmax took the look-alike
    guarded, moved = _guarded(model, maps, 3.0)
    assert moved[0].tolist() == [False, True, False, False, False, False]
    far_only = ShapeCheck(model, ShapeSettings(3.0))
    factor, far, checked = far_only.passes(maps, cascade_argmax)  # what guard's variants read
    assert far[0].tolist() == [False, True, False, False, False, False]
    np.testing.assert_allclose(checked[0, 1], truth[1], atol=1.0)  # the first pass re-picked it already
    torch.testing.assert_close(factor, far_only.guard(maps, cascade_argmax))
    np.testing.assert_allclose(guarded[0, 1], truth[1], atol=1.0)
    np.testing.assert_array_equal(np.delete(guarded[0], 1, axis=0), np.delete(answers[0], 1, axis=0))


def _peaks(g, centres, weights=None):
    """A (G, G) map with a Gaussian peak at each centre, of the given heights (default 1)."""
    ys, xs = np.mgrid[0:g, 0:g]
    weights = np.ones(len(centres)) if weights is None else weights
    return sum(w * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 4.0) for (x, y), w in zip(centres, weights))


def test_the_second_pass_finds_an_answer_a_far_neighbour_hid_and_spares_the_good_ones():
    rng = np.random.default_rng(1)
    model = ShapeModel.from_answers(_answers(rng), REF, neighbours=2)  # 2 neighbours: a wrong one drags a fit
    assert model.groups()[0].tolist() == [5, 3] and model.groups()[1].tolist() == [5, 4]
    g = 48
    truth = _similar(REF, 0.05, 1.0, np.array([3.0, 2.0]))
    wrong = truth.copy()
    wrong[5] += [9.0, 9.0]  # landmark 5 takes a look-alike...
    wrong[0] = model.expected(wrong)[0][0]  # ...and 0 one exactly where 5's wrong answer expects it
    maps = np.stack([_peaks(g, [t]) for t in truth])
    for k in (0, 5):
        maps[k] = _peaks(g, [truth[k], wrong[k]], [0.6, 1.0])
    maps = torch.tensor(maps, dtype=torch.float32)[None, None]  # (S=1, B=1, K, G, G)
    error = lambda points: np.linalg.norm(points[0] - truth, axis=1)  # noqa: E731
    unchecked = cascade_argmax(maps).double().numpy()
    assert error(unchecked)[0] > 10 and error(unchecked)[5] > 10
    one_pass = cascade_argmax(torch.cat([maps, model.priors(unchecked, 3.0, g)[0][None]])).double().numpy()
    assert error(one_pass)[0] > 10 and error(one_pass)[1] > 5  # 0 looks right; the good 1 is pulled off
    guarded, _ = _guarded(model, maps, 3.0)
    assert error(guarded)[[0, 5]].max() < 2.0 and error(guarded)[1] < 1.0


def _two_parts(rng, n=40, noise=0.3):
    """Answers of a shape in two parts that move independently (a jaw against a skull): 4 landmarks
    each, every part under its own random similarity per image."""
    left = 4 * np.array([[10.0, 10.0], [16.0, 9.0], [12.0, 17.0], [17.0, 15.0]])
    right = left + [160.0, 100.0]
    sets = []
    for _ in range(n):
        parts = [_similar(p - p.mean(0), rng.uniform(-0.3, 0.3), rng.uniform(0.85, 1.15),
                          p.mean(0) + rng.uniform(-16, 16, 2)) for p in (left, right)]
        sets.append(np.concatenate(parts) + rng.normal(0, noise, (8, 2)))
    return np.stack(sets), np.concatenate([left, right])


def test_local_fits_expect_a_landmark_from_its_own_part_and_are_chosen_without_labels():
    rng = np.random.default_rng(2)
    answers, ref = _two_parts(rng)
    local, scores = ShapeModel.choose(answers, ref, (3, None))
    assert local.neighbours == 3 and scores[3] < 0.5 * scores[None]
    assert all(set(g) <= set(range(4)) for g in local.groups()[:4])  # each part's landmarks fit to their own part
    assert all(set(g) <= set(range(4, 8)) for g in local.groups()[4:])
    everyone = ShapeModel.from_answers(answers, ref)
    assert [len(g) for g in everyone.groups()] == [7] * 8
    test, _ = _two_parts(np.random.default_rng(3), n=10, noise=0.0)
    errors = {n: np.linalg.norm(np.stack([m.expected(t)[0] for t in test]) - test, axis=-1).mean()
              for n, m in ((3, local), (None, everyone))}
    assert errors[3] < 1.0 and errors[None] > 3 * errors[3]
    assert local.sigma.max() < everyone.sigma.min()
    with pytest.raises(ValueError, match=r"neighbours must be in \[2, K - 1 = 7\]"):
        ShapeModel.from_answers(answers, ref, neighbours=8)


def test_priors_are_one_except_a_gaussian_at_the_far_answers_place():
    rng = np.random.default_rng(1)
    model = ShapeModel.from_answers(_answers(rng), REF)
    g = 48
    truth = _similar(REF, 0.05, 1.0, np.array([3.0, 2.0]))
    answers = np.array(truth)[None]
    answers[0, 1] = [44.0, 44.0]
    factor, far = model.priors(answers, 3.0, g)
    assert far[0].tolist() == [False, True, False, False, False, False]
    assert torch.equal(factor[0, [0, 2, 3, 4, 5]], torch.ones(5, g, g))
    mu, sigma = model.expected(answers[0])
    peak = np.unravel_index(int(factor[0, 1].argmax()), (g, g))[::-1]
    assert np.linalg.norm(np.array(peak) - mu[1]) <= 1.0 and float(factor[0, 1].min()) < 1e-3


def test_the_prior_weighs_every_answer_far_ones_by_the_reach_the_others_by_the_prior():
    rng = np.random.default_rng(1)
    model = ShapeModel.from_answers(_answers(rng), REF)
    g = 48
    answers = np.array(_similar(REF, 0.05, 1.0, np.array([3.0, 2.0])))[None]
    answers[0, 1] = [44.0, 44.0]
    factor, far = model.priors(answers, 3.0, g, prior=1.5)
    assert far[0].tolist() == [False, True, False, False, False, False]
    mu, sigma = model.expected(answers[0])
    for k, width in ((0, 1.5), (1, 3.0), (4, 1.5)):  # a Gaussian of width x sigma_k around mu_k
        x, y = int(round(mu[k, 0])), int(round(mu[k, 1]))
        d2 = (x - mu[k, 0]) ** 2 + (y - mu[k, 1]) ** 2
        expect = lambda dx: np.exp(-0.5 * ((x + dx - mu[k, 0]) ** 2 + (y - mu[k, 1]) ** 2 - d2)  # noqa: E731
                                   / (width * sigma[k]) ** 2)
        at = factor[0, k, y]
        np.testing.assert_allclose(float(at[x + 2] / at[x]), expect(2), rtol=1e-4)
    assert torch.equal(model.priors(answers, 3.0, g)[0][0, 0], torch.ones(g, g))  # no prior: far answers only


def test_the_capped_prior_holds_a_straying_landmark_as_firmly_as_the_median_and_leaves_the_rest():
    rng = np.random.default_rng(1)
    answers = _answers(rng)
    answers[:, 2] += rng.normal(0, 4.0, (len(answers), 2))  # landmark 2's answers stray (as gonion's do)
    model = ShapeModel.from_answers(answers, REF)
    median = np.median(model.sigma)
    assert model.sigma[2] > 1.5 * median  # the straying landmark's spread is the widest
    np.testing.assert_array_equal(model.prior_sigma(False), model.sigma)
    np.testing.assert_array_equal(model.prior_sigma(True), np.minimum(model.sigma, median))
    g = 48
    points = np.array(_similar(REF, 0.05, 1.0, np.array([3.0, 2.0])))[None]
    plain, far = model.priors(points, 3.0, g, prior=2.0)
    capped, far_capped = model.priors(points, 3.0, g, prior=2.0, prior_cap=True)
    assert np.array_equal(far, far_capped) and not far.any()
    mu, sigma = model.expected(points[0])
    for k in range(len(REF)):  # each Gaussian's width: 2 x its (capped) spread on this image
        x, y = int(round(mu[k, 0])), int(round(mu[k, 1]))
        width = 2.0 * sigma[k] * min(1.0, median / model.sigma[k])
        ratio = float(capped[0, k, y, x + 3] / capped[0, k, y, x])
        expect = np.exp(-0.5 * ((x + 3 - mu[k, 0]) ** 2 - (x - mu[k, 0]) ** 2) / width ** 2)
        np.testing.assert_allclose(ratio, expect, rtol=1e-4)
        if model.sigma[k] <= median:
            assert torch.equal(capped[0, k], plain[0, k])  # at or under the median: the prior as it was
    assert float(capped[0, 2].sum()) < 0.5 * float(plain[0, 2].sum())  # the straying one: held tighter
    check = ShapeCheck.from_state(ShapeCheck(model, ShapeSettings(3.0)).state(),
                                  ShapeSettings(3.0, 2.0, prior_cap=True))
    assert check.settings.prior_cap and check.settings.prior == 2.0  # config values: not in the model file


def test_the_prior_decides_along_a_ridge_and_leaves_crisp_peaks_and_the_far_check_as_they_were():
    rng = np.random.default_rng(1)
    answers = _answers(rng)
    answers[:, 2] += rng.normal(0, 4.0, (len(answers), 2))  # landmark 2's answers spread (as gonion's do)
    model = ShapeModel.from_answers(answers, REF)
    g = 48
    truth = _similar(REF, 0.05, 1.0, np.array([3.0, 2.0]))
    maps = np.stack([_peaks(g, [t]) for t in truth])
    ys, xs = np.mgrid[0:g, 0:g]
    x2, y2 = truth[2]  # landmark 2 on a ridge of near-equal matches (an edge), best 6-8 px to the left: in reach
    maps[2] = np.exp(-(ys - y2) ** 2 / 4.0) * (np.abs(xs - x2 + 2) <= 6) * (1.0 - 0.01 * (xs - x2 + 6).clip(0))
    maps[1] = 0.6 * maps[1] + _peaks(g, [(44.0, 44.0)])  # and landmark 1 a stronger look-alike far off
    maps = torch.tensor(maps, dtype=torch.float32)[None, None]  # (S=1, B=1, K, G, G)
    error = lambda points: np.linalg.norm(points[0] - truth, axis=1)  # noqa: E731
    hard, far = _guarded(model, maps, 3.0)
    assert error(hard)[2] > 5 and far[0].tolist() == [False, True, False, False, False, False]
    soft, weighed = _guarded(model, maps, 3.0, prior=1.5)
    assert error(soft)[2] < 1.5 and weighed[0].all()  # the ridge's point the other landmarks expect
    assert error(soft)[1] < 1.0  # the far answer re-picked as before
    assert np.abs(np.delete(soft[0] - hard[0], [1, 2], axis=0)).max() <= 1.0  # crisp peaks: a pixel at most


def test_shape_misses_places_each_miss_against_the_expectations_from_the_answers_and_the_truth():
    from cc2dkit.analysis import shape_misses

    mean = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [5.0, 14.0]])
    model = ShapeModel(mean, np.ones(5))
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    truth = np.stack([mean + 20.0, mean * 1.5 + 30.0, mean @ rot.T + 40.0])  # (3, 5, 2): one skull, three poses
    answers = truth.copy()
    answers[1, 4] += (6.0, 8.0)  # one answer 10 grid px off
    mm = np.array([[0.1, 0.1], [2.0, 1.0], [0.1, 0.1]])  # image 1: 2 mm per px in x, 1 in y
    names, ids = ["a", "b", "c", "d", "e"], ["i0", "i1", "i2"]
    per, misses = shape_misses(model, answers, truth, mm, names, ids, gross=10.0)
    np.testing.assert_allclose(per["truth-oracle p90"], 0.0, atol=1e-6)  # a similarity of the mean: the oracle is exact
    assert per["> 10"].tolist() == [0, 0, 0, 0, 1]
    assert misses[["image", "landmark"]].values.tolist() == [["i1", "e"]]
    m = misses.iloc[0]
    assert (m["x"], m["y"]) == pytest.approx((12.0, 8.0))
    assert m["error"] == pytest.approx(np.hypot(12.0, 8.0))
    assert m["answer-expected"] == pytest.approx(m["error"], rel=1e-6)  # the others are right: expected = truth
    assert m["truth-expected"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        shape_misses(model, answers[:2], truth, mm, names, ids)


def test_robust_ridge_recovers_a_line_and_its_leave_one_out_residuals_are_those_of_refits():
    rng = np.random.default_rng(7)
    x = rng.normal(0, 2.0, (30, 3))
    y = x @ np.array([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]]) + [3.0, -1.0] + rng.normal(0, 0.1, (30, 2))
    coef, loo = robust_ridge(x, y, ridge=1e-3, iterations=0)
    np.testing.assert_allclose(coef, [[3.0, -1.0], [1.0, 0.0], [0.5, -1.0], [0.0, 2.0]], atol=0.1)
    for i in (0, 11, 29):  # the hat-matrix shortcut equals refitting without image i
        keep = np.arange(30) != i
        c = robust_ridge(x[keep], y[keep], ridge=1e-3, iterations=0)[0]
        np.testing.assert_allclose(loo[i], y[i] - np.concatenate([[1.0], x[i]]) @ c, atol=1e-8)
    wild = y.copy()
    wild[:3] += 40.0  # three wrong answers barely move the robust line
    np.testing.assert_allclose(robust_ridge(x, wild, ridge=1e-3)[0][1:], coef[1:], atol=0.15)


def _ramus(rng, n, length, width):
    """Shapes whose landmark 2 sits lower the further landmarks 3 and 5 reach down (a 'longer ramus')
    and further right the further landmark 1 does: variations a mean shape moved rigidly cannot
    follow, ones its neighbours' places give away."""
    out = _answers(rng, n=n, noise=0.2)
    for i in range(n):
        a, t = similarity_fit(REF, out[i], np.ones(len(REF)))
        moves = np.zeros_like(REF)
        moves[[3, 5], 1] = length[i]
        moves[1, 0] = width[i]
        moves[2] = [1.5 * width[i], 2.0 * length[i]]
        out[i] += moves @ a.T
    return out


def test_the_regression_expects_a_landmark_from_how_its_neighbours_sit_and_survives_the_model_file():
    rng = np.random.default_rng(8)
    answers = _ramus(rng, 120, rng.normal(0, 3.0, 120), rng.normal(0, 3.0, 120))
    rigid = ShapeModel.from_answers(answers, REF, neighbours=4)
    fitted = ShapeModel.from_answers(answers, REF, neighbours=4, regression=True)
    assert rigid.coef is None and fitted.coef.shape == (len(REF), 2 * 4 + 1, 2)
    assert fitted.sigma[2] < 0.5 * rigid.sigma[2]  # read from leave-one-out residuals, still narrower
    query = _ramus(rng, 1, np.array([4.0]), np.array([-3.0]))[0]  # landmark 2 far from the mean shape's place
    far_rigid = np.linalg.norm(rigid.expected(query)[0][2] - query[2])
    near = np.linalg.norm(fitted.expected(query)[0][2] - query[2])
    assert far_rigid > 6.0 and near < 2.0  # 1.1 with every training input kept; 1.6 with the far ones left out
    check = ShapeCheck(fitted, ShapeSettings(3.0, 2.0))
    again = ShapeCheck.from_state(check.state(), check.settings)
    np.testing.assert_allclose(again.model.expected(query)[0], fitted.expected(query)[0])
    saved = ShapeCheck(rigid, ShapeSettings(3.0)).state()
    old = {k: v for k, v in saved.items() if k not in ("coef", "input_sigma")}  # saved before
    assert ShapeCheck.from_state(old, ShapeSettings(3.0)).model.coef is None
    np.testing.assert_allclose(again.model.input_sigma, fitted.input_sigma)
    chosen = ShapeCheck.fit(answers, REF, ShapeSettings(3.0, regression=True)).model
    assert chosen.coef is not None and chosen.neighbours in (4, None)
    for j in (3, 4):  # one neighbour's gross miss: left out of the inputs, it barely moves the expectation
        wrong = query.copy()
        wrong[j] += [15.0, -12.0]
        assert fitted._wild(wrong, fitted._fits(wrong), fitted.input_sigma)[j]
        assert np.linalg.norm(fitted.expected(wrong)[0][2] - query[2]) < 4.0
        plain = ShapeModel(fitted.mean, fitted.sigma, 4, fitted.coef)  # every input as it is: dragged along
        assert np.linalg.norm(plain.expected(wrong)[0][2] - query[2]) > 8.0


def test_the_settings_carry_the_configs_shape_values_and_refuse_what_it_would_refuse():
    from cc2dkit.config import preset
    assert ShapeSettings.of(preset("cpu").eval) == ShapeSettings(3.0, 2.0, prior_cap=False, regression=False)
    capped = preset("cpu").replace(**{"eval.shape_prior_cap": True})  # an option, not the preset's
    assert ShapeSettings.of(capped.eval) == ShapeSettings(3.0, 2.0, prior_cap=True, regression=False)
    assert ShapeSettings.of(preset("smoke").eval) is None  # no shape check asked for
    regressed = preset("cpu").replace(**{"eval.shape_regression": True, "eval.shape_prior": None})
    assert ShapeSettings.of(regressed.eval) == ShapeSettings(3.0, None, False, True)
    for bad in ({"reach": 0.0}, {"reach": 3.0, "prior": -1.0}, {"reach": 3.0, "prior_cap": True}):
        with pytest.raises(ValueError, match="shape check"):
            ShapeSettings(**bad)

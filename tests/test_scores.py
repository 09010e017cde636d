"""Scorers against hand-computed cases, vectorisation cross-checks and every input error."""

import math

import numpy as np
import pytest

from scorecast import scores
from scorecast.scores import dynamic_uncertainty, el2n, forgetting, random_scores, tdds, trajectory_epochs
from scorecast.validation import ScorecastError

# ---------------------------------------------------------------- Dynamic Uncertainty

# Two samples, 4 epochs: A = 0.1, 0.2, 0.4, 0.7 and B = 0.5, 0.5, 0.5, 0.9.
DU_PROBS = np.array([[0.1, 0.5], [0.2, 0.5], [0.4, 0.5], [0.7, 0.9]])


def test_du_clean_by_hand():
    # window 3 -> windows start at epochs 0 and 1; sample std (divide by J-1 = 2).
    # A, window 0: 0.1 0.2 0.4, mean 7/30, deviations -4/30 -1/30 5/30, squares 42/900 -> var 7/300
    # A, window 1: 0.2 0.4 0.7, mean 13/30, deviations -7/30 -1/30 8/30, squares 114/900 -> var 19/300
    # A = (sqrt(7/300) + sqrt(19/300)) / 2 = (0.1527525 + 0.2516611) / 2 = 0.2022068
    # B, window 0: constant -> 0; window 1: 0.5 0.5 0.9, deviations -0.4/3 -0.4/3 0.8/3,
    #   squares 0.96/9, var 0.48/9 = 4/75 -> std 0.2309401;  B = 0.2309401 / 2 = 0.1154701
    out = dynamic_uncertainty(DU_PROBS, window=3)
    assert out.dtype == np.float64 and out.shape == (2,)
    np.testing.assert_allclose(out, [0.2022068355, 0.1154700538], rtol=1e-9)


def test_du_reference_by_hand():
    # 4 epochs, window 3: the reference variant would have 4-3-1 = 0 windows.
    with pytest.raises(ScorecastError, match="at least window\\+2=5 epochs"):
        dynamic_uncertainty(DU_PROBS, window=3, variant="reference")
    # 5 epochs (A gets 0.7, B gets 0.5 appended), window 2: epochs 0, 1 skipped, windows start at
    # epochs 2 and 3; population std of a pair = |a - b| / 2.
    # A: (0.4, 0.7) -> 0.15, (0.7, 0.7) -> 0;   mean 0.075
    # B: (0.5, 0.9) -> 0.2,  (0.9, 0.5) -> 0.2; mean 0.2
    probs = np.vstack([DU_PROBS, [[0.7, 0.5]]])
    np.testing.assert_allclose(dynamic_uncertainty(probs, window=2, variant="reference"), [0.075, 0.2], rtol=1e-9)
    # Same data, clean: windows start at 0..3, sample std of a pair = |a - b| / sqrt(2).
    # A: differences 0.1 0.2 0.3 0 -> 0.6 / sqrt(2) / 4;  B: 0 0 0.4 0.4 -> 0.8 / sqrt(2) / 4
    expected = np.array([0.6, 0.8]) / math.sqrt(2) / 4
    np.testing.assert_allclose(dynamic_uncertainty(probs, window=2), expected, rtol=1e-9)


def _du_slow(probs, window, variant):
    skip, ddof = (0, 1) if variant == "clean" else (2, 0)
    out = []
    for i in range(probs.shape[1]):
        series = probs[skip:, i]
        stds = [np.std(series[k : k + window], ddof=ddof) for k in range(len(series) - window + 1)]
        out.append(np.mean(stds))
    return np.array(out)


@pytest.mark.parametrize("variant", ["clean", "reference"])
@pytest.mark.parametrize("window", [2, 5, 10])
def test_du_matches_slow_loop(variant, window):
    probs = np.random.default_rng(window).random((12, 37))
    expected = _du_slow(probs, window, variant)
    np.testing.assert_allclose(dynamic_uncertainty(probs, window, variant), expected, rtol=1e-12)
    np.testing.assert_allclose(dynamic_uncertainty(probs, window, variant, chunk_size=5), expected, rtol=1e-12)


def test_du_window_equal_to_epochs():
    probs = np.random.default_rng(0).random((6, 4))
    np.testing.assert_allclose(dynamic_uncertainty(probs, window=6), probs.std(axis=0, ddof=1), rtol=1e-12)


@pytest.mark.parametrize(
    "probs, kwargs, match",
    [
        (DU_PROBS, {"window": 1}, "at least 2"),
        (DU_PROBS, {"window": 5}, "exceeds the 4 recorded epochs; record more epochs or use a smaller window"),
        (DU_PROBS, {"window": 2.0}, "positive integer"),
        (DU_PROBS, {"variant": "authors"}, "variant"),
        (DU_PROBS[:, 0], {"window": 2}, "2-D"),
        (np.where(DU_PROBS == 0.7, np.nan, DU_PROBS), {"window": 2}, "NaN"),
        (np.where(DU_PROBS == 0.7, np.inf, DU_PROBS), {"window": 2}, "NaN or infinite"),
        (DU_PROBS + 0.5, {"window": 2}, r"\[0, 1\]"),
        (-DU_PROBS, {"window": 2}, "not logits"),
    ],
)
def test_du_errors(probs, kwargs, match):
    with pytest.raises(ScorecastError, match=match):
        dynamic_uncertainty(probs, **kwargs)


# ---------------------------------------------------------------- TDDS

# T = 4 epochs, n = 2 samples, C = 3 classes.
# Sample 0 (third class always 0, contributing 0 * (log 1e-8 - log 1e-8) = 0):
#   (.5 .5 0), (.5 .5 0), (.25 .75 0), (.5 .5 0)
#   g0 = 0
#   g1 = .25 |ln(.25/.5)| + .75 |ln(.75/.5)| = .25 ln2 + .75 ln1.5 = 0.4773856
#   g2 = .5 |ln(.5/.25)| + .5 |ln(.5/.75)|   = .5 ln2 + .5 ln1.5   = 0.5493061
# Sample 1: (.25 .25 .5), (.5 .25 .25), (.5 .25 .25), (.25 .25 .5)
#   g0 = .5 ln2 + 0 + .25 ln2 = .75 ln2 = 0.5198604 = h;  g1 = 0;  g2 = .25 ln2 + 0 + .5 ln2 = h
# (the 1e-8 inside the logs moves these by < 1e-7 relative)
TDDS_PROBS = np.array(
    [
        [[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]],
        [[0.5, 0.5, 0.0], [0.5, 0.25, 0.25]],
        [[0.25, 0.75, 0.0], [0.5, 0.25, 0.25]],
        [[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]],
    ]
)


def test_tdds_window_3_by_hand():
    # Windows k = 0, 1 each hold 2 transitions; v = || g - mean g || of two values = |a - b| / sqrt 2.
    # Weights: k=0: 0.9 * 0.1^1 = 0.09;  k=1: 0.9 * 0.1^0 = 0.9.
    # Sample 0: v0 = |0 - 0.4773856| / sqrt2 = 0.3375626; v1 = |0.4773856 - 0.5493061| / sqrt2 = 0.0508555
    #   score = 0.09 * 0.3375626 + 0.9 * 0.0508555 = 0.0761506
    # Sample 1: v0 = v1 = h / sqrt2 = 0.3675968;  score = 0.99 * 0.3675918 = 0.3639208
    out = tdds(TDDS_PROBS, window=3)
    assert out.dtype == np.float64 and out.shape == (2,)
    np.testing.assert_allclose(out, [0.0761505727, 0.3639208358], rtol=1e-6)


def test_tdds_window_equal_to_trajectory_by_hand():
    # One window over g0, g1, g2, weight 0.9 (the authors' T = J setting).
    # Sample 0: mean = (0 + 0.4773856 + 0.5493061) / 3 = 0.3422306,
    #   deviations -0.3422306, 0.1351550, 0.2070755 -> norm 0.4222190 -> score 0.3799972
    # Sample 1: g = (h, 0, h), mean 2h/3, deviations h/3, -2h/3, h/3 -> norm h sqrt6 / 3
    #   -> score 0.9 * 0.5198604 * 0.8164966 = 0.3820178
    np.testing.assert_allclose(tdds(TDDS_PROBS, window=4), [0.3799971659, 0.3820178045], rtol=1e-6)


def test_tdds_decay_one_keeps_only_last_window():
    # decay = 1: weights (1 - 1)^1 = 0 for k=0 and 1 * 0^0 = 1 for k=1 -> v1 alone.
    np.testing.assert_allclose(tdds(TDDS_PROBS, window=3, decay=1.0), [0.0508554861, 0.3675968038], rtol=1e-6)


def _softmax_trajectory(shape, seed):
    logits = np.random.default_rng(seed).normal(size=shape)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_tdds_chunked_equals_unchunked(tmp_path):
    probs = _softmax_trajectory((7, 23, 5), seed=1)
    full = tdds(probs, window=4)
    for chunk_size in (1, 4, 23, 100):
        np.testing.assert_allclose(tdds(probs, window=4, chunk_size=chunk_size), full, rtol=1e-14)
    mm = np.lib.format.open_memmap(tmp_path / "traj.npy", mode="w+", dtype=np.float32, shape=probs.shape)
    mm[:] = probs
    mm.flush()
    mapped = np.load(tmp_path / "traj.npy", mmap_mode="r")
    np.testing.assert_allclose(tdds(mapped, window=4, chunk_size=6), tdds(probs.astype(np.float32), window=4))


def test_tdds_constant_trajectory_scores_zero():
    probs = np.broadcast_to(np.array([0.2, 0.3, 0.5]), (5, 4, 3))
    np.testing.assert_array_equal(tdds(probs, window=3), np.zeros(4))


@pytest.mark.parametrize(
    "probs, kwargs, match",
    [
        (TDDS_PROBS, {"window": 5}, "exceeds the 4 recorded epochs"),
        (TDDS_PROBS, {"window": 2}, "at least 3"),
        (TDDS_PROBS, {"window": 1}, "at least 3"),
        (TDDS_PROBS, {"window": 3, "decay": 0.0}, r"decay=0.0 must lie in \(0, 1\]"),
        (TDDS_PROBS, {"window": 3, "decay": 1.5}, "decay"),
        (TDDS_PROBS[0], {"window": 3}, "3-D"),
        (np.where(TDDS_PROBS == 0.75, np.nan, TDDS_PROBS), {"window": 3}, "NaN"),
        (TDDS_PROBS * 3, {"window": 3}, r"\[0, 1\]"),
        (TDDS_PROBS, {"window": 3, "chunk_size": 0}, "chunk_size must be a positive integer"),
    ],
)
def test_tdds_errors(probs, kwargs, match):
    with pytest.raises(ScorecastError, match=match):
        tdds(probs, **kwargs)


def test_trajectory_epochs():
    assert trajectory_epochs(50) == list(range(40, 50))
    assert trajectory_epochs(50, length=10, position="first") == list(range(10))
    assert trajectory_epochs(3, length=3) == [0, 1, 2]
    with pytest.raises(ScorecastError, match="exceeds the 3 recorded epochs"):
        trajectory_epochs(3, length=4)
    with pytest.raises(ScorecastError, match="position"):
        trajectory_epochs(10, position="middle")
    with pytest.raises(ScorecastError, match="positive integer"):
        trajectory_epochs(0)


# ---------------------------------------------------------------- EL2N


def test_el2n_single_run_by_hand():
    # sample 0: p = (.5 .5 0), y = 0 -> error (-.5 .5 0), norm sqrt(.5) = 0.7071068
    # sample 1: p = (.2 .3 .5), y = 2 -> error (.2 .3 -.5), norm sqrt(.04 + .09 + .25) = sqrt(.38) = 0.6164414
    probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    np.testing.assert_allclose(el2n(probs, [0, 2]), [0.7071067812, 0.6164414003], rtol=1e-9)


def test_el2n_ensemble_by_hand():
    # second run predicts both labels perfectly (error 0) -> mean halves: 0.3535534, 0.3082207
    probs = np.array([[[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    np.testing.assert_allclose(el2n(probs, np.array([0, 2])), [0.3535533906, 0.3082207001], rtol=1e-9)


@pytest.mark.parametrize(
    "probs, labels, match",
    [
        (np.full((2, 3), 1 / 3), [0, 3], "only 3 classes"),
        (np.full((2, 3), 1 / 3), [0, 1, 2], "2 are expected"),
        (np.full((2, 3), 1 / 3), [0.0, 1.0], "integer class labels"),
        (np.full((2, 3), 1 / 3), [0, -1], "non-negative"),
        (np.full(3, 1 / 3), [0], "n_classes"),
        (np.full((2, 3), np.nan), [0, 1], "NaN"),
        (np.full((2, 3), 2.0), [0, 1], "not logits"),
    ],
)
def test_el2n_errors(probs, labels, match):
    with pytest.raises(ScorecastError, match=match):
        el2n(probs, labels)


# ---------------------------------------------------------------- forgetting

# columns = samples, rows = epochs
CORRECT = np.array(
    [
        [1, 0, 0, 1],
        [0, 1, 0, 1],
        [1, 1, 0, 0],
        [0, 1, 0, 1],
    ],
    dtype=bool,
)


def test_forgetting_by_hand():
    # sample 0: 1 0 1 0 -> two 1->0 transitions; sample 1: 0 1 1 1 -> 0;
    # sample 2: never correct; sample 3: 1 1 0 1 -> 1.
    # "max": never learned = max(2, 0, 0, 1) + 1 = 3;  "zero": 0 (authors' code).
    np.testing.assert_array_equal(forgetting(CORRECT), [2.0, 0.0, 3.0, 1.0])
    np.testing.assert_array_equal(forgetting(CORRECT.astype(int), never_learned="zero"), [2.0, 0.0, 0.0, 1.0])
    assert forgetting(CORRECT).dtype == np.float64


@pytest.mark.parametrize(
    "correct, kwargs, match",
    [
        (CORRECT, {"never_learned": "min"}, "never_learned"),
        (CORRECT[0], {}, "2-D"),
        (CORRECT * 2, {}, "booleans"),
    ],
)
def test_forgetting_errors(correct, kwargs, match):
    with pytest.raises(ScorecastError, match=match):
        forgetting(correct, **kwargs)


# ---------------------------------------------------------------- random


def test_random_scores():
    a = random_scores(100, seed=3)
    np.testing.assert_array_equal(a, np.random.default_rng(3).random(100))
    assert a.shape == (100,) and a.min() >= 0 and a.max() < 1
    assert not np.array_equal(a, random_scores(100, seed=4))
    with pytest.raises(ScorecastError, match="positive integer"):
        random_scores(0, seed=0)
    with pytest.raises(ScorecastError, match="seed"):
        random_scores(5, seed=-1)


def test_prototypicality_scores_distance_to_the_nearest_centroid():
    # clusters {0, 0.1, -0.1, 4} (centroid 1.0) and {10, 10.1, 9.9} (centroid 10): by hand the
    # distances are 1.0, 0.9, 1.1, 0.0, 0.1, 0.1 and 3.0 for the outlier at 4
    features = np.array([[0.0], [0.1], [-0.1], [10.0], [10.1], [9.9], [4.0]])
    values = scores.prototypicality(features, clusters=2, seed=0)
    np.testing.assert_allclose(values, [1.0, 0.9, 1.1, 0.0, 0.1, 0.1, 3.0], atol=1e-6)
    with pytest.raises(ScorecastError, match="clusters"):
        scores.prototypicality(features, clusters=8)


def test_zero_shot_coreset_matches_hand_computed_expectation():
    # 1-D features [0, 0, 10]: draws come from triangular(0, median 0, 10), so P(draw > 5) = 0.25.
    # Below 5 sample 0 wins (+1; argmin takes the first duplicate) and its exact duplicate 1 takes -1;
    # above 5 sample 2 wins (+1) and its two equidistant neighbours take -0.5 each. Per draw, in
    # expectation: sample 0 +0.625, sample 1 -0.875, sample 2 +0.25 -> min-max scaled 1, 0, 0.75.
    values = scores.zero_shot_coreset(np.array([[0.0], [0.0], [10.0]]), draws=20000, sample_dim=1, redundancy_nn=2, seed=0)
    np.testing.assert_allclose(values, [1.0, 0.0, 0.75], atol=0.02)


def test_zero_shot_coreset_contract_and_seeding():
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal(0, 0.01, (60, 3)), [[1.0, 1.0, 1.0]]])
    values = scores.zero_shot_coreset(features, draws=3000, redundancy_nn=10, seed=1)
    assert values.shape == (61,) and values.dtype == np.float64 and values.min() == 0 and values.max() == 1
    assert values[60] > np.median(values)  # the isolated sample covers a region alone
    np.testing.assert_array_equal(values, scores.zero_shot_coreset(features, draws=3000, redundancy_nn=10, seed=1))
    assert not np.array_equal(values, scores.zero_shot_coreset(features, draws=3000, redundancy_nn=10, seed=2))


@pytest.mark.parametrize("kwargs, message", [({"sample_dim": 4}, "sample_dim=4 exceeds"), ({"draws": 0}, "draws"),
                                             ({"redundancy_exp": -1.0}, "redundancy_exp"), ({"redundancy_nn": 0}, "redundancy_nn")])
def test_zero_shot_coreset_rejects_bad_options(kwargs, message):
    with pytest.raises(ScorecastError, match=message):
        scores.zero_shot_coreset(np.zeros((5, 3)), **kwargs)

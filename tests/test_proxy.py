"""Proxy-uncertainty extrapolators (scorecast.proxy) and their pipeline stage."""

import numpy as np
import pytest

from scorecast import proxy
from scorecast.pipeline import Pipeline
from scorecast.validation import ScorecastError

# 2 views x 3 samples x 2 classes; labels [0, 1, 0]
PROBS = np.array([
    [[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]],
    [[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]],
])
LABELS = np.array([0, 1, 0])


def test_features_by_hand():
    # p1mp on view 0: p_true = 0.9, 0.6, 0.5 -> 0.09, 0.24, 0.25
    np.testing.assert_allclose(proxy.proxy_feature(PROBS, "p1mp", LABELS), [0.09, 0.24, 0.25])
    # aug_std (ddof 1) of p_true over views: (0.9, 0.7) -> 0.1414, (0.6, 0.8) -> 0.1414, (0.5, 0.5) -> 0
    np.testing.assert_allclose(proxy.proxy_feature(PROBS, "aug_std", LABELS), [0.02**0.5, 0.02**0.5, 0.0], atol=1e-12)
    # entropy of the mean distribution: (0.8, 0.2), (0.3, 0.7), (0.5, 0.5)
    expected = [-(0.8 * np.log(0.8) + 0.2 * np.log(0.2)), -(0.3 * np.log(0.3) + 0.7 * np.log(0.7)), np.log(2)]
    np.testing.assert_allclose(proxy.proxy_feature(PROBS, "entropy"), expected)
    # margin: 1 - (top1 - top2) of the mean: 1 - 0.6, 1 - 0.4, 1 - 0
    np.testing.assert_allclose(proxy.proxy_feature(PROBS, "margin"), [0.4, 0.6, 1.0])


def test_extrapolator_contract_keeps_subset_scores_and_maps_onto_their_distribution():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=(4, 50))  # (K=4, n=50, C=3)
    labels = rng.integers(0, 3, 50)
    subset = np.arange(0, 50, 5)
    subset_scores = rng.normal(size=len(subset))
    out = proxy.proxy_uncertainty(probs, subset, subset_scores, labels, "aug_std")
    assert out.shape == (50,)
    np.testing.assert_array_equal(out[subset], subset_scores)
    rest = np.setdiff1d(np.arange(50), subset)
    assert out[rest].min() >= subset_scores.min() and out[rest].max() <= subset_scores.max()
    # order of the unseen samples follows the feature
    feature = proxy.proxy_feature(probs, "aug_std", labels)[rest]
    assert np.all(np.diff(out[rest][np.argsort(feature)]) >= 0)
    np.testing.assert_array_equal(out, proxy.proxy_uncertainty(probs, subset, subset_scores, labels, "aug_std"))


def _whole_array_feature(probs, kind, labels):
    """The feature computed on the whole array upcast to float64 at once (the pre-streaming code)."""
    from scipy import stats

    probs = np.asarray(probs, dtype=np.float64)
    true_prob = probs[:, np.arange(probs.shape[1]), labels]
    mean = probs.mean(axis=0)
    top2 = np.sort(mean, axis=1)[:, -2:]
    return {"p1mp": true_prob[0] * (1 - true_prob[0]), "aug_std": true_prob.std(axis=0, ddof=1),
            "entropy": stats.entropy(mean, axis=1), "margin": 1.0 - (top2[:, 1] - top2[:, 0])}[kind]


@pytest.mark.parametrize("kind", proxy.FEATURES)
def test_features_stream_a_float32_memmap_in_blocks_bit_for_bit(tmp_path, monkeypatch, kind):
    import tracemalloc

    rng = np.random.default_rng(0)
    views, n, classes = 8, 20000, 100
    stored = np.lib.format.open_memmap(tmp_path / "probs.npy", mode="w+", dtype=np.float32, shape=(views, n, classes))
    for k in range(views):
        stored[k] = rng.dirichlet(np.ones(classes), size=n).astype(np.float32)
    stored.flush()
    labels = rng.integers(0, classes, n)
    probs = np.load(tmp_path / "probs.npy", mmap_mode="r")  # as the pipeline's proxy stage reads it (64 MB)
    monkeypatch.setattr(proxy, "CHUNK", 1000)
    tracemalloc.start()
    feature = proxy.proxy_feature(probs, kind, labels)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 2**20  # one (8, 1000, 100) float64 block and its temporaries, not the 128 MB upcast
    np.testing.assert_array_equal(feature, _whole_array_feature(probs, kind, labels))


def test_rank_average_keeps_subset_entries_of_the_first():
    first, second = np.arange(10.0), np.arange(10.0)[::-1]
    out = proxy.rank_average(first, second, np.array([0, 9]), weight=1.0)
    assert out[0] == 0.0 and out[9] == 9.0
    assert np.all(np.diff(out[1:9]) >= 0)  # weight 1: the order of ``first``


def test_bad_inputs():
    with pytest.raises(ScorecastError, match="needs labels"):
        proxy.proxy_feature(PROBS, "p1mp")
    with pytest.raises(ScorecastError, match="at least 2 views"):
        proxy.proxy_feature(PROBS[:1], "aug_std", LABELS)
    with pytest.raises(ScorecastError, match="not allowed"):
        proxy.proxy_feature(PROBS, "variance", LABELS)
    with pytest.raises(ScorecastError, match="probabilities"):
        proxy.proxy_feature(PROBS * 2, "entropy")
    with pytest.raises(ScorecastError, match="weight"):
        proxy.rank_average(np.arange(3.0), np.arange(3.0), np.array([0]), weight=2.0)


def test_pipeline_proxy_stage_is_deterministic_and_validates_augmentations(tmp_path):
    experiment = {"scoring": {"epochs": 4, "batch_size": 64}, "record": {"trajectory_length": 3}, "device": "cpu"}
    pipe = Pipeline(experiment, cache_root=tmp_path / "a")
    scorer, method = {"name": "du", "window": 3}, {"name": "proxy", "kind": "aug_std", "augmentations": 3}
    first = pipe.extrapolated_scores(scorer, 0.2, 0, method)
    again = Pipeline(experiment, cache_root=tmp_path / "b").extrapolated_scores(scorer, 0.2, 0, method)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert first.seconds["proxy_inference"] > 0
    run = pipe.run(0, 0.2)
    np.testing.assert_array_equal(first.scores[run.indices], pipe.subset_scores(run, scorer))
    with pytest.raises(ScorecastError, match="augmentations"):
        pipe.proxy_predictions(run, 0)
    with pytest.raises(ScorecastError, match="adversarial"):
        pipe.proxy_predictions(run, 2, view="adv")

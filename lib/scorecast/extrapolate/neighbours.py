"""Extrapolators that need no training: kNN, the two sampling baselines, and rank calibration."""

from __future__ import annotations

import numpy as np

from ..validation import ScorecastError, as_finite_vector, as_index_vector, check_choice, check_positive_int
from .common import K, _assemble, _check_inputs, _complement
from .search import METRIC, nearest_neighbours

WEIGHTINGS = ("uniform", "exp")
WEIGHTING = "uniform"  # kNN's default: the plain mean of the k neighbours' scores (the paper's "avg")


def _neighbour_average(distances: np.ndarray, neighbour_scores: np.ndarray, weighting: str) -> np.ndarray:
    """(q,) prediction from (q, k) distances and neighbour scores.

    "uniform": mean. "exp": weights exp(-d) / sum exp(-d), computed as softmax(-d) (shifted by
    the row minimum) so it stays finite for any distance.
    """
    if weighting == "uniform":
        return neighbour_scores.mean(1)
    d = distances.astype(np.float64)
    w = np.exp(d.min(1, keepdims=True) - d)
    return (w * neighbour_scores).sum(1) / w.sum(1)


def knn(
    Z,
    subset_idx,
    subset_scores,
    k: int = K,
    weighting: str = WEIGHTING,
    metric: str = METRIC,
    backend: str = "auto",
    device: str = "auto",
) -> np.ndarray:
    """kNN extrapolation: each unscored sample gets the (weighted) mean of its k nearest subset scores.

    Args:
        Z: (n, d) embeddings of all samples.
        subset_idx: (m,) distinct indices of the scored subset; subset_scores: (m,) their scores.
        k: neighbours, 1 <= k <= m.
        weighting: "uniform" (paper's "avg") or "exp" (paper's "weighted": softmax(-distance)).
        metric: "euclidean" or "cosine"; backend, device: see :func:`nearest_neighbours` (by
            default a GPU when present, else faiss).

    Returns:
        (n,) float64; subset positions hold ``subset_scores`` exactly.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    check_choice("weighting", weighting, WEIGHTINGS)
    k = check_positive_int("k", k)
    if k > idx.size:
        raise ScorecastError(f"k={k} exceeds the subset size {idx.size}; choose k <= {idx.size}")
    rest = _complement(Z.shape[0], idx)
    predicted = np.empty(0)
    if rest.size:
        d, i = nearest_neighbours(Z[rest], Z[idx], k, metric=metric, backend=backend, device=device)
        predicted = _neighbour_average(d, scores[i], weighting)
    return _assemble(Z.shape[0], idx, scores, rest, predicted)


def score_sampling(Z, subset_idx, subset_scores, seed: int = 0) -> np.ndarray:
    """Baseline: each unscored sample draws a score (with replacement) from the subset's scores.

    Ignores Z beyond its length. Returns (n,) float64; subset positions hold ``subset_scores``.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    rest = _complement(Z.shape[0], idx)
    return _assemble(Z.shape[0], idx, scores, rest, np.random.default_rng(seed).choice(scores, rest.size))


def subset_plus_random(Z, subset_idx, subset_scores, seed: int = 0) -> np.ndarray:
    """Baseline: subset keeps its scores, the rest draw uniformly in [min, max] of the subset scores.

    Unscored samples therefore interleave at random with the subset's ranking (neither all above
    nor all below it). Returns (n,) float64.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    rest = _complement(Z.shape[0], idx)
    drawn = np.random.default_rng(seed).uniform(scores.min(), scores.max(), rest.size)
    return _assemble(Z.shape[0], idx, scores, rest, drawn)


def calibrate_to_subset(scores, subset_idx) -> np.ndarray:
    """Rank calibration against oversmoothing: quantile-match the extrapolated part to the subset.

    The n - m non-subset entries of ``scores`` (n,) keep their order but take the values of the
    subset's empirical score distribution at their rank quantiles (rank - 0.5) / (n - m) (ties
    share a value); subset entries are unchanged. Returns (n,) float64.
    """
    from scipy.stats import rankdata

    scores = as_finite_vector("scores", scores)
    idx = as_index_vector("subset_idx", subset_idx, scores.size)
    if idx.size == 0:
        raise ScorecastError("subset_idx is empty; calibration needs the subset's scores")
    rest = _complement(scores.size, idx)
    out = scores.copy()
    if rest.size:
        out[rest] = np.quantile(scores[idx], (rankdata(scores[rest]) - 0.5) / rest.size)
    return out

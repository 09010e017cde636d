"""Extrapolation by the proxy's own predictions (beyond the paper; a reviewer's question).

Instead of copying scores from neighbours, score every unseen sample directly with the
subset-trained proxy F_s: one clean forward pass (and K-1 augmented ones) per sample. Pure
functions: the proxy's softmax outputs arrive as an array.

``probs`` is (K, n, C): the proxy's softmax on K views of every sample, view 0 the clean
(test-transform) input, views 1..K-1 train-time augmentations (or, adversarially, PGD inputs).
Features (all oriented like uncertainty scores: higher = more uncertain = kept):

- ``p1mp``: p(1-p) of the true-label probability on the clean view (the variance of a Bernoulli
  with that mean: DU's per-epoch spread in a single pass).
- ``aug_std``: std of the true-label probability over the K views (needs K >= 2).
- ``entropy``: entropy of the mean predicted distribution; ``margin``: 1 - (top-1 minus top-2
  probability) of the mean distribution. Both label-free (unsupervised: pseudo-labels are not
  even needed).

Feature values live on their own scale, so the unseen part is mapped onto the subset's score
distribution by rank (:func:`scorecast.extrapolate.calibrate_to_subset`), the way subset and unseen
scores are merged everywhere in the kit.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .extrapolate import calibrate_to_subset
from .validation import ScorecastError, as_finite_vector, as_index_vector, as_label_vector, check_choice

FEATURES = ("p1mp", "aug_std", "entropy", "margin")


CHUNK = 65536  # samples per block: a block of (K, CHUNK, C) is upcast at a time, never the whole array


def _as_views(probs) -> np.ndarray:
    """``probs`` as (K, n, C) without copying (a memmap stays a memmap; float32 stays float32)."""
    probs = probs if isinstance(probs, np.ndarray) else np.asarray(probs)
    if probs.ndim == 2:
        probs = probs[None]
    if probs.ndim != 3:
        raise ScorecastError(f"probs must be (K, n, C) softmax outputs over K views, got shape {probs.shape}")
    return probs


def _block(probs: np.ndarray, rows: slice) -> np.ndarray:
    """Samples ``rows`` of probs (K, n, C) as float64, checked to be probabilities."""
    block = np.asarray(probs[:, rows], dtype=np.float64)
    if not np.isfinite(block).all() or block.min() < 0 or block.max() > 1 + 1e-6:
        raise ScorecastError("probs must be finite probabilities in [0, 1] (softmax outputs)")
    return block


def _feature(block: np.ndarray, kind: str, labels: np.ndarray | None) -> np.ndarray:
    """The feature (b,) of a float64 block (K, b, C) of samples with ``labels`` (b,)."""
    views, b, _ = block.shape
    if kind in ("p1mp", "aug_std"):
        true_prob = block[:, np.arange(b), labels]  # (K, b)
        return true_prob[0] * (1.0 - true_prob[0]) if kind == "p1mp" else true_prob.std(axis=0, ddof=1)
    mean = block.mean(axis=0)
    if kind == "entropy":
        return stats.entropy(mean, axis=1)
    top2 = np.sort(mean, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def proxy_feature(probs, kind: str = "aug_std", labels=None) -> np.ndarray:
    """One uncertainty feature (n,) float64 from the proxy's softmax ``probs`` (K, n, C).

    ``labels`` (n,) are required for the label-based features p1mp and aug_std (pass pseudo-labels
    in the unsupervised case); entropy and margin ignore them. ``probs`` is read :data:`CHUNK`
    samples at a time (a float32 memmap of ImageNet-64's 8 views, 41 GB, is never loaded or upcast
    whole); each sample's value equals the whole-array computation's bit for bit.
    """
    check_choice("proxy feature", kind, FEATURES)
    probs = _as_views(probs)
    views, n, _ = probs.shape
    if kind in ("p1mp", "aug_std"):
        if labels is None:
            raise ScorecastError(f"proxy feature {kind!r} needs labels (or pseudo-labels); entropy and margin are label-free")
        labels = as_label_vector("labels", labels, length=n)
        if kind == "aug_std" and views < 2:
            raise ScorecastError("proxy feature 'aug_std' needs at least 2 views (augmentations >= 2)")
    else:
        labels = None
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, CHUNK):
        rows = slice(start, min(start + CHUNK, n))
        out[rows] = _feature(_block(probs, rows), kind, None if labels is None else labels[rows])
    return out


def proxy_uncertainty(probs, subset_idx, subset_scores, labels=None, kind: str = "aug_std") -> np.ndarray:
    """Extrapolator: (n,) scores; subset samples keep ``subset_scores`` (m,), every other sample
    gets its proxy ``kind`` feature mapped by rank onto the subset's score distribution."""
    feature = proxy_feature(probs, kind, labels)
    n = feature.shape[0]
    subset_idx = as_index_vector("subset_idx", subset_idx, n)
    subset_scores = as_finite_vector("subset_scores", subset_scores, length=len(subset_idx))
    out = feature.copy()
    out[subset_idx] = subset_scores
    return calibrate_to_subset(out, subset_idx)


def rank_average(first, second, subset_idx, weight: float = 0.5) -> np.ndarray:
    """Hybrid: weighted average of the ranks of two (n,) extrapolations on the unseen samples,
    mapped onto the subset's score distribution; subset entries are taken from ``first``."""
    first = as_finite_vector("first", first)
    second = as_finite_vector("second", second, length=first.shape[0])
    if not 0.0 <= weight <= 1.0:
        raise ScorecastError(f"weight={weight!r} must lie in [0, 1]")
    subset_idx = as_index_vector("subset_idx", subset_idx, first.shape[0])
    out = weight * stats.rankdata(first) + (1.0 - weight) * stats.rankdata(second)
    out[subset_idx] = first[subset_idx]
    return calibrate_to_subset(out, subset_idx)

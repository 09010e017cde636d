"""Fidelity and quality metrics: pure functions, arrays in, floats out.

Fidelity of extrapolated scores is always measured on samples OUTSIDE the subset (the subset
keeps its own computed scores, which would inflate any correlation); callers pass those entries.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

from .validation import ScorecastError, as_finite_vector, check_rate


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = as_finite_vector("a", a)
    b = as_finite_vector("b", b, length=a.shape[0])
    if a.shape[0] < 2:
        raise ScorecastError("correlation needs at least 2 samples")
    return a, b


def pearson(a, b) -> float:
    """Pearson correlation of two (n,) arrays (0.0 when either is constant)."""
    a, b = _pair(a, b)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(stats.pearsonr(a, b)[0])


def spearman(a, b) -> float:
    """Spearman rank correlation of two (n,) arrays (ties get average ranks; 0.0 when constant)."""
    a, b = _pair(a, b)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(stats.spearmanr(a, b)[0])


def kendall(a, b) -> float:
    """Kendall's tau-b of two (n,) arrays (0.0 when either is constant)."""
    a, b = _pair(a, b)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(stats.kendalltau(a, b)[0])


def tail_overlap(true_scores, predicted_scores, rate: float, tail: str = "kept") -> float:
    """Share of one tail of the true ranking that the predicted ranking puts in the same tail.

    Pruning at ``rate`` keeps the top ``round((1 - rate) * n)`` samples and drops the rest, so
    this is the part of the ranking pruning actually uses. ``tail="kept"`` compares the kept sets,
    ``tail="pruned"`` the removed sets. Ties are broken by index (as in ``prune.select``).
    Chance level is the tail's share of n. Returns a float in [0, 1].
    """
    true_scores, predicted_scores = _pair(true_scores, predicted_scores)
    rate = check_rate(rate)
    if tail not in ("kept", "pruned"):
        raise ScorecastError(f"tail={tail!r} is not allowed; choose 'kept' or 'pruned'")
    n = true_scores.shape[0]
    n_keep = int(round((1.0 - rate) * n))
    size = n_keep if tail == "kept" else n - n_keep
    if size == 0:
        return 1.0

    def tail_set(scores: np.ndarray) -> np.ndarray:
        order = np.argsort(-scores, kind="stable")
        return order[:n_keep] if tail == "kept" else order[n_keep:]

    return len(np.intersect1d(tail_set(true_scores), tail_set(predicted_scores))) / size


def cluster_accuracy(true_labels, cluster_labels) -> float:
    """Accuracy of a clustering after the best one-to-one cluster->class matching (Hungarian).

    true_labels, cluster_labels: (n,) integer arrays. Clusters beyond the number of classes (or
    unmatched) count as wrong. Used for TURTLE's unsupervised quality; labels are evaluation-only.
    """
    t = np.asarray(true_labels, dtype=np.int64)
    c = np.asarray(cluster_labels, dtype=np.int64)
    if t.shape != c.shape or t.ndim != 1:
        raise ScorecastError(f"true_labels {t.shape} and cluster_labels {c.shape} must be equal-length 1-D arrays")
    if t.size == 0:
        raise ScorecastError("cluster_accuracy needs at least one sample")
    contingency = np.zeros((c.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(contingency, (c, t), 1)
    rows, cols = optimize.linear_sum_assignment(contingency, maximize=True)
    return float(contingency[rows, cols].sum() / t.size)


def topk_accuracy(logits, labels, k: int = 1) -> float:
    """Share of samples whose true label is among the k highest logits. logits (n, C), labels (n,)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ScorecastError(f"logits {logits.shape} must be (n, C) and labels {labels.shape} (n,)")
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())

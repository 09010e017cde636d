"""What every extrapolator shares: the input checks of ``f(Z, subset_idx, subset_scores, ...)``, the
assembly of its (n,) output, and the default number of neighbours."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..validation import ScorecastError, as_finite_matrix, as_finite_vector, as_index_vector

K = 10  # neighbours: kNN's k and the GNN graph's k by default (the paper's)

Extrapolator = Callable[..., np.ndarray]


def _check_inputs(Z, subset_idx, subset_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the common triple: Z (n, d) float32, subset_idx (m,) int64, subset_scores (m,) float64."""
    Z = as_finite_matrix("Z", Z)
    idx = as_index_vector("subset_idx", subset_idx, Z.shape[0])
    if idx.size == 0:
        raise ScorecastError("subset_idx is empty; extrapolation needs at least one scored sample")
    scores = as_finite_vector("subset_scores", subset_scores, length=idx.shape[0])
    return Z, idx, scores


def _check_labels(labels, n: int) -> np.ndarray:
    """Class labels (n,) as non-negative int64."""
    arr = np.asarray(labels)
    if arr.shape != (n,) or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ScorecastError(
            f"labels must be a 1-D integer array with one entry per sample ({n}), got {arr.dtype} {arr.shape}"
        )
    if arr.size and arr.min() < 0:
        raise ScorecastError(f"labels must be non-negative class ids, got minimum {arr.min()}")
    return arr.astype(np.int64)


def _complement(n: int, idx: np.ndarray) -> np.ndarray:
    """Sorted indices in [0, n) not in ``idx``."""
    mask = np.ones(n, dtype=bool)
    mask[idx] = False
    return np.flatnonzero(mask)


def _assemble(n: int, idx: np.ndarray, scores: np.ndarray, rest: np.ndarray, predicted) -> np.ndarray:
    """(n,) float64: subset positions get their own scores, ``rest`` gets ``predicted``."""
    out = np.empty(n, dtype=np.float64)
    out[rest] = predicted
    out[idx] = scores
    return out

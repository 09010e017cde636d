"""Pruning scores computed from recorded training dynamics: pure functions, arrays in, arrays out.

Every scorer returns an (n,) float64 array in dataset order, oriented higher = more important =
kept. Inputs with a sample axis may be numpy memmaps: the trajectory scorers (Dynamic Uncertainty,
TDDS) read them in chunks of samples, so no more than one chunk is ever held as float64.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .validation import ScorecastError, as_finite_matrix, as_label_vector, check_choice, check_positive_int

WINDOW = 10  # epochs per window of DU and TDDS by default (the paper's J)
_LOG_EPS = 1e-8  # added inside TDDS's logarithms, as in the TDDS and extrapolation code
_CHUNK_FLOATS = 2**22  # float64 values per chunk of samples (32 MiB per intermediate array)


def _sample_chunks(n: int, floats_per_sample: int, chunk_size: int | None) -> Iterator[slice]:
    """Slices over n samples, each small enough that one chunk holds about _CHUNK_FLOATS values."""
    if chunk_size is None:
        size = max(1, _CHUNK_FLOATS // max(1, floats_per_sample))
    else:
        size = check_positive_int("chunk_size", chunk_size)
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _probabilities(name: str, values) -> np.ndarray:
    """``values`` as float64, raising on NaN/inf or values outside [0, 1]."""
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ScorecastError(f"{name} contains NaN or infinite values; check the recorded training dynamics")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ScorecastError(
            f"{name} must hold probabilities in [0, 1], found values in [{arr.min():.4g}, {arr.max():.4g}]; "
            "pass softmax outputs, not logits"
        )
    return arr


def _check_window(window, n_epochs: int, minimum: int, why: str) -> int:
    window = check_positive_int("window", window)
    if window < minimum:
        raise ScorecastError(f"window={window} is too small: it must be at least {minimum} ({why})")
    if window > n_epochs:
        raise ScorecastError(
            f"window={window} exceeds the {n_epochs} recorded epochs; record more epochs or use a smaller window"
        )
    return window


def dynamic_uncertainty(
    probs, window: int = WINDOW, variant: str = "clean", *, chunk_size: int | None = None
) -> np.ndarray:
    """Dynamic Uncertainty (He et al. 2023): mean over sliding windows of the std of P_t(x).

    probs: (E, n) probability of the true label per epoch (E recorded epochs, n samples).
    window: J, the number of epochs per window (2 <= J <= E).
    variant:
      "clean": windows start at epochs 0..E-J (E-J+1 windows); inside each window the SAMPLE
        standard deviation (ddof=1, dividing by J-1 as in He et al.'s formula).
      "reference": the authors' code: the first two epochs are skipped, windows start at
        epochs 2..E-J (E-J-1 windows, so E >= J+2), POPULATION standard deviation (ddof=0).
    chunk_size: samples per chunk (default: sized to bound memory); the result does not depend on it.
    Returns (n,) float64; higher = more fluctuating prediction = more important.
    """
    check_choice("variant", variant, ("clean", "reference"))
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ScorecastError(f"probs must be 2-D (epochs, n_samples), got shape {probs.shape}")
    n_epochs, n = probs.shape
    window = _check_window(window, n_epochs, 2, "a standard deviation needs two epochs")
    skip, ddof = (0, 1) if variant == "clean" else (2, 0)
    n_windows = n_epochs - skip - window + 1
    if n_windows < 1:
        raise ScorecastError(
            f"variant='reference' skips the first two epochs and needs at least window+2={window + 2} epochs, "
            f"but {n_epochs} are recorded; record more epochs or use a smaller window"
        )
    out = np.empty(n, dtype=np.float64)
    for chunk in _sample_chunks(n, n_windows * window, chunk_size):
        p = _probabilities("probs", probs[skip:, chunk])
        out[chunk] = sliding_window_view(p, window, axis=0).std(axis=-1, ddof=ddof).mean(axis=0)
    return out


def tdds(probs, window: int = WINDOW, decay: float = 0.9, *, chunk_size: int | None = None) -> np.ndarray:
    """Temporal Dual-Depth Scoring (Zhang et al. CVPR 2024) of a softmax trajectory.

    probs: (T, n, C) softmax outputs over the T trajectory epochs (already cut to the chosen
      epochs, see ``trajectory_epochs``), n samples in dataset order, C classes. A memmap is read
      in chunks of samples.
    For transitions j = 0..T-2:  g_j = sum_c | p_{j+1,c} (log(p_{j+1,c} + 1e-8) - log(p_{j,c} + 1e-8)) |.
    Window k = 0..T-J covers epochs k..k+J-1, i.e. the J-1 transitions g_k..g_{k+J-2};
    v_k = || g - mean(g) ||_2 over those J-1 values.
    Score = sum_k decay * (1 - decay)^(T-J-k) * v_k (exponential moving average; the last
    window weighs most). With T = J (the authors' setting) this is decay * v_0.
    window: J, with 3 <= J <= T (J = 2 would leave one transition per window, whose spread is
      always zero). decay: beta in (0, 1].
    chunk_size: samples per chunk (default: sized to bound memory); it changes results only by
      float rounding.
    Returns (n,) float64; higher = more variable prediction changes = more important.
    """
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ScorecastError(f"probs must be 3-D (epochs, n_samples, n_classes), got shape {probs.shape}")
    n_epochs, n, n_classes = probs.shape
    window = _check_window(window, n_epochs, 3, "J epochs hold J-1 transitions, and TDDS needs their spread")
    if isinstance(decay, bool) or not isinstance(decay, (int, float, np.floating)) or not 0.0 < decay <= 1.0:
        raise ScorecastError(f"decay={decay!r} must lie in (0, 1]")
    weights = decay * (1.0 - decay) ** (n_epochs - window - np.arange(n_epochs - window + 1))
    out = np.empty(n, dtype=np.float64)
    for chunk in _sample_chunks(n, n_epochs * n_classes, chunk_size):
        p = _probabilities("probs", probs[:, chunk])
        log_p = np.log(p + _LOG_EPS)
        g = np.abs(p[1:] * (log_p[1:] - log_p[:-1])).sum(axis=2)  # (T-1, chunk)
        g_windows = sliding_window_view(g, window - 1, axis=0)  # (T-J+1, chunk, J-1)
        v = np.linalg.norm(g_windows - g_windows.mean(axis=-1, keepdims=True), axis=-1)
        out[chunk] = weights @ v
    return out


def trajectory_epochs(n_epochs: int, length: int = 10, position: str = "last") -> list[int]:
    """Epoch indices of a TDDS trajectory: the last ``length`` of ``n_epochs`` recorded epochs
    (the extrapolation authors' code) or the first ``length`` (the original TDDS code)."""
    n_epochs = check_positive_int("n_epochs", n_epochs)
    length = check_positive_int("length", length)
    check_choice("position", position, ("last", "first"))
    if length > n_epochs:
        raise ScorecastError(f"length={length} exceeds the {n_epochs} recorded epochs; record more epochs")
    start = n_epochs - length if position == "last" else 0
    return list(range(start, start + length))


def el2n(probs, labels) -> np.ndarray:
    """EL2N (Paul et al. 2021): mean over runs of || softmax - onehot(label) ||_2.

    probs: (R, n, C) softmax outputs at an early epoch from R independent runs, or (n, C) for one run.
    labels: (n,) integer class labels in [0, C).
    Returns (n,) float64; higher = larger early error = more important.
    """
    p = _probabilities("probs", probs)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3:
        raise ScorecastError(f"probs must be (runs, n_samples, n_classes) or (n_samples, n_classes), got {p.shape}")
    _, n, n_classes = p.shape
    labels = as_label_vector("labels", labels, length=n)
    if labels.size and labels.max() >= n_classes:
        raise ScorecastError(f"labels go up to {labels.max()} but probs has only {n_classes} classes")
    error = p.copy()
    error[:, np.arange(n), labels] -= 1.0
    return np.linalg.norm(error, axis=2).mean(axis=0)


def forgetting(correct, never_learned: str = "max") -> np.ndarray:
    """Forgetting events (Toneva et al. 2019): number of correct -> incorrect transitions.

    correct: (E, n) bool (or 0/1) correctness of each sample's prediction per epoch.
    never_learned: score of samples never correct in any epoch.
      "max": (largest count over all samples) + 1, so they rank as most forgotten (Toneva et al.).
      "zero": 0, as the authors' code does.
    Returns (n,) float64 counts; higher = forgotten more often = more important.
    """
    check_choice("never_learned", never_learned, ("max", "zero"))
    arr = np.asarray(correct)
    if arr.ndim != 2:
        raise ScorecastError(f"correct must be 2-D (epochs, n_samples), got shape {arr.shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ScorecastError("correct must hold booleans (or 0/1): whether each prediction was right per epoch")
    arr = arr.astype(bool)
    counts = (arr[:-1] & ~arr[1:]).sum(axis=0).astype(np.float64)
    if never_learned == "max" and counts.size:
        counts[~arr.any(axis=0)] = counts.max() + 1.0
    return counts


def random_scores(n: int, seed: int) -> np.ndarray:
    """(n,) float64 scores uniform in [0, 1) from ``numpy.random.default_rng(seed)``."""
    n = check_positive_int("n", n)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ScorecastError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(seed).random(n)


def prototypicality(features, clusters: int, seed: int = 0) -> np.ndarray:
    """Training-free self-supervised prototype metric (Sorscher et al. 2022): k-means on frozen
    features (n, d) with ``clusters`` centroids; score = Euclidean distance to the nearest
    centroid, (n,) float64. Far from every prototype = hard = kept (the metric's recommendation
    for large datasets)."""
    from sklearn.cluster import KMeans

    features = as_finite_matrix("features", features)
    clusters = check_positive_int("clusters", clusters)
    if clusters > features.shape[0]:
        raise ScorecastError(f"clusters={clusters} exceeds the number of samples ({features.shape[0]})")
    model = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit(features)
    return model.transform(features).min(axis=1).astype(np.float64)


def zero_shot_coreset(features, draws: int | None = None, sample_dim: int = 2, redundancy_nn: int = 1000,
                      redundancy_exp: float = 4.0, seed: int = 0) -> np.ndarray:
    """ZCore (Griffin et al. 2024), the training- and label-free zero-shot coreset score on frozen
    features (n, d): coverage minus redundancy, (n,) float64 min-max scaled to [0, 1], higher = kept.

    Each of ``draws`` Monte-Carlo draws (default min(10 n, 10^6)) picks ``sample_dim`` random feature
    dimensions and a point from the triangular distribution (min, median, max) of each. Coverage: the
    nearest sample in L1 over those dimensions gains 1. Redundancy: the ``redundancy_nn`` samples
    nearest to that winner (itself excluded) lose weights proportional to distance^-redundancy_exp that
    sum to 1; an exact duplicate of the winner takes the whole 1. Scores start from uniform(0, 1) noise
    (the reference code's ``rand_init``), which also breaks ties. Defaults are the paper's.
    """
    X = as_finite_matrix("features", features).astype(np.float32)
    n, d = X.shape
    draws = min(10 * n, 10**6) if draws is None else check_positive_int("draws", draws)
    sample_dim = check_positive_int("sample_dim", sample_dim)
    if sample_dim > d:
        raise ScorecastError(f"sample_dim={sample_dim} exceeds the feature dimension ({d})")
    if n < 2:
        raise ScorecastError(f"zero_shot_coreset needs at least 2 samples, got {n}")
    neighbours = min(check_positive_int("redundancy_nn", redundancy_nn), n - 1)
    if not np.isfinite(redundancy_exp) or redundancy_exp <= 0:
        raise ScorecastError(f"redundancy_exp must be a positive number, got {redundancy_exp!r}")
    rng = np.random.default_rng(seed)
    low, mode, high = X.min(axis=0), np.median(X, axis=0), X.max(axis=0)
    values = rng.random(n)
    batch = max(1, _CHUNK_FLOATS // (n * sample_dim))
    for start in range(0, draws, batch):
        b = min(batch, draws - start)
        dims = np.argsort(rng.random((b, d)), axis=1)[:, :sample_dim]  # (b, s) distinct dimensions per draw
        lo, hi = low[dims], high[dims]
        spread = hi > lo  # constant dimensions get their single value (triangular needs lo < hi)
        points = np.where(spread, rng.triangular(lo, mode[dims], np.where(spread, hi, lo + 1)), lo)
        columns = X[:, dims]  # (n, b, s)
        winner = np.abs(columns - points).sum(axis=2).argmin(axis=0)  # (b,)
        np.add.at(values, winner, 1.0)
        distance = np.abs(columns - X[winner[:, None], dims]).sum(axis=2)  # (n, b) from each winner
        distance[winner, np.arange(b)] = np.inf
        nearest = np.argpartition(distance, neighbours - 1, axis=0)[:neighbours]  # (k, b)
        near = np.take_along_axis(distance, nearest, axis=0).astype(np.float64)
        closest = near.min(axis=0)
        duplicate = closest == 0
        weights = np.where(duplicate, 0.0, (closest / np.where(near == 0, 1.0, near)) ** redundancy_exp)
        weights[near.argmin(axis=0)[duplicate], np.flatnonzero(duplicate)] = 1.0  # a duplicate takes the whole penalty
        np.add.at(values, nearest, -weights / weights.sum(axis=0))
    return (values - values.min()) / (values.max() - values.min())

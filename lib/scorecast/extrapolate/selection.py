"""Choosing hyper-parameters: K-fold cross-validation on the scored subset, or the paper's oracle
(against the full-data scores); kNN's k by either."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..metrics import spearman
from ..validation import ScorecastError, as_finite_vector, check_positive_int
from .common import Extrapolator, _check_inputs, _complement
from .neighbours import WEIGHTING, knn
from .search import METRIC

KS = (1, 5, 10, 20, 50, 100)  # the candidate ks of select_k_cv and select_k_oracle


def _grid_table(grid: Mapping[str, Sequence], evaluate: Callable[[dict], list[float]]) -> pd.DataFrame:
    """One row per grid combination: its parameters, mean and std of ``evaluate(params)``."""
    if not grid or any(len(values) == 0 for values in grid.values()):
        raise ScorecastError(f"grid={dict(grid)!r} needs at least one parameter with at least one value")
    rows = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        results = np.asarray(evaluate(params), dtype=np.float64)
        rows.append({**params, "mean": results.mean(), "std": results.std(), "folds": results.size})
    return pd.DataFrame(rows)


def best_params(table: pd.DataFrame) -> dict:
    """Parameters of the row with the highest mean (first such row on ties)."""
    row = table.loc[table["mean"].idxmax()]
    return {name: row[name] for name in table.columns if name not in ("mean", "std", "folds")}


def cross_validate(
    extrapolator: Extrapolator,
    Z,
    subset_idx,
    subset_scores,
    grid: Mapping[str, Sequence],
    folds: int = 5,
    seed: int = 0,
    score: Callable[[np.ndarray, np.ndarray], float] = spearman,
    **fixed,
) -> pd.DataFrame:
    """Non-oracle tuning: K-fold cross-validation over the scored subset only.

    For every combination of ``grid`` (name -> values) and every fold, ``extrapolator(Z,
    subset_idx[train], subset_scores[train], **fixed, **params)`` predicts all n samples and
    ``score(prediction[held], subset_scores[held])`` rates the held-out fold. Folds come from a
    seeded permutation of the subset. Works for any extrapolator (e.g. :func:`gnn` with
    ``graph=knn_graph(Z, max_k)`` in ``fixed`` and ``grid={"k": [...]}``).

    Returns:
        DataFrame, one row per combination: the grid parameters, ``mean`` and ``std`` over folds,
        ``folds``. :func:`best_params` picks the winner.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    folds = _check_folds(folds, idx.size)
    parts = np.array_split(np.random.default_rng(seed).permutation(idx.size), folds)
    trains = [np.setdiff1d(np.arange(idx.size), held) for held in parts]

    def evaluate(params: dict) -> list[float]:
        return [
            score(extrapolator(Z, idx[train], scores[train], **fixed, **params)[idx[held]], scores[held])
            for held, train in zip(parts, trains)
        ]

    return _grid_table(grid, evaluate)


def oracle_validate(
    extrapolator: Extrapolator,
    Z,
    subset_idx,
    subset_scores,
    full_scores,
    grid: Mapping[str, Sequence],
    score: Callable[[np.ndarray, np.ndarray], float] = spearman,
    **fixed,
) -> pd.DataFrame:
    """The paper's oracle tuning: rate each grid combination by ``score`` against the full-data
    scores (n,) on the samples OUTSIDE the subset. Same table as :func:`cross_validate` (folds=1)."""
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    full = as_finite_vector("full_scores", full_scores, length=Z.shape[0])
    rest = _complement(Z.shape[0], idx)
    if rest.size < 2:
        raise ScorecastError("oracle validation needs at least 2 samples outside the subset")

    def evaluate(params: dict) -> list[float]:
        return [score(extrapolator(Z, idx, scores, **fixed, **params)[rest], full[rest])]

    return _grid_table(grid, evaluate)


def _check_folds(folds: int, m: int) -> int:
    folds = check_positive_int("folds", folds)
    if not 2 <= folds <= m:
        raise ScorecastError(f"folds={folds} must lie in [2, subset size {m}]")
    return folds


def _check_ks(ks: Sequence[int], limit: int, why: str) -> list[int]:
    ks = [check_positive_int("ks", k) for k in ks]
    if not ks or max(ks) > limit:
        raise ScorecastError(f"ks={ks} must be non-empty with every k <= {limit} ({why})")
    return ks


def select_k_cv(
    Z,
    subset_idx,
    subset_scores,
    ks: Sequence[int] = KS,
    folds: int = 5,
    seed: int = 0,
    weighting: str = WEIGHTING,
    metric: str = METRIC,
    score: Callable[[np.ndarray, np.ndarray], float] = spearman,
    backend: str = "auto",
) -> tuple[int, pd.DataFrame]:
    """Choose kNN's k without an oracle: K-fold CV on the subset (see :func:`cross_validate`).

    Uses only the subset's embeddings (kNN predictions for held-out subset samples do not depend
    on unscored samples). Returns (best k, table with per-k mean/std of ``score``).
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    smallest_train = idx.size - math.ceil(idx.size / _check_folds(folds, idx.size))
    ks = _check_ks(ks, smallest_train, f"the smallest training fold of {folds}-fold CV has {smallest_train} samples")
    table = cross_validate(
        knn, Z[idx], np.arange(idx.size), scores, {"k": ks}, folds=folds, seed=seed, score=score,
        weighting=weighting, metric=metric, backend=backend,
    )
    return int(best_params(table)["k"]), table


def select_k_oracle(
    Z,
    subset_idx,
    subset_scores,
    full_scores,
    ks: Sequence[int] = KS,
    weighting: str = WEIGHTING,
    metric: str = METRIC,
    score: Callable[[np.ndarray, np.ndarray], float] = spearman,
    backend: str = "auto",
) -> tuple[int, pd.DataFrame]:
    """Choose kNN's k as the paper did, by ``score`` against full-data scores outside the subset.

    An oracle (needs the full-data run it is meant to save); for comparison with
    :func:`select_k_cv`. Returns (best k, table with per-k score in ``mean``).
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    ks = _check_ks(ks, idx.size, f"the subset has {idx.size} samples")
    table = oracle_validate(
        knn, Z, idx, scores, full_scores, {"k": ks}, score=score,
        weighting=weighting, metric=metric, backend=backend,
    )
    return int(best_params(table)["k"]), table

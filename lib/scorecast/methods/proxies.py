"""Methods that read the subset model's predictions on every sample (supervised and adversarial):
proxy uncertainty, its rank average with kNN (hybrid) and a regressor stacked on both."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from .. import extrapolate as ex
from .. import proxy
from ..specs import MethodSpec, default_of, option, register, spec
from ..stages import ScoreResult
from ..validation import ScorecastError

AUGMENTATIONS = 8  # views of each sample the subset model predicts by default (view 0 clean): the proxy's and the stacked regressor's


@register
@spec
class Proxy(MethodSpec):
    """Proxy uncertainty (:func:`scorecast.proxy.proxy_uncertainty`): feature ``kind`` of the subset
    model's softmax over ``augmentations`` K views (view 0 clean)."""

    name: ClassVar[str] = "proxy"
    style: ClassVar[tuple[str, str]] = ("#cc79a7", "v")
    kind: str = option("aug_std", choices=proxy.FEATURES)
    augmentations: int = option(AUGMENTATIONS, low=1)

    def check(self, where: str) -> None:
        if self.kind == "aug_std" and self.augmentations < 2:
            raise ScorecastError(f"{where}: kind aug_std needs augmentations >= 2 (the spread over views), got {self.augmentations}")

    def proxy_views(self) -> int:
        return self.augmentations

    def run(self, pipe, scorer, seed: int, fraction) -> ScoreResult:
        self.check_subset(pipe, fraction)
        run = pipe.scoring_run(scorer, seed, fraction)
        computed = pipe.subset_scores(run, scorer)
        probs, proxy_seconds = pipe.proxy_predictions(run, self.augmentations, scorer.view)
        start = time.perf_counter()
        result = proxy.proxy_uncertainty(probs, run.indices, computed, pipe.labels, self.kind)
        seconds = {"scoring": run.seconds, "proxy_inference": proxy_seconds}
        result = self.combine(pipe, scorer, seed, fraction, run, result, seconds)
        seconds["extrapolation"] = seconds.get("extrapolation", 0.0) + time.perf_counter() - start
        return ScoreResult(result, run.indices, seconds)

    def combine(self, pipe, scorer, seed: int, fraction: float, run, scores: np.ndarray, seconds: dict) -> np.ndarray:
        """The method's scores (n,) from the proxy's ``scores`` (n,); ``seconds`` takes any extra costs."""
        return scores


@register
@spec
class Hybrid(Proxy):
    """Rank average of kNN (``k``) and proxy scores (:func:`scorecast.proxy.rank_average`); ``weight``
    is the kNN ranks' share."""

    name: ClassVar[str] = "hybrid"
    style: ClassVar[tuple[str, str]] = ("#7b3294", "P")
    k: int = option(ex.K, low=1)
    weight: float = option(default_of(proxy.rank_average, "weight"), low=0.0, high=1.0)

    def check_size(self, m: int, n: int, where: str, subset: str) -> None:
        if self.k > m:
            raise ScorecastError(f"{where}.k={self.k} exceeds {subset} = {m} samples, the neighbours kNN can use; use k <= {m}")

    def combine(self, pipe, scorer, seed: int, fraction: float, run, scores: np.ndarray, seconds: dict) -> np.ndarray:
        neighbours = pipe.scores_for(scorer, {"name": "knn", "k": self.k}, seed, fraction)
        seconds["embedding"] = neighbours.seconds["embedding"]
        seconds["extrapolation"] = neighbours.seconds["extrapolation"]
        return proxy.rank_average(neighbours.scores, scores, run.indices, self.weight)


@register
@spec
class Stacked(MethodSpec):
    """Gradient-boosted regressor on [kNN (``k``) prediction, proxy features over ``augmentations``
    views], cross-fitted over ``folds`` folds of the subset so no subset score leaks into its features:
    the features of a subset sample come from a proxy trained on the other folds of the subset, the
    features of unseen samples from the proxy trained on the whole subset."""

    name: ClassVar[str] = "stacked"
    validates: ClassVar[bool] = True
    style: ClassVar[tuple[str, str]] = ("#56b4e9", "<")
    augmentations: int = option(AUGMENTATIONS, low=1)
    k: int = option(ex.K, low=1)
    folds: int = option(2, low=2)

    def proxy_views(self) -> int:
        return self.augmentations

    def run(self, pipe, scorer, seed: int, fraction) -> ScoreResult:
        run = pipe.scoring_run(scorer, seed, fraction)
        computed = pipe.subset_scores(run, scorer)
        probs, proxy_seconds = pipe.proxy_predictions(run, self.augmentations, scorer.view)
        start = time.perf_counter()
        labels = pipe.labels
        kinds = proxy.FEATURES if self.augmentations > 1 else tuple(f for f in proxy.FEATURES if f != "aug_std")

        def features(proxy_run, proxy_probs: np.ndarray, base: np.ndarray, base_scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
            Z, _ = pipe.embedding(proxy_run)
            neighbour = ex.knn(Z, base, base_scores, k=min(self.k, len(base)))[rows]
            return np.column_stack([neighbour] + [proxy.proxy_feature(proxy_probs[:, rows], kind, labels[rows]) for kind in kinds])

        fold_of = np.random.default_rng(seed).permutation(len(run.indices)) % self.folds
        X_subset = np.empty((len(run.indices), 1 + len(kinds)))
        crossfit_seconds = 0.0
        for fold in range(self.folds):
            held, kept = run.indices[fold_of == fold], run.indices[fold_of != fold]
            fold_run = pipe.run(seed, scoring=scorer.scoring, indices=kept)
            fold_probs, fold_seconds = pipe.proxy_predictions(fold_run, self.augmentations, scorer.view)
            crossfit_seconds += fold_run.seconds + fold_seconds + pipe.embedding(fold_run)[1]
            X_subset[fold_of == fold] = features(fold_run, fold_probs, kept, computed[fold_of != fold], held)
        rest = np.setdiff1d(np.arange(len(labels)), run.indices)
        X_rest = features(run, probs, run.indices, computed, rest)
        model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=seed).fit(X_subset, computed)
        out = np.empty(len(labels))
        out[run.indices], out[rest] = computed, model.predict(X_rest)
        seconds = {"scoring": run.seconds, "proxy_inference": proxy_seconds, "crossfit": crossfit_seconds, "extrapolation": time.perf_counter() - start}
        return ScoreResult(ex.calibrate_to_subset(out, run.indices), run.indices, seconds)

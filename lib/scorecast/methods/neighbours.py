"""Extrapolators that need no training: kNN and the two sampling baselines."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .. import extrapolate as ex
from ..specs import PARADIGMS, Extrapolator, default_of, option, register, spec
from ..stages import ScoreResult
from ..validation import ScorecastError


@register
@spec
class KNN(Extrapolator):
    """kNN extrapolation (:func:`scorecast.extrapolate.knn`). ``k``: neighbours, or "cv" (chosen by
    cross-validation on the subset among ``ks``) or "oracle" (best Spearman with the full-data
    scores of the same seed, the paper's choice, among ``ks``); ks above 80 % of the subset are skipped."""

    name: ClassVar[str] = "knn"
    paradigms: ClassVar[tuple[str, ...]] = PARADIGMS
    display: ClassVar[str] = "kNN"
    style: ClassVar[tuple[str, str]] = ("#0072b2", "o")
    k: int | str = option(ex.K, low=1, choices=("cv", "oracle"))
    weighting: str = option(default_of(ex.knn, "weighting"), choices=ex.WEIGHTINGS)
    metric: str = option(default_of(ex.knn, "metric"), choices=ex.METRICS)
    backend: str = option(default_of(ex.knn, "backend"), choices=ex.BACKENDS)
    ks: tuple[int, ...] = option(ex.KS, low=1)

    def check(self, where: str) -> None:
        if "ks" in self.given and not isinstance(self.k, str):
            raise ScorecastError(f"{where}.ks is only used with k: cv or k: oracle; remove it or set k to one of those")
        if not self.ks:
            raise ScorecastError(f"{where}.ks must list at least one k")

    def check_size(self, m: int, n: int, where: str, subset: str) -> None:
        """k must fit the subset; with k: cv or oracle, some of ``ks`` must fit 80 % of it (the rest are skipped)."""
        if not isinstance(self.k, str) and self.k > m:
            raise ScorecastError(f"{where}.k={self.k} exceeds {subset} = {m} samples, the neighbours kNN can use; use k <= {m}")
        if isinstance(self.k, str) and not any(k <= 0.8 * m for k in self.ks):
            raise ScorecastError(f"{where}.ks={list(self.ks)}: k: {self.k} tries only ks up to 80 % of {subset} = {m} samples "
                                 f"(<= {int(0.8 * m)}), and none is; add smaller ks")

    def run(self, pipe, scorer, seed: int, fraction) -> ScoreResult:
        self.check_subset(pipe, fraction)

        def options(Z: np.ndarray, run, computed: np.ndarray) -> dict:
            k = self.k
            if isinstance(k, str):  # "cv" or "oracle"
                ks = [candidate for candidate in self.ks if candidate <= len(run.indices) * 0.8]
                if k == "cv":
                    k, _ = ex.select_k_cv(Z, run.indices, computed, ks=ks, seed=seed)
                else:
                    k, _ = ex.select_k_oracle(Z, run.indices, computed, pipe.full_scores(scorer, seed).scores, ks=ks)
            return {"k": int(k), "weighting": self.weighting, "metric": self.metric, "backend": self.backend}

        return pipe.extrapolate(self, scorer, seed, fraction, ex.knn, options)


@spec
class SeededBaseline(Extrapolator):
    """A baseline whose only option is ``seed`` (default: the run's seed), run by ``function``."""

    seed: int | None = option(None, low=0)

    def run(self, pipe, scorer, seed: int, fraction) -> ScoreResult:
        options = {"seed": seed if self.seed is None else self.seed}
        return pipe.extrapolate(self, scorer, seed, fraction, type(self).function, lambda Z, run, computed: options)


@register
@spec
class ScoreSampling(SeededBaseline):
    """Baseline: unscored samples draw scores from the subset's (:func:`scorecast.extrapolate.score_sampling`)."""

    name: ClassVar[str] = "score_sampling"
    display: ClassVar[str] = "score sampling"
    style: ClassVar[tuple[str, str]] = ("#bcbd22", "h")
    function = staticmethod(ex.score_sampling)


@register
@spec
class SubsetPlusRandom(SeededBaseline):
    """Baseline: unscored samples interleave at random with the subset's ranking
    (:func:`scorecast.extrapolate.subset_plus_random`)."""

    name: ClassVar[str] = "subset_plus_random"
    display: ClassVar[str] = "subset + random"
    style: ClassVar[tuple[str, str]] = ("#17becf", "d")
    function = staticmethod(ex.subset_plus_random)

"""Direct methods: they score every sample themselves, so they take no subset fraction."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

from .. import scores
from ..specs import PARADIGMS, MethodSpec, check_encoder, default_of, option, register, spec
from ..stages import ScoreResult


@register
@spec
class Full(MethodSpec):
    """The scorer on a run over all n samples (the reference)."""

    name: ClassVar[str] = "full"
    direct: ClassVar[bool] = True
    paradigms: ClassVar[tuple[str, ...]] = PARADIGMS
    style: ClassVar[tuple[str, str]] = ("#000000", "s")

    def run(self, pipe, scorer, seed: int, fraction) -> ScoreResult:
        return pipe.full_scores(scorer, seed)


@register
@spec
class RandomMethod(MethodSpec):
    """Uniform random scores of all n samples (random pruning), seeded by the run's seed."""

    name: ClassVar[str] = "random"
    direct: ClassVar[bool] = True
    paradigms: ClassVar[tuple[str, ...]] = PARADIGMS
    style: ClassVar[tuple[str, str]] = ("#7f7f7f", "X")

    def run(self, pipe, scorer, seed: int, fraction) -> ScoreResult:
        return ScoreResult(scores.random_scores(len(pipe.train_set), seed), np.arange(0), {})


@spec
class FrozenFeatureMethod(MethodSpec):
    """A training-free score on a frozen ``encoder``'s features ({"name": "pixels" | "pca" |
    "simclr" | "dinov2", ...options of :func:`scorecast.unsupervised.encode`})."""

    direct: ClassVar[bool] = True

    def check(self, where: str) -> None:
        check_encoder(self.encoder, f"{where}.encoder")

    def score_features(self, function, pipe, **options) -> ScoreResult:
        """``function(Z, **options)`` -> (n,) on the encoder's features Z (n, d), with its costs."""
        Z, seconds = pipe.frozen_features(self.encoder)
        start = time.perf_counter()
        values = function(Z, **options)
        return ScoreResult(values, np.arange(0), {"embedding": seconds, "scoring": time.perf_counter() - start})


@register
@spec
class Prototypes(FrozenFeatureMethod):
    """Self-supervised prototype metric (:func:`scorecast.scores.prototypicality`): k-means with
    ``clusters`` centroids (default: the number of classes)."""

    name: ClassVar[str] = "prototypes"
    style: ClassVar[tuple[str, str]] = ("#8c564b", ">")
    encoder: dict = option({"name": "pca"})
    clusters: int | None = option(None, low=1)

    def run(self, pipe, scorer, seed: int, fraction) -> ScoreResult:
        clusters = pipe.train_set.num_classes if self.clusters is None else self.clusters
        return self.score_features(scores.prototypicality, pipe, clusters=clusters, seed=seed)


@register
@spec
class ZCore(FrozenFeatureMethod):
    """Zero-shot coreset score (:func:`scorecast.scores.zero_shot_coreset`); defaults are the paper's."""

    name: ClassVar[str] = "zcore"
    style: ClassVar[tuple[str, str]] = ("#d62728", "*")
    encoder: dict = option({"name": "pca"})
    draws: int | None = option(default_of(scores.zero_shot_coreset, "draws"), low=1)
    sample_dim: int = option(default_of(scores.zero_shot_coreset, "sample_dim"), low=1)
    redundancy_nn: int = option(default_of(scores.zero_shot_coreset, "redundancy_nn"), low=1)
    redundancy_exp: float = option(default_of(scores.zero_shot_coreset, "redundancy_exp"), low=0.0, low_open=True)

    def run(self, pipe, scorer, seed: int, fraction) -> ScoreResult:
        return self.score_features(scores.zero_shot_coreset, pipe, draws=self.draws, sample_dim=self.sample_dim,
                                   redundancy_nn=self.redundancy_nn, redundancy_exp=self.redundancy_exp, seed=seed)

"""What every paradigm's pipeline shares: specs from plain mappings (looked up in
:mod:`scorecast.registry`), subset and full scores, running a method, the cached extrapolation stage,
the fidelity table and the loop behind the accuracy and cluster tables.

A paradigm's pipeline (:mod:`scorecast.pipeline`) subclasses :class:`ScoreStages`, sets
``experiment`` (a :class:`~scorecast.experiment.Experiment`), ``cache``, ``device`` and ``paradigm``,
and defines ``scoring_run(scorer, seed, fraction)`` (a run on all samples or a random subset) and
``extrapolation_features(run)`` (the features extrapolators work on, with their cost).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import extrapolate as ex
from . import metrics, unsupervised
from .data import ImageDataset
from .experiment import Experiment
from .registry import build_method, build_scorer, check_distinct_labels, check_paradigm
from .specs import MethodSpec, ScorerSpec
from .stages import STAGE_VERSIONS, ScoreResult, load_split
from .validation import ScorecastError, check_rate, resolve_device


def check_rates_keep_samples(rates, n: int) -> None:
    """Raise unless every pruning rate keeps at least one of ``n`` samples."""
    for rate in rates:
        if int(round((1.0 - check_rate(rate)) * n)) < 1:
            raise ScorecastError(f"rate={rate!r} keeps no sample of the {n} training samples; use a rate below {1 - 0.5 / n:.4f}")


class ScoreStages:
    """Stages every paradigm shares; see the module docstring for what a subclass provides."""

    experiment: Experiment
    paradigm: str
    labelled = True  # scorers and extrapolators may read class labels

    @property
    def train_set(self) -> ImageDataset:
        return load_split(self.experiment.data, "train")

    def _data_key(self) -> dict:
        """What every stage's cache key shares: the training data (spec and content fingerprint) and
        the device type the stages run on (CUDA runs default to bf16 and channels_last, so a CPU and
        a GPU run of the same config give different numbers and must not share an artefact)."""
        return {"spec": self.experiment.data, "fingerprint": self.train_set.fingerprint(), "device": resolve_device(self.device).type}

    def frozen_features(self, encoder: dict) -> tuple[np.ndarray, float]:
        """(label-free features (n, d) float32 of all training samples from a frozen ``encoder``
        ({"name": "pixels" | "pca" | "simclr" | "dinov2", ...options}), seconds); cached."""
        options = {k: v for k, v in encoder.items() if k != "name"}

        def compute(folder: Path) -> dict:
            np.save(folder / "Z.npy", unsupervised.encode(self.train_set, encoder["name"], seed=0, device=self.device, **options))
            return {}

        art = self.cache.get("encode", STAGE_VERSIONS["encode"], {"data": self._data_key(), "encoder": encoder}, compute)
        return np.load(art.file("Z.npy")), art.seconds

    # ---------------------------------------------------------------- specs
    def scorer_spec(self, scorer: dict | ScorerSpec, where: str = "scorer") -> ScorerSpec:
        """The typed spec of ``scorer``, refused when this paradigm cannot run it."""
        spec = build_scorer(scorer, where)
        check_paradigm(spec, self.paradigm, where)
        return spec

    def method_spec(self, method: dict | MethodSpec, where: str = "method") -> MethodSpec:
        """The typed spec of ``method``, refused when this paradigm cannot run it."""
        spec = build_method(method, where)
        check_paradigm(spec, self.paradigm, where)
        return spec

    def _specs(self, scorers: list, methods: list) -> tuple[list[ScorerSpec], list[MethodSpec]]:
        scorer_specs = [self.scorer_spec(s, f"scorers[{i}]") for i, s in enumerate(scorers)]
        method_specs = [self.method_spec(m, f"methods[{i}]") for i, m in enumerate(methods)]
        check_distinct_labels(method_specs)
        return scorer_specs, method_specs

    # ---------------------------------------------------------------- scores
    def subset_scores(self, run, scorer: dict | ScorerSpec) -> np.ndarray:
        """(m,) scores of the run's samples from its dynamics; scorer e.g. {"name": "du", "window": 10}."""
        spec = self.scorer_spec(scorer)
        labels = self.labels[run.indices] if self.labelled else None
        return spec.score(run.dynamics, labels)

    def full_scores(self, scorer: dict | ScorerSpec, seed: int) -> ScoreResult:
        """Ground-truth scores from a run on all n samples."""
        spec = self.scorer_spec(scorer)
        run = self.scoring_run(spec, seed, None)
        return ScoreResult(self.subset_scores(run, spec), run.indices, run.costs)

    def scores_for(self, scorer: dict | ScorerSpec, method: dict | MethodSpec, seed: int, fraction: float | None = None) -> ScoreResult:
        """Scores of all n samples by ``method`` (its :meth:`~scorecast.specs.MethodSpec.run`): a direct
        method (full run, random, a training-free score on frozen features) or one that extrapolates
        from a run on a random ``fraction`` subset (subset seed = seed)."""
        scorer, method = self.scorer_spec(scorer), self.method_spec(method)
        if not method.direct and fraction is None:
            raise ScorecastError(f"method {method.title()} extrapolates: give a subset fraction")
        return method.run(self, scorer, seed, fraction)

    def extrapolated_scores(self, scorer: dict | ScorerSpec, fraction: float, seed: int, method: dict | MethodSpec) -> ScoreResult:
        """Scores of all n samples from a run on a ``fraction`` subset and an extrapolating ``method``."""
        method = self.method_spec(method)
        if method.direct:
            raise ScorecastError(f"method {method.title()} does not extrapolate; use scores_for")
        return self.scores_for(scorer, method, seed, fraction)

    def extrapolate(self, method: MethodSpec, scorer: ScorerSpec, seed: int, fraction: float, function, options_of) -> ScoreResult:
        """The cached extrapolation stage: ``function(Z, subset_idx, subset_scores, **options)`` -> (n,)
        on this paradigm's features Z (n, d) of a run on a ``fraction`` subset, with
        ``options = options_of(Z, run, subset_scores)``; ``calibrate`` applied after the cache. The cache
        key holds the run, the scorer and the method resolved (:meth:`scorecast.specs.Spec.cache_key`: every
        option that changes the result, defaults filled in; no label, no calibration) and the k they resolved to."""
        run = self.scoring_run(scorer, seed, fraction)
        computed = self.subset_scores(run, scorer)
        Z, feature_seconds = self.extrapolation_features(run)
        options = options_of(Z, run, computed)
        config = {"run": run.path.name, "scorer": scorer.cache_key(), "method": {**method.cache_key(), "k": options.get("k")}}

        def compute(folder: Path) -> dict:
            np.save(folder / "scores.npy", function(Z, run.indices, computed, **options))
            return {"k": options.get("k")}

        art = self.cache.get("extrapolate", STAGE_VERSIONS["extrapolate"], config, compute)
        result = np.load(art.file("scores.npy"))
        if method.calibrate:
            result = ex.calibrate_to_subset(result, run.indices)
        return ScoreResult(result, run.indices, {**run.costs, **feature_seconds, "extrapolation": art.seconds})

    # ---------------------------------------------------------------- tables
    def scored(self, scorers: list, methods: list, rates: list[float], seeds: list[int], fraction: float | None):
        """Yield (scorer spec, method spec, seed, ScoreResult, rate) for scorer x method x seed x rate,
        in that order. Every spec and rate is checked before the first score is computed."""
        scorers, methods = self._specs(scorers, methods)
        check_rates_keep_samples(rates, len(self.train_set))
        for scorer in scorers:
            for method in methods:
                for seed in seeds:
                    result = self.scores_for(scorer, method, seed, fraction)
                    for rate in rates:
                        yield scorer, method, seed, result, rate

    def against_truth(self, scorers: list, methods: list, fractions: list[float], seeds: list[int]):
        """Yield (scorer spec, method spec, fraction, seed, truth (n,), ScoreResult, outside (n - m,))
        for scorer x seed x fraction x method: extrapolated scores beside the full-data scores of the
        same seed and the positions outside the subset. Specs are checked before the first run."""
        scorers, methods = self._specs(scorers, methods)
        for scorer in scorers:
            for seed in seeds:
                truth = self.full_scores(scorer, seed).scores
                for fraction in fractions:
                    for method in methods:
                        result = self.extrapolated_scores(scorer, fraction, seed, method)
                        yield scorer, method, fraction, seed, truth, result, np.setdiff1d(np.arange(len(truth)), result.subset_idx)

    def fidelity_table(self, scorers: list, methods: list, fractions: list[float], seeds: list[int],
                       rates: tuple[float, ...] = (0.5,)) -> pd.DataFrame:
        """One row per scorer x method x fraction x seed: Pearson, Spearman, Kendall and tail
        overlaps against full-data scores (same seed), on samples OUTSIDE the subset, beside the
        ceiling (subset-run scores vs full-run scores on the subset samples). The last columns,
        ``scorer_spec`` and ``method_spec``, hold the specs each row was made with."""
        rows = []
        for scorer, method, fraction, seed, truth, result, outside in self.against_truth(scorers, methods, fractions, seeds):
            sub = result.subset_idx
            row = {
                "scorer": scorer.name, "method": method.title(), "fraction": fraction, "seed": seed,
                "pearson": metrics.pearson(truth[outside], result.scores[outside]),
                "spearman": metrics.spearman(truth[outside], result.scores[outside]),
                "kendall": metrics.kendall(truth[outside], result.scores[outside]),
                "ceiling_pearson": metrics.pearson(truth[sub], result.scores[sub]),
                "ceiling_spearman": metrics.spearman(truth[sub], result.scores[sub]),
            }
            for rate in rates:
                row[f"kept_overlap@{rate}"] = metrics.tail_overlap(truth[outside], result.scores[outside], rate, "kept")
                row[f"pruned_overlap@{rate}"] = metrics.tail_overlap(truth[outside], result.scores[outside], rate, "pruned")
            rows.append({**row, "scorer_spec": scorer, "method_spec": method})
        return pd.DataFrame(rows)

def summarise(table: pd.DataFrame, by: list[str], values: list[str]) -> pd.DataFrame:
    """Mean and std over seeds of ``values`` grouped ``by``: columns ``<value>_mean``, ``<value>_std``, ``n_seeds``."""
    grouped = table.groupby(by, dropna=False, sort=False)
    out = grouped[values].agg(["mean", "std"])
    out.columns = [f"{v}_{stat}" for v, stat in out.columns]
    out["n_seeds"] = grouped.size()
    return out.reset_index()

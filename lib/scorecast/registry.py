"""The registry: each scorer and method name -> (its spec type, the function that runs it).

Adding an extrapolator is one spec in :mod:`scorecast.specs`, one function here and one line in
:data:`METHODS`. Every paradigm's pipeline (:mod:`scorecast.pipeline`) looks names up here.

Scorer functions: ``(spec, dynamics, labels) -> (m,) scores`` of a run's m samples, from its recorded
``dynamics`` (``true_prob(view)`` (E, m), ``softmax(view)`` (E', m, C), ``correct(view)`` (E, m),
``softmax_epochs``, ``indices`` (m,)); ``labels`` (m,) are the samples' classes (None when unlabelled).

Method functions: ``(pipe, spec, scorer, seed, fraction) -> ScoreResult`` of all n samples, where
``pipe`` is a :class:`scorecast.shared.ScoreStages` (the supervised or unsupervised pipeline).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from . import extrapolate as ex
from . import proxy, scores, specs, unsupervised
from .stages import ScoreResult
from .validation import ScorecastError

if TYPE_CHECKING:
    from .shared import ScoreStages


# ============================================================================ scorers
def _du(spec: specs.DU, dyn, labels) -> np.ndarray:
    return scores.dynamic_uncertainty(dyn.true_prob(spec.view), spec.window, spec.variant)


def _tdds(spec: specs.TDDS, dyn, labels) -> np.ndarray:
    return scores.tdds(dyn.softmax(spec.view), spec.window, spec.decay)


def _el2n(spec: specs.EL2N, dyn, labels) -> np.ndarray:
    if spec.epoch not in dyn.softmax_epochs:
        raise ScorecastError(f"el2n needs the softmax of epoch {spec.epoch}; record.trajectory must include it (recorded: {dyn.softmax_epochs})")
    return scores.el2n(dyn.softmax(spec.view)[dyn.softmax_epochs.index(spec.epoch)], labels)


def _forgetting(spec: specs.Forgetting, dyn, labels) -> np.ndarray:
    return scores.forgetting(dyn.correct(spec.view), spec.never_learned)


def _random_subset_scores(spec: specs.RandomScorer, dyn, labels) -> np.ndarray:
    return scores.random_scores(len(dyn.indices), spec.seed)


# ============================================================================ direct methods
def _full(pipe: ScoreStages, spec: specs.Full, scorer, seed: int, fraction) -> ScoreResult:
    return pipe.full_scores(scorer, seed)


def _random(pipe: ScoreStages, spec: specs.RandomMethod, scorer, seed: int, fraction) -> ScoreResult:
    return ScoreResult(scores.random_scores(len(pipe.train_set), seed), np.arange(0), {})


def _frozen_feature_score(pipe: ScoreStages, spec: specs.FrozenFeatureMethod, function, **options) -> ScoreResult:
    Z, seconds = pipe.frozen_features(spec.encoder)
    start = time.perf_counter()
    values = function(Z, **options)
    return ScoreResult(values, np.arange(0), {"embedding": seconds, "scoring": time.perf_counter() - start})


def _prototypes(pipe: ScoreStages, spec: specs.Prototypes, scorer, seed: int, fraction) -> ScoreResult:
    clusters = pipe.train_set.num_classes if spec.clusters is None else spec.clusters
    return _frozen_feature_score(pipe, spec, scores.prototypicality, clusters=clusters, seed=seed)


def _zcore(pipe: ScoreStages, spec: specs.ZCore, scorer, seed: int, fraction) -> ScoreResult:
    return _frozen_feature_score(pipe, spec, scores.zero_shot_coreset, draws=spec.draws, sample_dim=spec.sample_dim,
                                 redundancy_nn=spec.redundancy_nn, redundancy_exp=spec.redundancy_exp, seed=seed)


# ============================================================================ extrapolators
def _check_size(pipe: ScoreStages, spec: specs.MethodSpec, fraction: float) -> None:
    """Refuse ``spec`` before its subset run when its k cannot fit the subset (see :func:`scorecast.params.check_method_size`)."""
    from .params import check_method_size

    n = len(pipe.train_set)
    check_method_size(spec, int(round(float(fraction) * n)), n, f"method {spec.title()}", f"the subset (fraction {fraction} of {n})")


def _knn(pipe: ScoreStages, spec: specs.KNN, scorer, seed: int, fraction) -> ScoreResult:
    _check_size(pipe, spec, fraction)

    def options(Z: np.ndarray, run, computed: np.ndarray) -> dict:
        k = spec.k
        if isinstance(k, str):  # "cv" or "oracle"
            ks = [candidate for candidate in spec.ks if candidate <= len(run.indices) * 0.8]
            if spec.k == "cv":
                k, _ = ex.select_k_cv(Z, run.indices, computed, ks=ks, seed=seed)
            else:
                k, _ = ex.select_k_oracle(Z, run.indices, computed, pipe.full_scores(scorer, seed).scores, ks=ks)
        return {"k": int(k), "weighting": spec.weighting, "metric": spec.metric, "backend": spec.backend}

    return pipe.extrapolate(spec, scorer, seed, fraction, ex.knn, options)


def _learned(function):
    """Runner of a trained extrapolator (GNN, MLP): every option of the spec except those shared by
    all methods, ``labels`` as the class labels (or None), the run's seed unless the spec sets one,
    and the experiment's device."""

    def run(pipe: ScoreStages, spec: specs.Learned, scorer, seed: int, fraction) -> ScoreResult:
        _check_size(pipe, spec, fraction)

        def options(Z, run, computed) -> dict:
            values = {k: v for k, v in spec.as_dict().items() if k not in ("name", "label", "calibrate")}
            return {**values, "labels": pipe.labels if spec.labels else None, "seed": seed if spec.seed is None else spec.seed, "device": pipe.device}

        return pipe.extrapolate(spec, scorer, seed, fraction, function, options)

    return run


def _seeded(function):
    """Runner of a baseline whose only option is its seed (default: the run's)."""

    def run(pipe: ScoreStages, spec, scorer, seed: int, fraction) -> ScoreResult:
        return pipe.extrapolate(spec, scorer, seed, fraction, function, lambda Z, run, computed: {"seed": seed if spec.seed is None else spec.seed})

    return run


# ============================================================================ proxy methods (supervised)
def _proxy(pipe, spec: specs.Proxy | specs.Hybrid, scorer, seed: int, fraction) -> ScoreResult:
    _check_size(pipe, spec, fraction)
    run = pipe.scoring_run(scorer, seed, fraction)
    computed = pipe.subset_scores(run, scorer)
    probs, proxy_seconds = pipe.proxy_predictions(run, spec.augmentations, scorer.view)
    start = time.perf_counter()
    result = proxy.proxy_uncertainty(probs, run.indices, computed, pipe.labels, spec.kind)
    seconds = {"scoring": run.seconds, "proxy_inference": proxy_seconds}
    if isinstance(spec, specs.Hybrid):
        neighbours = pipe.scores_for(scorer, {"name": "knn", "k": spec.k}, seed, fraction)
        result = proxy.rank_average(neighbours.scores, result, run.indices, spec.weight)
        seconds["embedding"] = neighbours.seconds["embedding"]
        seconds["extrapolation"] = neighbours.seconds["extrapolation"]
    seconds["extrapolation"] = seconds.get("extrapolation", 0.0) + time.perf_counter() - start
    return ScoreResult(result, run.indices, seconds)


def _stacked(pipe, spec: specs.Stacked, scorer, seed: int, fraction) -> ScoreResult:
    """Regressor on [kNN prediction, proxy features] fitted without leakage: the features of a
    subset sample come from a proxy trained on the other folds of the subset (cross-fitting),
    the features of unseen samples from the proxy trained on the whole subset."""
    run = pipe.scoring_run(scorer, seed, fraction)
    computed = pipe.subset_scores(run, scorer)
    probs, proxy_seconds = pipe.proxy_predictions(run, spec.augmentations, scorer.view)
    start = time.perf_counter()
    labels = pipe.labels
    kinds = proxy.FEATURES if spec.augmentations > 1 else tuple(f for f in proxy.FEATURES if f != "aug_std")

    def features(proxy_run, proxy_probs: np.ndarray, base: np.ndarray, base_scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
        Z, _ = pipe.embedding(proxy_run)
        neighbour = ex.knn(Z, base, base_scores, k=min(spec.k, len(base)))[rows]
        return np.column_stack([neighbour] + [proxy.proxy_feature(proxy_probs[:, rows], kind, labels[rows]) for kind in kinds])

    fold_of = np.random.default_rng(seed).permutation(len(run.indices)) % spec.folds
    X_subset = np.empty((len(run.indices), 1 + len(kinds)))
    crossfit_seconds = 0.0
    for fold in range(spec.folds):
        held, kept = run.indices[fold_of == fold], run.indices[fold_of != fold]
        fold_run = pipe.run(seed, scoring=scorer.scoring, indices=kept)
        fold_probs, fold_seconds = pipe.proxy_predictions(fold_run, spec.augmentations, scorer.view)
        crossfit_seconds += fold_run.seconds + fold_seconds + pipe.embedding(fold_run)[1]
        X_subset[fold_of == fold] = features(fold_run, fold_probs, kept, computed[fold_of != fold], held)
    rest = np.setdiff1d(np.arange(len(labels)), run.indices)
    X_rest = features(run, probs, run.indices, computed, rest)
    model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=seed).fit(X_subset, computed)
    out = np.empty(len(labels))
    out[run.indices], out[rest] = computed, model.predict(X_rest)
    seconds = {"scoring": run.seconds, "proxy_inference": proxy_seconds, "crossfit": crossfit_seconds, "extrapolation": time.perf_counter() - start}
    return ScoreResult(ex.calibrate_to_subset(out, run.indices), run.indices, seconds)


SCORERS = {
    "du": (specs.DU, _du),
    "tdds": (specs.TDDS, _tdds),
    "el2n": (specs.EL2N, _el2n),
    "forgetting": (specs.Forgetting, _forgetting),
    "random": (specs.RandomScorer, _random_subset_scores),
}
METHODS = {
    "full": (specs.Full, _full),
    "random": (specs.RandomMethod, _random),
    "prototypes": (specs.Prototypes, _prototypes),
    "zcore": (specs.ZCore, _zcore),
    "knn": (specs.KNN, _knn),
    "gnn": (specs.GNN, _learned(ex.gnn)),
    "mlp": (specs.MLP, _learned(ex.mlp)),
    "score_sampling": (specs.ScoreSampling, _seeded(ex.score_sampling)),
    "subset_plus_random": (specs.SubsetPlusRandom, _seeded(ex.subset_plus_random)),
    "proxy": (specs.Proxy, _proxy),
    "hybrid": (specs.Hybrid, _proxy),
    "stacked": (specs.Stacked, _stacked),
}


def _build(kind: str, table: dict, entry, where: str):
    if isinstance(entry, specs.Spec):
        return entry
    if not isinstance(entry, dict) or "name" not in entry:
        raise ScorecastError(f"{where}: each {kind} must be a mapping with a 'name' (one of {sorted(table)}), got {entry!r}")
    if entry["name"] not in table:
        raise ScorecastError(f"{where}.name={entry['name']!r} is not a {kind}{specs.did_you_mean(entry['name'], table)}; allowed: {sorted(table)}")
    return table[entry["name"]][0].build(entry, where)


def build_scorer(entry: dict | specs.ScorerSpec, where: str = "scorer") -> specs.ScorerSpec:
    """The typed spec of a scorer mapping (a spec is returned as is); ``where`` names it in errors."""
    return _build("scorer", SCORERS, entry, where)


def build_method(entry: dict | specs.MethodSpec, where: str = "method") -> specs.MethodSpec:
    """The typed spec of a method mapping (a spec is returned as is); ``where`` names it in errors."""
    return _build("method", METHODS, entry, where)


def method_label(method: dict | specs.MethodSpec) -> str:
    """Readable, stable name of a method, e.g. ``knn(k=10, weighting=exp)``; ``label`` overrides."""
    return build_method(method).title()


UNSUPERVISED_METHODS = ("full", "random", "knn", "gnn")  # run on frozen features, without labels


def check_paradigm(spec: specs.Spec, paradigm: str, where: str) -> None:
    """Raise unless ``paradigm`` ("supervised", "adversarial" or "unsupervised") can run ``spec``."""
    if paradigm == "unsupervised":
        if isinstance(spec, specs.ScorerSpec) and not spec.label_free:
            raise ScorecastError(f"{where}: scorer {spec.name!r} needs labels; the unsupervised paradigm runs {[n for n, (t, _) in SCORERS.items() if t.label_free]}")
        if isinstance(spec, specs.MethodSpec) and spec.name not in UNSUPERVISED_METHODS:
            raise ScorecastError(f"{where}: method {spec.name!r} is not available without labels; the unsupervised paradigm runs {list(UNSUPERVISED_METHODS)}")
        unsupervised.check_label_free(spec.given, where)
    if isinstance(spec, specs.ScorerSpec) and spec.view == "adv" and paradigm != "adversarial":
        raise ScorecastError(f"{where}.view 'adv' needs experiment.paradigm: adversarial (this run is {paradigm})")


def check_distinct_labels(methods: list[specs.MethodSpec]) -> None:
    """Raise when two different method specs share a label (their table rows would merge)."""
    seen = {}
    for method in methods:
        if seen.setdefault(method.title(), method) != method:
            raise ScorecastError(f"two different methods share the label {method.title()!r}; give one of them its own label")

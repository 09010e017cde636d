"""Pipeline stages with caching and per-phase timings: what the notebooks call.

Stages (each cached under a key of everything that produced it, each reporting its wall time as
measured when it was computed, so cost accounting stays honest on cache hits):

1. ``run(seed, fraction)``: train the scoring model on all samples (fraction None) or on a
   uniform random subset (the proxy run F_s), recording training dynamics.
2. ``subset_scores(run, scorer)``: pure scorer on the recorded dynamics, (m,) aligned to run.indices.
3. ``embedding(run)``: penultimate features of ALL n samples from the trained model (eval mode,
   test transform), (n, d).
4. ``extrapolate(...)``: an extrapolator from :mod:`scorecast.extrapolate` on (Z, subset scores).
5. ``retrain(scores, rate, seed)``: prune with ``prune.select``, retrain from scratch, evaluate.

``full_scores`` and ``extrapolated_scores`` chain these into a :class:`ScoreResult` whose
``seconds`` splits the cost into scoring (+ embedding) and extrapolation; ``accuracy_table`` and
``fidelity_table`` produce the tidy tables (one row per scorer x method x rate/fraction x seed)
that notebooks plot from.

Experiment config (validated by :mod:`scorecast.params`)::

    {"data": {"name": "digits", "root": None, ...}, "test_data": None, "model": "tiny_cnn",
     "paradigm": "supervised" | "adversarial", "scoring": Recipe fields, "record": {"source",
     "trajectory", "trajectory_length"}, "retrain": Recipe fields, "attack": PGD fields,
     "eval_attack_steps": 20, "device": "auto"}
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import extrapolate as ex
from . import metrics, proxy, prune, scores, unsupervised
from .cache import Cache
from .data import ImageDataset, load_dataset, random_subset
from .models import build_model
from .params import validate_experiment
from .train import PGD, Dynamics, Recipe, RecordSpec, embed, train, view_softmax
from .validation import ScorecastError, check_choice, check_positive_int

STAGE_VERSIONS = {"train": "1", "embed": "1", "extrapolate": "1", "retrain": "1", "proxy": "1", "encode": "1", "turtle": "1"}
PROXY_METHODS = ("proxy", "hybrid", "stacked")
TRAINING_FREE = {"prototypes": scores.prototypicality, "zcore": scores.zero_shot_coreset}  # on frozen features
DIRECT_METHODS = ("full", "random", *TRAINING_FREE)  # score every sample directly, no subset
PHASES = ("scoring", "embedding", "proxy_inference", "crossfit", "extrapolation")  # cost phases before final training
EXTRAPOLATORS = {
    "knn": ex.knn,
    "gnn": ex.gnn,
    "mlp": ex.mlp,
    "score_sampling": ex.score_sampling,
    "subset_plus_random": ex.subset_plus_random,
}
SCORERS = ("du", "tdds", "el2n", "forgetting", "random")
TURTLE_OPTIONS = set(inspect.signature(unsupervised.turtle).parameters) - {"Z", "num_clusters", "seed", "device", "record_dir"}


@functools.lru_cache(maxsize=8)
def _load(spec_json: str, split: str) -> ImageDataset:
    spec = json.loads(spec_json)
    name = spec.pop("name")
    return load_dataset(name, split, **spec)


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def method_label(method: dict) -> str:
    """Readable name of a method spec, e.g. ``knn(k=10, weighting=exp)``; ``label`` overrides."""
    if "label" in method:
        return method["label"]
    extra = ", ".join(f"{k}={v['name'] if isinstance(v, dict) else v}" for k, v in method.items() if k != "name")
    return f"{method['name']}({extra})" if extra else method["name"]


class _ScoreStages:
    """What every paradigm's pipeline shares: the training data and its cache identity, frozen
    features, and, given ``full_scores`` and ``extrapolated_scores``, the fidelity of extrapolated
    scores against full-data scores. Subclasses set ``experiment``, ``cache`` and ``device``."""

    @property
    def train_set(self) -> ImageDataset:
        return _load(json.dumps(self.experiment["data"], sort_keys=True), "train")

    def _data_key(self) -> dict:
        return {"spec": self.experiment["data"], "fingerprint": self.train_set.fingerprint()}

    def frozen_features(self, encoder: dict) -> tuple[np.ndarray, float]:
        """(label-free features (n, d) float32 of all training samples from a frozen ``encoder``
        ({"name": "pixels" | "pca" | "simclr" | "dinov2", ...options}), seconds); cached."""
        options = {k: v for k, v in encoder.items() if k != "name"}

        def compute(folder: Path) -> dict:
            np.save(folder / "Z.npy", unsupervised.encode(self.train_set, encoder["name"], seed=0, device=self.device, **options))
            return {}

        art = self.cache.get("encode", STAGE_VERSIONS["encode"], {"data": self._data_key(), "encoder": encoder}, compute)
        return np.load(art.file("Z.npy")), art.seconds

    def fidelity_table(self, scorers: list[dict], methods: list[dict], fractions: list[float], seeds: list[int],
                       rates: tuple[float, ...] = (0.5,)) -> pd.DataFrame:
        """One row per scorer x method x fraction x seed: Pearson, Spearman, Kendall and tail
        overlaps against full-data scores (same seed), on samples OUTSIDE the subset, beside the
        ceiling (subset-run scores vs full-run scores on the subset samples)."""
        rows = []
        for scorer in scorers:
            for seed in seeds:
                truth = self.full_scores(scorer, seed).scores
                for fraction in fractions:
                    for method in methods:
                        result = self.extrapolated_scores(scorer, fraction, seed, method)
                        outside = np.setdiff1d(np.arange(len(truth)), result.subset_idx)
                        sub = result.subset_idx
                        row = {
                            "scorer": scorer["name"], "method": method_label(method), "fraction": fraction, "seed": seed,
                            "pearson": metrics.pearson(truth[outside], result.scores[outside]),
                            "spearman": metrics.spearman(truth[outside], result.scores[outside]),
                            "kendall": metrics.kendall(truth[outside], result.scores[outside]),
                            "ceiling_pearson": metrics.pearson(truth[sub], result.scores[sub]),
                            "ceiling_spearman": metrics.spearman(truth[sub], result.scores[sub]),
                        }
                        for rate in rates:
                            row[f"kept_overlap@{rate}"] = metrics.tail_overlap(truth[outside], result.scores[outside], rate, "kept")
                            row[f"pruned_overlap@{rate}"] = metrics.tail_overlap(truth[outside], result.scores[outside], rate, "pruned")
                        rows.append(row)
        return pd.DataFrame(rows)


@dataclass
class Run:
    """A finished scoring run: model trained on ``indices`` ((m,) sorted dataset positions)."""

    indices: np.ndarray
    dynamics: Dynamics
    path: Path
    seconds: float
    model_name: str
    num_classes: int
    in_channels: int

    def model(self):
        model = build_model(self.model_name, self.num_classes, self.in_channels)
        model.load_state_dict(torch.load(self.path / "model.pt", map_location="cpu"))
        return model.eval()


@dataclass
class TurtleRun:
    """A finished TURTLE run on ``indices`` ((m,) sorted positions): q_t trajectory (E, m),
    the run's task encoder's cluster assignment of ALL n samples (n,), and its costs."""

    indices: np.ndarray
    true_prob: np.ndarray
    assigned_all: np.ndarray
    seconds: float
    path: Path
    encode_seconds: float


@dataclass
class ScoreResult:
    """Scores (n,) for every training sample plus how they were made.

    subset_idx: (m,) positions with computed scores (all n for full scoring); seconds: wall time
    per phase ("scoring", "embedding", "extrapolation").
    """

    scores: np.ndarray
    subset_idx: np.ndarray
    seconds: dict = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


class Pipeline(_ScoreStages):
    """All stages of one experiment config, sharing one artefact cache."""

    def __init__(self, experiment: dict, cache_root: str | Path | None = None):
        self.experiment = validate_experiment(experiment)
        self.cache = Cache(cache_root)
        self.model_name = self.experiment["model"]
        self.device = self.experiment["device"]
        self.attack = PGD(**self.experiment["attack"]) if self.experiment["paradigm"] == "adversarial" else None

    # ---------------------------------------------------------------- data
    @property
    def test_set(self) -> ImageDataset:
        """The test split of ``data``, or of ``test_data`` when given (e.g. generated training images
        tested on a real test set). A separate test set is normalised with the training set's
        statistics, the only ones the network has seen, and must have the same classes."""
        if self.experiment["test_data"] is None:
            return _load(json.dumps(self.experiment["data"], sort_keys=True), "test")
        test = _load(json.dumps(self.experiment["test_data"], sort_keys=True), "test")
        train = self.train_set
        if test.num_classes != train.num_classes:
            raise ScorecastError(f"experiment.test_data ({test.name}) has {test.num_classes} classes but data ({train.name}) has "
                                 f"{train.num_classes}: test on a set with the training labels (e.g. set data.num_classes for npz)")
        return dataclasses.replace(test, mean=train.mean, std=train.std)

    @property
    def labels(self) -> np.ndarray:
        return self.train_set.labels.numpy()

    # ---------------------------------------------------------------- stage 1: scoring run
    def run(self, seed: int, fraction: float | None = None, scoring: dict | None = None, indices: np.ndarray | None = None) -> Run:
        """Train the scoring model on all samples, on a random ``fraction`` (subset seed = seed) or
        on explicit ``indices`` (cross-fitting).

        ``scoring`` overrides recipe fields for this run (e.g. TDDS's SGD recipe)."""
        n = len(self.train_set)
        if indices is None:
            indices = np.arange(n) if fraction is None else random_subset(n, float(fraction), seed)
        recipe = Recipe(**{**self.experiment["scoring"], **(scoring or {})})
        record_cfg = self.experiment["record"]
        length = min(record_cfg["trajectory_length"], recipe.epochs)
        record = RecordSpec(record_cfg["source"], tuple(scores.trajectory_epochs(recipe.epochs, length, record_cfg["trajectory"])))
        config = {
            "data": self._data_key(),
            "model": self.model_name,
            "recipe": recipe.__dict__,
            "record": record.__dict__,
            "attack": None if self.attack is None else self.attack.__dict__,
            "seed": seed,
            "indices": _digest(indices),
        }

        def compute(folder: Path) -> dict:
            model = build_model(self.model_name, self.train_set.num_classes, self.train_set.in_channels, seed=seed)
            train(model, self.train_set, indices, recipe, seed, record, folder / "dynamics", self.attack, self.device,
                  desc=f"scoring run seed {seed}" + ("" if fraction is None else f" subset {fraction}"))
            torch.save(model.cpu().state_dict(), folder / "model.pt")
            return {"m": int(len(indices))}

        art = self.cache.get("train", STAGE_VERSIONS["train"], config, compute)
        ds = self.train_set
        return Run(indices, Dynamics(art.path / "dynamics"), art.path, art.seconds, self.model_name, ds.num_classes, ds.in_channels)

    # ---------------------------------------------------------------- stage 2: scores
    def subset_scores(self, run: Run, scorer: dict) -> np.ndarray:
        """(m,) scores of the run's samples from its dynamics; scorer e.g. {"name": "du", "window": 10}."""
        name = scorer["name"]
        check_choice("scorer.name", name, SCORERS)
        view = scorer.get("view", "clean")
        dyn = run.dynamics
        if name == "du":
            return scores.dynamic_uncertainty(dyn.true_prob(view), scorer.get("window", 10), scorer.get("variant", "clean"))
        if name == "tdds":
            return scores.tdds(dyn.softmax(view), scorer.get("window", 10), scorer.get("decay", 0.9))
        if name == "el2n":
            epoch = scorer.get("epoch", 0)
            slot = dyn.softmax_epochs.index(epoch) if epoch in dyn.softmax_epochs else None
            if slot is None:
                raise ScorecastError(f"el2n needs the softmax of epoch {epoch}; record.trajectory must include it (recorded: {dyn.softmax_epochs})")
            return scores.el2n(dyn.softmax(view)[slot], self.labels[run.indices])
        if name == "forgetting":
            return scores.forgetting(dyn.correct(view), scorer.get("never_learned", "max"))
        return scores.random_scores(len(run.indices), scorer.get("seed", 0))

    # ---------------------------------------------------------------- stage 3: embedding
    def embedding(self, run: Run) -> tuple[np.ndarray, float]:
        """(Z (n, d) float32 penultimate features of all samples, seconds)."""
        config = {"run": run.path.name, "data": self._data_key()}

        def compute(folder: Path) -> dict:
            np.save(folder / "Z.npy", embed(run.model(), self.train_set, device=self.device))
            return {}

        art = self.cache.get("embed", STAGE_VERSIONS["embed"], config, compute)
        return np.load(art.file("Z.npy")), art.seconds

    # ---------------------------------------------------------------- stage 4: extrapolation
    def full_scores(self, scorer: dict, seed: int) -> ScoreResult:
        """Ground-truth scores from a run on all n samples."""
        run = self.run(seed, None, scorer.get("scoring"))
        return ScoreResult(self.subset_scores(run, scorer), run.indices, {"scoring": run.seconds})

    def extrapolated_scores(self, scorer: dict, fraction: float, seed: int, method: dict) -> ScoreResult:
        """Scores of all n samples from a proxy run on a ``fraction`` subset and ``method``.

        method: {"name": one of EXTRAPOLATORS, ...its keyword arguments...}; for knn, ``k`` may be
        "cv" (cross-validated on the subset: non-oracle) or "oracle" (best correlation with the
        full-data scores of the same seed: the paper's choice). ``calibrate: True`` maps the
        extrapolated part onto the subset's score distribution. ``labels: True`` gives the GNN/MLP
        the class labels.
        """
        run = self.run(seed, fraction, scorer.get("scoring"))
        computed = self.subset_scores(run, scorer)
        name = method["name"]
        check_choice("method.name", name, (*EXTRAPOLATORS, *PROXY_METHODS))
        if name in PROXY_METHODS:
            return self._proxy_scores(run, computed, scorer, fraction, seed, method)
        Z, embed_seconds = self.embedding(run)
        options = {k: v for k, v in method.items() if k not in ("name", "label", "calibrate", "ks")}
        chosen_k = None
        if options.get("k") in ("cv", "oracle"):
            ks = [k for k in method.get("ks", (1, 5, 10, 20, 50, 100)) if k <= len(run.indices) * 0.8]
            if options["k"] == "cv":
                chosen_k, _ = ex.select_k_cv(Z, run.indices, computed, ks=ks, seed=seed)
            else:
                full = self.full_scores(scorer, seed).scores
                chosen_k, _ = ex.select_k_oracle(Z, run.indices, computed, full, ks=ks)
            options["k"] = int(chosen_k)
        if "labels" in options:
            options["labels"] = self.labels if options["labels"] else None
        if name in ("gnn", "mlp", "score_sampling", "subset_plus_random"):
            options.setdefault("seed", seed)
        if name in ("gnn", "mlp"):
            options.setdefault("device", self.device)
        config = {"run": run.path.name, "scorer": scorer, "method": {**method, "k": options.get("k")}}

        def compute(folder: Path) -> dict:
            np.save(folder / "scores.npy", EXTRAPOLATORS[name](Z, run.indices, computed, **options))
            return {"k": options.get("k")}

        art = self.cache.get("extrapolate", STAGE_VERSIONS["extrapolate"], config, compute)
        result = np.load(art.file("scores.npy"))
        if method.get("calibrate"):
            result = ex.calibrate_to_subset(result, run.indices)
        return ScoreResult(result, run.indices, {"scoring": run.seconds, "embedding": embed_seconds, "extrapolation": art.seconds})

    def proxy_predictions(self, run: Run, augmentations: int, view: str = "clean") -> tuple[np.ndarray, float]:
        """The proxy's softmax on every sample: ((K, n, C) float32, seconds). View 0 is the clean
        test-transform input, views 1..K-1 train-time augmentations; ``view="adv"`` attacks each
        view with the experiment's PGD (adversarial paradigm)."""
        check_positive_int("augmentations", augmentations)
        check_choice("view", view, ("clean", "adv"))
        if view == "adv" and self.attack is None:
            raise ScorecastError("view 'adv' needs experiment.paradigm: adversarial")
        config = {"run": run.path.name, "data": self._data_key(), "augmentations": augmentations, "view": view}

        def compute(folder: Path) -> dict:
            attack = self.attack if view == "adv" else None
            np.save(folder / "probs.npy", view_softmax(run.model(), self.train_set, augmentations, attack, self.device))
            return {}

        art = self.cache.get("proxy", STAGE_VERSIONS["proxy"], config, compute)
        return np.load(art.file("probs.npy")), art.seconds

    def _proxy_scores(self, run: Run, computed: np.ndarray, scorer: dict, fraction: float, seed: int, method: dict) -> ScoreResult:
        """method {"name": "proxy", "kind": feature, "augmentations": K} or {"name": "hybrid", same
        keys plus "k" (kNN k) and "weight" (share of the kNN ranks)}: see :mod:`scorecast.proxy`."""
        kind = method.get("kind", "aug_std")
        probs, proxy_seconds = self.proxy_predictions(run, method.get("augmentations", 8), scorer.get("view", "clean"))
        start = time.perf_counter()
        result = proxy.proxy_uncertainty(probs, run.indices, computed, self.labels, kind)
        seconds = {"scoring": run.seconds, "proxy_inference": proxy_seconds}
        if method["name"] == "stacked":
            result, seconds["crossfit"] = self._stacked_scores(run, computed, probs, scorer, seed, method)
        if method["name"] == "hybrid":
            neighbours = self.extrapolated_scores(scorer, fraction, seed, {"name": "knn", "k": method.get("k", 10)})
            result = proxy.rank_average(neighbours.scores, result, run.indices, method.get("weight", 0.5))
            seconds["embedding"] = neighbours.seconds["embedding"]
            seconds["extrapolation"] = neighbours.seconds["extrapolation"]
        seconds["extrapolation"] = seconds.get("extrapolation", 0.0) + time.perf_counter() - start
        return ScoreResult(result, run.indices, seconds)

    def _stacked_scores(self, run: Run, computed: np.ndarray, probs: np.ndarray, scorer: dict, seed: int, method: dict) -> tuple[np.ndarray, float]:
        """Regressor on [kNN prediction, proxy features] fitted without leakage: the features of a
        subset sample come from a proxy trained on the other folds of the subset (cross-fitting),
        the features of unseen samples from the proxy trained on the whole subset.
        Returns ((n,) scores, seconds spent on the cross-fitted proxies)."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        k, folds, augmentations = method.get("k", 10), method.get("folds", 2), probs.shape[0]
        labels = self.labels
        kinds = proxy.FEATURES if augmentations > 1 else tuple(f for f in proxy.FEATURES if f != "aug_std")

        def features(proxy_run: Run, proxy_probs: np.ndarray, base: np.ndarray, base_scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
            Z, _ = self.embedding(proxy_run)
            neighbour = ex.knn(Z, base, base_scores, k=min(k, len(base)))[rows]
            return np.column_stack([neighbour] + [proxy.proxy_feature(proxy_probs[:, rows], kind, labels[rows]) for kind in kinds])

        fold_of = np.random.default_rng(seed).permutation(len(run.indices)) % folds
        X_subset = np.empty((len(run.indices), 1 + len(kinds)))
        crossfit_seconds = 0.0
        for fold in range(folds):
            held, kept = run.indices[fold_of == fold], run.indices[fold_of != fold]
            fold_run = self.run(seed, scoring=scorer.get("scoring"), indices=kept)
            fold_probs, fold_seconds = self.proxy_predictions(fold_run, augmentations, scorer.get("view", "clean"))
            crossfit_seconds += fold_run.seconds + fold_seconds + self.embedding(fold_run)[1]
            X_subset[fold_of == fold] = features(fold_run, fold_probs, kept, computed[fold_of != fold], held)
        rest = np.setdiff1d(np.arange(len(labels)), run.indices)
        X_rest = features(run, probs, run.indices, computed, rest)
        model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=seed).fit(X_subset, computed)
        out = np.empty(len(labels))
        out[run.indices], out[rest] = computed, model.predict(X_rest)
        return ex.calibrate_to_subset(out, run.indices), crossfit_seconds

    def scores_for(self, scorer: dict, method: dict, seed: int, fraction: float | None = None) -> ScoreResult:
        """Dispatch: method "full" (full-data run), "random" (uniform scores), a training-free score
        on a frozen encoder's features ("prototypes": the self-supervised prototype metric; "zcore":
        zero-shot coreset selection; options are the scorer's keyword arguments) or an extrapolator."""
        if method["name"] == "full":
            return self.full_scores(scorer, seed)
        if method["name"] == "random":
            n = len(self.train_set)
            return ScoreResult(scores.random_scores(n, seed), np.arange(0), {})
        if method["name"] in TRAINING_FREE:
            Z, seconds = self.frozen_features(method.get("encoder", {"name": "pca"}))
            options = {k: v for k, v in method.items() if k not in ("name", "encoder")}
            allowed = set(inspect.signature(TRAINING_FREE[method["name"]]).parameters) - {"features", "seed"}
            if set(options) - allowed:
                raise ScorecastError(f"method {method['name']}: unknown options {sorted(set(options) - allowed)}; allowed: encoder, {', '.join(sorted(allowed))}")
            if method["name"] == "prototypes":
                options.setdefault("clusters", self.train_set.num_classes)
            start = time.perf_counter()
            values = TRAINING_FREE[method["name"]](Z, seed=seed, **options)
            return ScoreResult(values, np.arange(0), {"embedding": seconds, "scoring": time.perf_counter() - start})
        if fraction is None:
            raise ScorecastError(f"method {method_label(method)} extrapolates: give a subset fraction")
        return self.extrapolated_scores(scorer, fraction, seed, method)

    # ---------------------------------------------------------------- stage 5: prune + retrain
    def retrain(self, score_values: np.ndarray, rate: float, seed: int, class_balanced: bool = False) -> dict:
        """Prune ``rate`` of the samples by ``score_values`` (n,), retrain from scratch, evaluate.

        Returns prune.retrain_and_evaluate's dict (top1, top5, robust_top1, n_kept, seconds)."""
        kept = prune.select(score_values, rate, self.labels, class_balanced)
        recipe = Recipe(**self.experiment["retrain"])
        robust = None if self.attack is None else PGD(self.attack.eps, self.attack.step, self.experiment["eval_attack_steps"])
        config = {
            "data": self._data_key(),
            "test": self.experiment["test_data"],
            "model": self.model_name,
            "recipe": recipe.__dict__,
            "attack": None if self.attack is None else self.attack.__dict__,
            "robust": None if robust is None else robust.__dict__,
            "kept": _digest(kept),
            "seed": seed,
        }

        def compute(folder: Path) -> dict:
            return prune.retrain_and_evaluate(self.model_name, self.train_set, self.test_set, kept, recipe, seed, self.attack, robust, self.device)

        return self.cache.get("retrain", STAGE_VERSIONS["retrain"], config, compute).info

    # ---------------------------------------------------------------- tidy tables
    def accuracy_table(self, scorers: list[dict], methods: list[dict], rates: list[float], seeds: list[int],
                       fraction: float | None = None, class_balanced: bool = False) -> pd.DataFrame:
        """One row per scorer x method x rate x seed: accuracy after pruning and retraining, and
        the cost of each phase (scoring, embedding, extrapolation, final training) in seconds."""
        rows = []
        for scorer in scorers:
            for method in methods:
                for seed in seeds:
                    result = self.scores_for(scorer, method, seed, fraction)
                    for rate in rates:
                        out = self.retrain(result.scores, rate, seed, class_balanced)
                        rows.append({
                            "scorer": scorer["name"], "method": method_label(method), "fraction": None if method["name"] in DIRECT_METHODS else fraction,
                            "rate": rate, "seed": seed, "top1": out["top1"], "top5": out["top5"], "robust_top1": out["robust_top1"],
                            **{f"{phase}_seconds": result.seconds.get(phase, 0.0) for phase in PHASES},
                            "final_training_seconds": out["train_seconds"],
                        })
        return pd.DataFrame(rows)



class UnsupervisedPipeline(_ScoreStages):
    """The unsupervised paradigm: TURTLE on frozen, label-free features; no labels anywhere.

    Labels are read only to report cluster accuracy (Hungarian matching). Stages: ``features``
    (the frozen encoder, cached), ``run`` (TURTLE on all samples, a random subset or given
    indices, recording q_t = tau_t(x)[final pseudo-label]), scores (DU on q_t), extrapolation on the
    frozen features (kNN/GNN without labels, as in the paper), and ``prune_and_cluster`` (TURTLE
    re-run on the kept samples; its task encoder labels all samples; cluster accuracy on all).
    encoder: {"name": "pixels" | "pca" | "simclr" | "dinov2", ...options of unsupervised.encode};
    turtle: keyword arguments of :func:`scorecast.unsupervised.turtle` (epochs, gamma, ...).
    """

    def __init__(self, experiment: dict | str, encoder: dict, turtle: dict, cache_root: str | Path | None = None):
        self.experiment = validate_experiment(experiment)
        unsupervised.check_label_free({"encoder": encoder, "turtle": turtle}, "parameters")
        if "name" not in encoder:
            raise ScorecastError(f"encoder needs a name, one of {list(unsupervised.ENCODERS)}")
        unknown = set(turtle) - TURTLE_OPTIONS
        if unknown:
            raise ScorecastError(f"turtle options {sorted(unknown)} are not allowed; choose from {sorted(TURTLE_OPTIONS)} (seed and device come from the pipeline)")
        self.encoder, self.turtle_options = dict(encoder), dict(turtle)
        self.cache = Cache(cache_root)
        self.device = self.experiment["device"]

    def features(self) -> tuple[np.ndarray, float]:
        """(frozen label-free features (n, d) float32 of this pipeline's encoder, seconds)."""
        return self.frozen_features(self.encoder)

    def run(self, seed: int, fraction: float | None = None, indices: np.ndarray | None = None) -> TurtleRun:
        """TURTLE on all samples, a random ``fraction`` (subset seed = seed) or ``indices``."""
        Z, encode_seconds = self.features()
        n = len(Z)
        if indices is None:
            indices = np.arange(n) if fraction is None else random_subset(n, float(fraction), seed)
        config = {"data": self._data_key(), "encoder": self.encoder, "turtle": self.turtle_options, "seed": seed, "indices": _digest(indices)}

        def compute(folder: Path) -> dict:
            result = unsupervised.turtle(Z[indices], self.train_set.num_classes, seed=seed, device=self.device, record_dir=folder, **self.turtle_options)
            with torch.no_grad():
                all_labels = result.task_encoder(torch.as_tensor(Z)).argmax(1).numpy()
            np.save(folder / "assigned_all.npy", all_labels)
            (folder / "softmax.npy").unlink()  # (E, m, C) trajectory: q_t and the assignment are all later stages read
            return {}

        art = self.cache.get("turtle", STAGE_VERSIONS["turtle"], config, compute)
        return TurtleRun(indices, np.load(art.file("true_prob.npy"), mmap_mode="r"), np.load(art.file("assigned_all.npy")), art.seconds, art.path, encode_seconds)

    def subset_scores(self, run: TurtleRun, scorer: dict) -> np.ndarray:
        """(m,) DU on q_t (or random); other scorers need labels and are refused."""
        check_choice("scorer.name (unsupervised)", scorer["name"], ("du", "random"))
        if scorer["name"] == "random":
            return scores.random_scores(len(run.indices), scorer.get("seed", 0))
        return scores.dynamic_uncertainty(run.true_prob, scorer.get("window", 10), scorer.get("variant", "clean"))

    def full_scores(self, scorer: dict, seed: int) -> ScoreResult:
        run = self.run(seed)
        return ScoreResult(self.subset_scores(run, scorer), run.indices, {"encoding": run.encode_seconds, "scoring": run.seconds})

    def extrapolated_scores(self, scorer: dict, fraction: float, seed: int, method: dict) -> ScoreResult:
        """Subset TURTLE run, then ``method`` ("knn" or "gnn", no labels) on the frozen features."""
        unsupervised.check_label_free(method, "method")
        check_choice("method.name (unsupervised)", method["name"], ("knn", "gnn"))
        run = self.run(seed, fraction)
        computed = self.subset_scores(run, scorer)
        Z, _ = self.features()
        options = {k: v for k, v in method.items() if k not in ("name", "label")}
        if method["name"] == "gnn":
            options.setdefault("seed", seed)
            options.setdefault("device", self.device)

        def compute(folder: Path) -> dict:
            np.save(folder / "scores.npy", EXTRAPOLATORS[method["name"]](Z, run.indices, computed, **options))
            return {}

        art = self.cache.get("extrapolate", STAGE_VERSIONS["extrapolate"], {"run": run.path.name, "scorer": scorer, "method": method}, compute)
        seconds = {"encoding": run.encode_seconds, "scoring": run.seconds, "extrapolation": art.seconds}
        return ScoreResult(np.load(art.file("scores.npy")), run.indices, seconds)

    def prune_and_cluster(self, score_values: np.ndarray, rate: float, seed: int) -> dict:
        """Keep the top (1 - rate) by score, re-run TURTLE on them, label ALL samples with the new
        task encoder; returns {"cluster_accuracy" (on all n), "n_kept", "seconds"}."""
        kept = prune.select(score_values, rate)
        run = self.run(seed, indices=kept)
        return {"cluster_accuracy": metrics.cluster_accuracy(self.train_set.labels.numpy(), run.assigned_all), "n_kept": len(kept), "seconds": run.seconds}

    def cluster_table(self, scorers: list[dict], methods: list[dict], rates: list[float], seeds: list[int], fraction: float) -> pd.DataFrame:
        """One row per scorer x method x rate x seed: TURTLE cluster accuracy after pruning.
        methods: {"name": "full"}, {"name": "random"} or an extrapolator spec."""
        rows = []
        for scorer in scorers:
            for method in methods:
                for seed in seeds:
                    if method["name"] == "full":
                        values = self.full_scores(scorer, seed).scores
                    elif method["name"] == "random":
                        values = scores.random_scores(len(self.train_set), seed)
                    else:
                        values = self.extrapolated_scores(scorer, fraction, seed, method).scores
                    for rate in rates:
                        out = self.prune_and_cluster(values, rate, seed)
                        rows.append({"scorer": scorer["name"], "method": method_label(method), "rate": rate, "seed": seed,
                                     "cluster_accuracy": out["cluster_accuracy"], "n_kept": out["n_kept"]})
        return pd.DataFrame(rows)

def summarise(table: pd.DataFrame, by: list[str], values: list[str]) -> pd.DataFrame:
    """Mean and std over seeds of ``values`` grouped ``by``: columns ``<value>_mean``, ``<value>_std``, ``n_seeds``."""
    grouped = table.groupby(by, dropna=False, sort=False)
    out = grouped[values].agg(["mean", "std"])
    out.columns = [f"{v}_{stat}" for v, stat in out.columns]
    out["n_seeds"] = grouped.size()
    return out.reset_index()


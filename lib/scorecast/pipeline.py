"""The paradigms' pipelines, what the notebooks call: :class:`Pipeline` (supervised and adversarial)
and :class:`UnsupervisedPipeline` (TURTLE). Each stage is cached under a key of everything that
produced it and reports its wall time as measured when it was computed, so cost accounting stays
honest on cache hits.

Stages of :class:`Pipeline`:

1. ``run(seed, fraction)``: train the scoring model on all samples (fraction None) or on a
   uniform random subset (the proxy run F_s), recording training dynamics.
2. ``subset_scores(run, scorer)``: the scorer on the recorded dynamics, (m,) aligned to run.indices.
3. ``embedding(run)``: penultimate features of ALL n samples from the trained model (eval mode,
   test transform), (n, d).
4. ``scores_for(scorer, method, seed, fraction)``: the method's spec (looked up in
   :mod:`scorecast.registry`) runs itself: full run, random, training-free, or extrapolation from a
   subset run -> :class:`ScoreResult`.
5. ``retrain(scores, rate, seed)``: prune with ``prune.select``, retrain from scratch, evaluate.

``accuracy_table`` and ``fidelity_table`` produce the tidy tables (one row per scorer x method x
rate/fraction x seed) that notebooks plot from; each row also carries its ``scorer_spec`` and
``method_spec``. Scorers and methods are plain mappings or specs (:mod:`scorecast.specs`).
Shared by the paradigms: :mod:`scorecast.shared`.

Experiment config: a mapping or an experiment file, validated and filled in from
:data:`scorecast.params.DEFAULT_EXPERIMENT` by :func:`scorecast.params.validate_experiment` into an
:class:`~scorecast.experiment.Experiment` (the pipeline's ``experiment``)::

    {"data": {"name": "digits", "root": None, ...}, "test_data": None, "model": "tiny_cnn",
     "paradigm": "supervised" | "adversarial", "scoring": Recipe fields, "record": {"source",
     "trajectory", "trajectory_length"}, "subset_length": "phase" | "steps" | "epochs",
     "retrain": Recipe fields, "attack": PGD fields, "eval_attack_steps": 20,
     "eval_autoattack_samples": None, "device": "auto", "processes": 1}

``processes: N`` (N > 1) trains every scoring run and retraining data-parallel on N processes of
this node (one GPU each on CUDA, gloo processes on a CPU), started with ``torchrun`` by
:func:`scorecast.distributed.launch` from the calling process, so a notebook (also under papermill)
needs no launcher of its own; the caller writes the cache. Such runs are keyed with N (the cache's
machine settings): they equal a one-process run to float tolerance, not bit for bit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import metrics, prune, unsupervised
from .cache import Cache
from .data import ImageDataset, check_test_split, random_subset
from .distributed import check_processes, launch
from .experiment import Experiment
from .models import build_model
from .params import check_unsupervised_options, validate_experiment
from .provenance import use_tier_threads
from .recipe import Recipe
from .registry import method_label
from .shared import ScoreStages, summarise
from .specs import VIEWS, ScorerSpec
from .stages import PHASES, STAGE_VERSIONS, Run, ScoreResult, TurtleRun, digest, load_split
from .train import PGD, Dynamics, RecordSpec, embed, train, view_softmax
from .validation import ScorecastError, check_choice, check_positive_int, check_seed

__all__ = ["PHASES", "STAGE_VERSIONS", "Pipeline", "Run", "ScoreResult", "TurtleRun", "UnsupervisedPipeline", "method_label", "summarise"]


PHASE_TOLERANCE = 0.05  # half of scorecast.health.PHASE_GAP: a phase-matched run passes the health check


def predicted_multiple(n: int, m: int) -> int:
    """The first multiple of the full run's epochs a subset run of m of n samples tries:
    round(sqrt(n / m)), the geometric mean of the paper's epoch-matched 1 and the step-matched
    n / m (which overshoots into memorising the subset). Measured on CIFAR-10 (cnn_bn recipe,
    BENCHMARKS.md): 2 for a 20 % subset lands in the full run's phase at 0.4 of its epochs."""
    return max(1, min(round(n / m), round(float(np.sqrt(n / m)))))


def final_fit(run: Run) -> float:
    """Phase of training a run ends in: the mean true-label probability of its own training
    samples at its last record (clean view)."""
    return float(np.mean(run.dynamics.true_prob()[-1]))


class Pipeline(ScoreStages):
    """All stages of one experiment config, sharing one artefact cache."""

    def __init__(self, experiment: dict | str | Path | Experiment, cache_root: str | Path | None = None):
        use_tier_threads(experiment)  # a hand run of params/<tier>/... uses that tier's thread count, as run_all.sh does
        self.experiment = validate_experiment(experiment)
        self.model_name = self.experiment.model
        self.device = self.experiment.device
        self.processes = check_processes(self.experiment.processes, self.device)
        self.cache = Cache(cache_root, self.device)  # stages computed in this process
        self.training_cache = Cache(cache_root, self.device, self.processes)  # scoring runs and retraining
        self.paradigm = self.experiment.paradigm
        self.attack = self.experiment.attack if self.paradigm == "adversarial" else None
        self.test_set  # noqa: B018 -- loads both splits and checks them together (check_test_split) before any training

    # ---------------------------------------------------------------- data
    @property
    def test_set(self) -> ImageDataset:
        """The test split of ``data``, or of ``test_data`` when given (e.g. generated training images
        tested on a real test set). A separate test set is normalised with the training set's
        statistics, the only ones the network has seen, and its labels must be training classes
        (:func:`scorecast.data.check_test_split`, also run when the pipeline is built)."""
        train, separate = self.train_set, self.experiment.test_data is not None
        test = load_split(self.experiment.test_data if separate else self.experiment.data, "test")
        check_test_split(train, test, f"experiment.data ({train.name})", f"experiment.test_data ({test.name})" if separate else "its test split")
        return dataclasses.replace(test, mean=train.mean, std=train.std, classes=train.classes) if separate else test

    @property
    def labels(self) -> np.ndarray:
        return self.train_set.labels.numpy()

    # ---------------------------------------------------------------- stage 1: scoring run
    def run(self, seed: int, fraction: float | None = None, scoring: dict | None = None, indices: np.ndarray | None = None,
            softmax: bool = False) -> Run:
        """Train the scoring model on all samples, on a random ``fraction`` (subset seed = seed) or
        on explicit ``indices`` (cross-fitting). ``softmax``: also record the full softmax of the last
        ``record.trajectory_length`` records (TDDS, EL2N); without it, a cached run recording none is
        used, else a cached one that recorded them (the same training), else one recording none is trained.

        ``scoring`` overrides recipe fields for this run (e.g. TDDS's SGD recipe). A run on m < n
        samples trains ``every`` times the full run's epochs and records one epoch in ``every``, so
        it keeps the full run's number of records (DU windows and TDDS trajectories mean the same).
        ``experiment.subset_length`` sets ``every``: ``epochs`` 1 (the paper's protocol), ``steps``
        round(n / m) (as many optimizer steps as the full run), ``phase`` the multiple whose run ends
        within ``PHASE_TOLERANCE`` of the full run's final mean true-label probability, searched from a
        predicted start (:meth:`phase_matched_run`)."""
        n, seed = len(self.train_set), check_seed(seed)
        if indices is None:
            indices = np.arange(n) if fraction is None else random_subset(n, float(fraction), seed)
        protocol = self.experiment.subset_length
        if len(indices) == n or protocol == "epochs":
            return self._run(seed, indices, scoring, 1, fraction, softmax)
        if protocol == "steps":
            return self._run(seed, indices, scoring, max(1, round(n / len(indices))), fraction, softmax)
        return self.phase_matched_run(seed, indices, scoring, fraction, softmax)

    def phase_matched_run(self, seed: int, indices: np.ndarray, scoring: dict | None, fraction: float | None = None,
                          softmax: bool = False) -> Run:
        """The subset run in the full run's phase of training, found without paying for a search
        from 1x: the first try is :func:`predicted_multiple` (the geometric mean of the
        epoch-matched 1 and the step-matched n / m; 2 for a 20 % subset, 3 for 10 %). A run that
        ends more than ``PHASE_TOLERANCE`` below the full run's final mean true-label probability
        (:func:`final_fit`) is followed by the next multiple up, one that ends more than that above
        it by the next one down, until a run lands within the tolerance, the direction reverses or
        the bounds (1, round(n / m)) are reached; the tried run that ends closest is kept. Every
        tried run is cached; the returned run's ``seconds`` is the whole search's cost and its
        ``searched`` the multiples tried."""
        n = len(self.train_set)
        target = final_fit(self._run(seed, np.arange(n), scoring, 1, None, softmax))
        ceiling = max(1, round(n / len(indices)))
        every, step, tried = predicted_multiple(n, len(indices)), 0, {}
        while every not in tried:
            run = tried[every] = self._run(seed, indices, scoring, every, fraction, softmax)
            gap = final_fit(run) - target
            direction = 0 if abs(gap) <= PHASE_TOLERANCE else (1 if gap < 0 else -1)
            if direction == 0 or direction == -step or not 1 <= every + direction <= ceiling:
                break
            every, step = every + direction, direction
        chosen = min(tried.values(), key=lambda r: abs(final_fit(r) - target))
        return dataclasses.replace(chosen, seconds=sum(r.seconds for r in tried.values()), searched=tuple(tried))

    def _run(self, seed: int, indices: np.ndarray, scoring: dict | None, every: int, fraction: float | None, softmax: bool) -> Run:
        """One scoring run on ``indices``: ``every`` times the recipe's epochs, recorded every ``every``
        epochs, with the softmax trajectory when ``softmax`` (cached; a cached run with the trajectory
        serves a request without)."""
        recipe = dataclasses.replace(self.experiment.scoring, **(scoring or {}))
        records = recipe.epochs
        recipe = dataclasses.replace(recipe, epochs=recipe.epochs * every)
        source = self.experiment.record.source
        trajectory = self.experiment.record.softmax_records(records)

        def config_of(record: RecordSpec) -> dict:
            return {"data": self._data_key(), "model": self.model_name, "recipe": recipe.key(), "record": record.__dict__,
                    "attack": None if self.attack is None else self.attack.__dict__, "seed": seed, "indices": digest(indices)}

        record = RecordSpec(source, trajectory if softmax else (), every)
        config = config_of(record)
        if not softmax and trajectory and self.training_cache.load("train", STAGE_VERSIONS["train"], config) is None:
            with_softmax = config_of(RecordSpec(source, trajectory, every))
            if self.training_cache.load("train", STAGE_VERSIONS["train"], with_softmax) is not None:
                config = with_softmax  # the same training, recorded with more: no need to train again

        def compute(folder: Path) -> dict:
            desc = f"scoring run seed {seed}" + ("" if fraction is None else f" subset {fraction}")
            return self._training(self._scoring_model, folder=folder, indices=indices, recipe=recipe, seed=seed, record=record, desc=desc)

        art = self.training_cache.get("train", STAGE_VERSIONS["train"], config, compute)
        ds = self.train_set
        return Run(indices, Dynamics(art.path / "dynamics"), art.path, art.seconds, self.model_name, ds.num_classes, ds.in_channels)

    def _training(self, function, **kwargs):
        """``function(**kwargs, device=...)`` here, or, with ``experiment.processes`` above 1, on that
        many data-parallel processes (:func:`scorecast.distributed.launch`); rank 0's result."""
        if self.processes == 1:
            return function(**kwargs, device=self.device)
        return launch(function, kwargs, self.processes, self.device)

    def _scoring_model(self, folder: Path, indices: np.ndarray, recipe: Recipe, seed: int, record: RecordSpec, desc: str,
                       device: str, distributed: bool = False) -> dict:
        """Train the scoring model on ``indices`` (m,) with the experiment's attack, writing its
        dynamics to ``folder/dynamics`` and its weights to ``folder/model.pt`` (rank 0 of a
        data-parallel run writes both)."""
        model = build_model(self.model_name, self.train_set.num_classes, self.train_set.in_channels, seed=seed)
        train(model, self.train_set, indices, recipe, seed, record, folder / "dynamics", self.attack, device, desc=desc, distributed=distributed)
        if not distributed or torch.distributed.get_rank() == 0:
            torch.save(model.cpu().state_dict(), folder / "model.pt")
        return {"m": int(len(indices))}

    def scoring_run(self, scorer: ScorerSpec, seed: int, fraction: float | None) -> Run:
        """The run ``scorer`` reads: its recipe overrides, all samples or a random ``fraction``, and the
        softmax trajectory only when the scorer reads it."""
        return self.run(seed, fraction, scorer.scoring, softmax=scorer.reads_softmax)

    # ---------------------------------------------------------------- stage 3: embedding
    def embedding(self, run: Run) -> tuple[np.ndarray, float]:
        """(Z (n, d) float32 penultimate features of all samples, seconds)."""
        config = {"run": run.path.name, "data": self._data_key()}

        def compute(folder: Path) -> dict:
            np.save(folder / "Z.npy", embed(run.model(), self.train_set, device=self.device))
            return {}

        art = self.cache.get("embed", STAGE_VERSIONS["embed"], config, compute)
        return np.load(art.file("Z.npy")), art.seconds

    def extrapolation_features(self, run: Run) -> tuple[np.ndarray, dict]:
        """Extrapolators work on the run's own embedding: (Z (n, d), {"embedding": seconds})."""
        Z, seconds = self.embedding(run)
        return Z, {"embedding": seconds}

    # ---------------------------------------------------------------- proxy methods' predictions
    def proxy_predictions(self, run: Run, augmentations: int, view: str = "clean") -> tuple[np.ndarray, float]:
        """The proxy's softmax on every sample: ((K, n, C) float32, seconds). View 0 is the clean
        test-transform input, views 1..K-1 train-time augmentations; ``view="adv"`` attacks each
        view with the experiment's PGD (adversarial paradigm)."""
        check_positive_int("augmentations", augmentations)
        check_choice("view", view, VIEWS)
        if view == "adv" and self.attack is None:
            raise ScorecastError("view 'adv' needs experiment.paradigm: adversarial")
        config = {"run": run.path.name, "data": self._data_key(), "augmentations": augmentations, "view": view}

        def compute(folder: Path) -> dict:
            attack = self.attack if view == "adv" else None
            shape = (augmentations, len(self.train_set), self.train_set.num_classes)
            probs = np.lib.format.open_memmap(folder / "probs.npy", mode="w+", dtype=np.float32, shape=shape)
            view_softmax(run.model(), self.train_set, augmentations, attack, self.device, out=probs)
            probs.flush()
            return {}

        art = self.cache.get("proxy", STAGE_VERSIONS["proxy"], config, compute)
        return np.load(art.file("probs.npy"), mmap_mode="r"), art.seconds  # read from disk as used: (K, n, C) can exceed RAM

    # ---------------------------------------------------------------- stage 5: prune + retrain
    def retrain(self, score_values: np.ndarray, rate: float, seed: int, class_balanced: bool = False) -> dict:
        """Prune ``rate`` of the samples by ``score_values`` (n,), retrain from scratch, evaluate.

        Returns prune.retrain_and_evaluate's dict (top1, top5, robust_top1, n_kept, seconds; autoattack_top1
        when the adversarial experiment sets ``eval_autoattack_samples``)."""
        kept = prune.select(score_values, rate, self.labels, class_balanced)
        recipe = self.experiment.retrain
        robust = None if self.attack is None else PGD(self.attack.eps, self.attack.step, self.experiment.eval_attack_steps)
        config = {
            "data": self._data_key(),
            "test": {"spec": self.experiment.test_data, "fingerprint": self.test_set.fingerprint()},
            "model": self.model_name,
            "recipe": recipe.key(),
            "attack": None if self.attack is None else self.attack.__dict__,
            "robust": None if robust is None else robust.__dict__,
            "kept": digest(kept),
            "seed": seed,
        }

        autoattack = self.experiment.eval_autoattack_samples if self.attack is not None else None
        if autoattack is not None:  # only then: other runs keep their cache keys
            config["autoattack"] = {"samples": autoattack, "eps": robust.eps, "version": "standard without FAB-T"}

        def compute(folder: Path) -> dict:
            return self._training(self._retrained_model, kept=kept, recipe=recipe, seed=seed, robust=robust, autoattack=autoattack)

        return self.training_cache.get("retrain", STAGE_VERSIONS["retrain"], config, compute).info

    def _retrained_model(self, kept: np.ndarray, recipe: Recipe, seed: int, robust: PGD | None, autoattack: int | None,
                         device: str, distributed: bool = False) -> dict | None:
        """:func:`scorecast.prune.retrain_and_evaluate` on the ``kept`` (m,) samples: its dict (None on
        ranks other than 0 of a data-parallel run)."""
        return prune.retrain_and_evaluate(self.model_name, self.train_set, self.test_set, kept, recipe, seed, self.attack, robust, device,
                                          autoattack, distributed)

    # ---------------------------------------------------------------- tidy tables
    def accuracy_table(self, scorers: list, methods: list, rates: list[float], seeds: list[int],
                       fraction: float | None = None, class_balanced: bool = False) -> pd.DataFrame:
        """One row per scorer x method x rate x seed: accuracy after pruning and retraining, and
        the cost of each phase (scoring, embedding, extrapolation, final training) in seconds; the
        last columns, ``scorer_spec`` and ``method_spec``, hold the specs each row was made with."""
        rows = []
        for scorer, method, seed, result, rate in self.scored(scorers, methods, rates, seeds, fraction):
            out = self.retrain(result.scores, rate, seed, class_balanced)
            rows.append({
                "scorer": scorer.name, "method": method.title(), "fraction": None if method.direct else fraction,
                "rate": rate, "seed": seed, "top1": out["top1"], "top5": out["top5"], "robust_top1": out["robust_top1"],
                **({"autoattack_top1": out["autoattack_top1"]} if "autoattack_top1" in out else {}),
                **{f"{phase}_seconds": result.seconds.get(phase, 0.0) for phase in PHASES},
                "final_training_seconds": out["train_seconds"], "class_balanced": class_balanced,
                "scorer_spec": scorer, "method_spec": method,
            })
        return pd.DataFrame(rows)

    def pruning_table(self, scorers: list, methods: list, rates: list[float], seeds: list[int],
                      fractions: list[float], balanced_methods: list = ()) -> pd.DataFrame:
        """:meth:`accuracy_table` over every subset fraction: global pruning for ``methods`` at
        ``rates``, and class-balanced pruning (each class keeps the same share) for
        ``balanced_methods`` at the rates above 0 (rate 0 keeps every sample either way). Methods
        that need no subset (full, random) appear once, not once per fraction. One row per scorer x
        method x pruning x rate x seed; ``class_balanced`` (bool) tells the two prunings apart."""
        tables = [self.accuracy_table(scorers, methods, rates, seeds, fraction) for fraction in fractions]
        pruned_rates = [rate for rate in rates if rate > 0]
        if balanced_methods and pruned_rates:
            tables += [self.accuracy_table(scorers, balanced_methods, pruned_rates, seeds, fraction, class_balanced=True)
                       for fraction in fractions]
        table = pd.concat(tables, ignore_index=True)
        return table.drop_duplicates(["scorer", "method", "fraction", "class_balanced", "rate", "seed"]).reset_index(drop=True)


class UnsupervisedPipeline(ScoreStages):
    """The unsupervised paradigm: TURTLE on frozen, label-free features; no labels anywhere.

    Labels are read only to report cluster accuracy (Hungarian matching). Stages: ``features``
    (the frozen encoder, cached), ``run`` (TURTLE on all samples, a random subset or given
    indices, recording q_t = tau_t(x)[final pseudo-label]), scores (DU on q_t), extrapolation on the
    frozen features (kNN/GNN without labels, as in the paper), and ``prune_and_cluster`` (TURTLE
    re-run on the kept samples; its task encoder labels all samples; cluster accuracy on all).
    encoder: {"name": "pixels" | "pca" | "simclr" | "dinov2", ...options of unsupervised.encode};
    turtle: keyword arguments of :func:`scorecast.unsupervised.turtle` (epochs, gamma, ...).
    """

    paradigm = "unsupervised"
    labelled = False

    def __init__(self, experiment: dict | str | Path | Experiment, encoder: dict, turtle: dict, cache_root: str | Path | None = None):
        self.experiment = validate_experiment(experiment)
        check_unsupervised_options(encoder, turtle, "parameters")
        self.encoder, self.turtle_options = dict(encoder), dict(turtle)
        self.device = self.experiment.device
        if self.experiment.processes != 1:
            raise ScorecastError(f"experiment.processes={self.experiment.processes}: data-parallel processes train the supervised and "
                                 "adversarial paradigms' networks; TURTLE runs in one process (remove processes)")
        self.cache = Cache(cache_root, self.device)

    def features(self) -> tuple[np.ndarray, float]:
        """(frozen label-free features (n, d) float32 of this pipeline's encoder, seconds)."""
        return self.frozen_features(self.encoder)

    def run(self, seed: int, fraction: float | None = None, indices: np.ndarray | None = None) -> TurtleRun:
        """TURTLE on all samples, a random ``fraction`` (subset seed = seed) or ``indices``."""
        Z, encode_seconds = self.features()
        n, seed = len(Z), check_seed(seed)
        if indices is None:
            indices = np.arange(n) if fraction is None else random_subset(n, float(fraction), seed)
        config = {"data": self._data_key(), "encoder": self.encoder, "turtle": self.turtle_options, "seed": seed, "indices": digest(indices)}

        def compute(folder: Path) -> dict:
            result = unsupervised.turtle(Z[indices], self.train_set.num_classes, seed=seed, device=self.device, record_dir=folder, **self.turtle_options)
            with torch.no_grad():
                all_labels = result.task_encoder(torch.as_tensor(Z)).argmax(1).numpy()
            np.save(folder / "assigned_all.npy", all_labels)
            (folder / "softmax.npy").unlink()  # (E, m, C) trajectory: q_t and the assignment are all later stages read
            return {}

        art = self.cache.get("turtle", STAGE_VERSIONS["turtle"], config, compute)
        return TurtleRun(indices, np.load(art.file("true_prob.npy"), mmap_mode="r"), np.load(art.file("assigned_all.npy")), art.seconds, art.path, encode_seconds)

    def scoring_run(self, scorer: ScorerSpec, seed: int, fraction: float | None) -> TurtleRun:
        """TURTLE on all samples or a random ``fraction`` (the scorer has no recipe here)."""
        return self.run(seed, fraction)

    def extrapolation_features(self, run: TurtleRun) -> tuple[np.ndarray, dict]:
        """Extrapolators work on the frozen features, whose cost the run already counts."""
        return self.features()[0], {}

    def prune_and_cluster(self, score_values: np.ndarray, rate: float, seed: int) -> dict:
        """Keep the top (1 - rate) by score, re-run TURTLE on them, label ALL samples with the new
        task encoder; returns {"cluster_accuracy" (on all n), "n_kept", "seconds"}."""
        kept = prune.select(score_values, rate)
        run = self.run(seed, indices=kept)
        return {"cluster_accuracy": metrics.cluster_accuracy(self.train_set.labels.numpy(), run.assigned_all), "n_kept": len(kept), "seconds": run.seconds}

    def cluster_table(self, scorers: list, methods: list, rates: list[float], seeds: list[int], fraction: float) -> pd.DataFrame:
        """One row per scorer x method x rate x seed: TURTLE cluster accuracy after pruning.
        methods: {"name": "full"}, {"name": "random"} or an extrapolator spec (knn, gnn)."""
        rows = []
        for scorer, method, seed, result, rate in self.scored(scorers, methods, rates, seeds, fraction):
            out = self.prune_and_cluster(result.scores, rate, seed)
            rows.append({"scorer": scorer.name, "method": method.title(), "rate": rate, "seed": seed,
                         "cluster_accuracy": out["cluster_accuracy"], "n_kept": out["n_kept"], "scorer_spec": scorer, "method_spec": method})
        return pd.DataFrame(rows)

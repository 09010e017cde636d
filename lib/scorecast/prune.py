"""Pruning: selection of the samples to keep, retraining on them and evaluation.

``select`` is pure (arrays in, arrays out). Scores are oriented higher = more important = kept;
the pruning rate p is the fraction of samples removed.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .data import ImageDataset
from .metrics import topk_accuracy
from .models import build_model
from .robust import autoattack_accuracy
from .recipe import Recipe
from .train import PGD, predict, train
from .validation import ScorecastError, as_finite_vector, as_label_vector, check_rate


def select(scores, rate: float, labels=None, class_balanced: bool = False) -> np.ndarray:
    """Sorted int64 indices of the samples kept when pruning a fraction ``rate`` by score.

    scores: (n,) finite scores in dataset order. rate: fraction removed, in [0, 1).
    labels: (n,) integer class labels; required when ``class_balanced``.
    Globally, the top round((1 - rate) * n) samples by score are kept. With ``class_balanced``
    each class c keeps its top round((1 - rate) * n_c) samples, so the total can differ from the
    global count by the per-class rounding. Among equal scores the lower index is kept.
    Rounding is Python's round (halves to even), as in ``metrics.tail_overlap``.
    Returns (n_kept,) int64, ascending.
    """
    scores = as_finite_vector("scores", scores)
    rate = check_rate(rate)
    n = scores.shape[0]
    if labels is not None:
        labels = as_label_vector("labels", labels, length=n)
    if class_balanced and labels is None:
        raise ScorecastError("class_balanced=True needs labels: pass the (n,) class labels")
    order = np.argsort(-scores, kind="stable")  # best first; ties keep index order
    if not class_balanced:
        kept = order[: int(round((1.0 - rate) * n))]
    else:
        grouped = order[np.argsort(labels[order], kind="stable")]  # by class, best first within a class
        _, starts, counts = np.unique(labels[grouped], return_index=True, return_counts=True)
        n_keep = np.round((1.0 - rate) * counts).astype(np.int64)
        rank_in_class = np.arange(n) - np.repeat(starts, counts)
        kept = grouped[rank_in_class < np.repeat(n_keep, counts)]
    return np.sort(kept).astype(np.int64)


def retrain_and_evaluate(
    model_name: str,
    train_set: ImageDataset,
    test_set: ImageDataset,
    kept: np.ndarray,
    recipe: Recipe,
    seed: int,
    attack: PGD | None = None,
    robust_attack: PGD | None = None,
    device: str = "auto",
    autoattack_samples: int | None = None,
    distributed: bool = False,
) -> dict | None:
    """Train ``model_name`` from scratch on ``train_set[kept]`` and evaluate on ``test_set``.

    kept: (m,) dataset positions (e.g. from :func:`select`). ``attack`` makes the retraining
    adversarial; ``robust_attack`` (e.g. PGD-20) adds robust accuracy on the test set, and
    ``autoattack_samples`` robust accuracy under AutoAttack at the same radius on the first that many
    test images (:func:`scorecast.robust.autoattack_accuracy`).
    Returns {"top1", "top5", "robust_top1" (or None), "n_kept", "train_seconds", "eval_seconds"}, plus
    "autoattack_top1" with ``autoattack_samples``. ``distributed=True``: one rank of a data-parallel
    retraining (:mod:`scorecast.distributed`); rank 0 evaluates and returns the dict, other ranks None.
    """
    model = build_model(model_name, train_set.num_classes, train_set.in_channels, seed=seed)
    start = time.perf_counter()
    train(model, train_set, kept, recipe, seed=seed, attack=attack, device=device, desc="retrain", distributed=distributed)
    train_seconds = time.perf_counter() - start
    if distributed and torch.distributed.get_rank() != 0:
        return None
    start = time.perf_counter()
    clean, adv = predict(model, test_set, device=device, attack=robust_attack, seed=seed, amp=recipe.amp, channels_last=recipe.channels_last)
    labels = test_set.labels.numpy()
    out = {
        "top1": topk_accuracy(clean.numpy(), labels, 1),
        "top5": topk_accuracy(clean.numpy(), labels, 5),
        "robust_top1": None if adv is None else topk_accuracy(adv.numpy(), labels, 1),
        "n_kept": int(len(kept)),
        "train_seconds": train_seconds,
    }
    if autoattack_samples is not None:
        eps = (robust_attack or attack or PGD()).eps
        out["autoattack_top1"] = autoattack_accuracy(model, test_set, autoattack_samples, eps, seed=seed)
    return {**out, "eval_seconds": time.perf_counter() - start}

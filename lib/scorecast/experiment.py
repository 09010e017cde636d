"""One experiment's settings, typed: :class:`Experiment`, what a pipeline (:mod:`scorecast.pipeline`)
trains and evaluates with. :func:`scorecast.params.validate_experiment` builds one from a mapping or an
experiment file (``params/<tier>/experiment.yaml``), checking every value and filling in the defaults
(:data:`scorecast.params.DEFAULT_EXPERIMENT`); :meth:`Experiment.as_dict` gives that mapping back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .recipe import Recipe
from .scores import trajectory_epochs

if TYPE_CHECKING:
    from .train import PGD


@dataclass(frozen=True)
class RecordSettings:
    """What a scoring run records beside its per-epoch dynamics: the forward pass they come from
    (``source``: "train", the training pass, or "eval", an extra eval-mode pass; see :mod:`scorecast.train`),
    and the full softmax of ``trajectory_length`` of its records, the ``trajectory`` "first" or "last" of them
    (what TDDS and EL2N read)."""

    source: str
    trajectory: str
    trajectory_length: int

    def softmax_records(self, records: int) -> tuple[int, ...]:
        """The 0-based records, of a run keeping ``records``, whose full softmax is kept: the first or
        last min(``trajectory_length``, ``records``) of them."""
        return tuple(trajectory_epochs(records, min(self.trajectory_length, records), self.trajectory))


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: every field filled in. Build one with
    :func:`scorecast.params.validate_experiment`; derive a changed one with :func:`dataclasses.replace`
    (giving a new ``data`` mapping rather than changing this one's: the cache keys hold it).

    - ``data``: the training data's spec, ``{"name": ..., options}`` (root, download, resize, crop, pad,
      flip, num_classes, limit, mmap: those :func:`scorecast.data.load_dataset` reads for that dataset);
    - ``test_data``: the spec of a separate test set (no ``limit``), or None for ``data``'s own test split;
    - ``model``: a name in :data:`scorecast.models.MODELS`; ``paradigm``: "supervised" or "adversarial";
    - ``scoring`` and ``retrain``: the recipes of the scoring runs (a scorer may override fields) and of
      retraining after pruning; ``attack``: the PGD of adversarial training (its fields are filled in for
      every paradigm; only the adversarial one attacks);
    - ``record``: what the scoring runs record (:class:`RecordSettings`);
    - ``subset_length``: how long a subset run trains, "phase", "steps" or "epochs"
      (:meth:`scorecast.pipeline.Pipeline.run`);
    - ``eval_attack_steps``: PGD steps of the robust accuracy after retraining; ``eval_autoattack_samples``:
      the number of test images also attacked with AutoAttack, or None;
    - ``device``: "auto", "cpu", "cuda" or "cuda:<n>"; ``processes``: data-parallel processes per training run.
    """

    data: dict
    test_data: dict | None
    model: str
    paradigm: str
    scoring: Recipe
    record: RecordSettings
    subset_length: str
    retrain: Recipe
    attack: PGD
    eval_attack_steps: int
    eval_autoattack_samples: int | None
    device: str
    processes: int

    def as_dict(self) -> dict:
        """The experiment as the nested mapping it was validated from, every field filled in (the recipes,
        the attack and the record as mappings of their fields); :func:`scorecast.params.validate_experiment`
        of it gives this experiment back. A new copy on each call."""
        return dataclasses.asdict(self)

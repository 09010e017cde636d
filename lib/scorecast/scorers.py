"""The built-in scorers: each one spec type holding its options, how it scores a run's samples from
their recorded dynamics (:meth:`~scorecast.specs.ScorerSpec.score`), which recorded epochs it needs
(:meth:`~scorecast.specs.ScorerSpec.check_record`) and whether it is label-free."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from . import scores
from .specs import ScorerSpec, default_of, option, register, spec
from .validation import ScorecastError


@register
@spec
class DU(ScorerSpec):
    """Dynamic Uncertainty (:func:`scorecast.scores.dynamic_uncertainty`): ``window`` J epochs per
    sliding window (>= 2, at most the recorded epochs), ``variant`` "clean" or the authors' "reference"."""

    name: ClassVar[str] = "du"
    label_free: ClassVar[bool] = True
    window: int = option(scores.WINDOW, low=2)
    variant: str = option("clean", choices=("clean", "reference"))

    def score(self, dynamics, labels) -> np.ndarray:
        return scores.dynamic_uncertainty(dynamics.true_prob(self.view), self.window, self.variant)

    def check_record(self, epochs: int, trajectory: list[int], origin: str, where: str) -> None:
        """DU reads every recorded epoch; variant reference skips the first two."""
        needed = self.window + (2 if self.variant == "reference" else 0)
        if needed > epochs:
            extra = " (variant reference skips the first two)" if self.variant == "reference" else ""
            raise ScorecastError(f"{where}.window={self.window} needs {needed} recorded epochs{extra}, but {origin} "
                                 f"is {epochs}; use window <= {epochs - needed + self.window} or train longer")


@register
@spec
class TDDS(ScorerSpec):
    """TDDS (:func:`scorecast.scores.tdds`): ``window`` J >= 3 epochs, ``decay`` beta in (0, 1]."""

    name: ClassVar[str] = "tdds"
    reads_softmax: ClassVar[bool] = True
    window: int = option(scores.WINDOW, low=3)
    decay: float = option(default_of(scores.tdds, "decay"), low=0.0, low_open=True, high=1.0)

    def score(self, dynamics, labels) -> np.ndarray:
        return scores.tdds(dynamics.softmax(self.view), self.window, self.decay)

    def check_record(self, epochs: int, trajectory: list[int], origin: str, where: str) -> None:
        """TDDS reads the recorded softmax trajectory."""
        if self.window > len(trajectory):
            raise ScorecastError(f"{where}.window={self.window} exceeds the {len(trajectory)} epochs of the recorded softmax "
                                 f"trajectory (min(experiment.record.trajectory_length, {origin})); use window <= {len(trajectory)} "
                                 "or record a longer trajectory")


@register
@spec
class EL2N(ScorerSpec):
    """EL2N (:func:`scorecast.scores.el2n`) at recorded epoch ``epoch`` (0-based; the record must keep
    that epoch's softmax)."""

    name: ClassVar[str] = "el2n"
    reads_softmax: ClassVar[bool] = True
    epoch: int = option(0, low=0)

    def score(self, dynamics, labels) -> np.ndarray:
        if self.epoch not in dynamics.softmax_epochs:
            raise ScorecastError(f"el2n needs the softmax of epoch {self.epoch}; record.trajectory must include it (recorded: {dynamics.softmax_epochs})")
        return scores.el2n(dynamics.softmax(self.view)[dynamics.softmax_epochs.index(self.epoch)], labels)

    def check_record(self, epochs: int, trajectory: list[int], origin: str, where: str) -> None:
        """EL2N reads the softmax of one recorded epoch."""
        if self.epoch not in trajectory:
            raise ScorecastError(f"{where}.epoch={self.epoch} is not a recorded softmax epoch (recorded: {list(trajectory)}); "
                                 "pick one of those or set experiment.record.trajectory: first")


@register
@spec
class Forgetting(ScorerSpec):
    """Forgetting events (:func:`scorecast.scores.forgetting`); ``never_learned`` "max" or "zero"."""

    name: ClassVar[str] = "forgetting"
    never_learned: str = option("max", choices=("max", "zero"))

    def score(self, dynamics, labels) -> np.ndarray:
        return scores.forgetting(dynamics.correct(self.view), self.never_learned)


@register
@spec
class RandomScorer(ScorerSpec):
    """Uniform random scores of the run's samples, drawn with ``seed``."""

    name: ClassVar[str] = "random"
    label_free: ClassVar[bool] = True
    seed: int = option(0, low=0)

    def score(self, dynamics, labels) -> np.ndarray:
        return scores.random_scores(len(dynamics.indices), self.seed)

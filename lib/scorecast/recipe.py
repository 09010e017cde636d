"""The optimisation recipe of a training run (:class:`Recipe`), without torch: parameter validation
and the typed specs read its fields and types from here; :mod:`scorecast.train` runs it."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from .validation import ScorecastError, check_choice, check_positive_int

SPEED_DEFAULTS = {"amp": "auto", "channels_last": "auto", "compile": False}


@dataclass(frozen=True)
class Recipe:
    """Optimisation recipe. Paper defaults: DU scoring Adam 1e-3 / no wd / constant; TDDS scoring
    SGD nesterov 1e-3, momentum 0.9, wd 5e-4, cosine; retraining Adam 1e-3, wd 1e-3, OneCycle.
    Speed options (``amp``, ``channels_last``, ``compile``): see :mod:`scorecast.train`."""

    epochs: int
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "constant"
    label_smoothing: float = 0.0
    amp: str | bool = SPEED_DEFAULTS["amp"]
    channels_last: str | bool = SPEED_DEFAULTS["channels_last"]
    compile: bool = SPEED_DEFAULTS["compile"]

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_choice("optimizer", self.optimizer, ("adam", "sgd"))
        check_choice("schedule", self.schedule, ("constant", "onecycle", "cosine"))
        if not self.lr > 0:
            raise ScorecastError(f"lr must be positive, got {self.lr!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ScorecastError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing!r}")
        for name in ("amp", "channels_last"):
            value = getattr(self, name)
            if not (value == "auto" or isinstance(value, bool)):
                raise ScorecastError(f"{name} must be 'auto' (on with CUDA, off on the CPU), true or false; got {value!r}")
        if not isinstance(self.compile, bool):
            raise ScorecastError(f"compile must be true or false, got {self.compile!r}")

    def key(self) -> dict:
        """The fields that identify the recipe in cache keys: all of them, except speed options left
        at their defaults (so the keys of runs made before these options existed stay valid)."""
        return {k: v for k, v in self.__dict__.items() if SPEED_DEFAULTS.get(k, object()) != v}


def recipe_schema() -> dict[str, type | tuple[type, ...]]:
    """Field -> allowed type(s) of :class:`Recipe` (``str | bool`` -> (str, bool)), the schema of
    ``experiment.scoring``, ``experiment.retrain`` and a scorer's ``scoring`` overrides."""
    hints = typing.get_type_hints(Recipe)
    return {f.name: typing.get_args(hints[f.name]) or hints[f.name] for f in dataclasses.fields(Recipe)}

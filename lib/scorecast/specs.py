"""Typed specs: the machinery every scorer and method spec is made with, their base classes and the
registry tables.

Each scorer and method is one frozen dataclass, defined in its own module (:mod:`scorecast.scorers`,
:mod:`scorecast.methods`) with its options' types, ranges and defaults, its runner and its
capabilities, and made usable by name with :func:`register`. :mod:`scorecast.registry` loads the
built-in ones and answers every question about them.

A spec is built from a plain mapping (a YAML entry or a notebook's parameters cell) by
:meth:`Spec.build` (through :func:`scorecast.registry.build_scorer` / ``build_method``, which refuse
a missing or unknown name), which refuses an unknown option (naming it, the allowed ones and the
closest match), a wrong type and an out-of-range value, each with a message that names where the
entry came from. Options are declared with :func:`option`; their Python annotation gives the type
(``int``, ``float``, ``bool``, ``str``, ``X | None``, ``int | str``, ``tuple[int, ...]`` or
``dict``), ``low``/``high``/``choices`` the allowed values.

A spec remembers the options as written (``given``): :meth:`Spec.title` is built
from them, so ``{name: knn, k: 10}`` keeps its label ``knn(k=10)``. Two specs are the same spec when
they have the same type and the same options as written. Cache keys hold :meth:`Spec.cache_key`
instead: the options resolved, without those that change no cached result (``keyed=False``).
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

from .recipe import recipe_schema
from .validation import ScorecastError, check_mapping, did_you_mean

spec = dataclass(frozen=True, eq=False)  # equality and hash come from Spec (type + options as written)


def option(default, *, low=None, high=None, low_open: bool = False, high_open: bool = False, choices: tuple = (),
           keyed: bool = True):
    """A spec option: ``default``, numeric bounds ``low``/``high`` (closed unless ``*_open``) and, for
    strings, the allowed ``choices``. ``None`` as a bound means unbounded. ``keyed=False``: the option does
    not change what the cached stages compute (a label, a map applied after the cache), so it stays out
    of :meth:`Spec.cache_key`."""
    metadata = {"low": low, "high": high, "low_open": low_open, "high_open": high_open, "choices": tuple(choices), "keyed": keyed}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def default_of(function, parameter: str):
    """The default ``function`` declares for ``parameter``: an option's default read from the function the
    method runs, so it is written once (``option(default_of(scores.zero_shot_coreset, "sample_dim"), low=1)``)."""
    return inspect.signature(function).parameters[parameter].default


def _type_name(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return {type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


def _convert(value, hint):
    """``value`` as type ``hint`` (an int is a float, a list is a tuple), or raise TypeError."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError
        return tuple(_convert(item, args[0]) for item in value)
    if args:  # a union: the first member that fits
        for arg in args:
            try:
                return _convert(value, arg)
            except TypeError:
                continue
        raise TypeError
    if hint is type(None):
        if value is not None:
            raise TypeError
        return None
    if hint in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float)) or (hint is int and not isinstance(value, int))):
        raise TypeError
    if hint not in (int, float) and not isinstance(value, hint):
        raise TypeError
    return float(value) if hint is float else value


def _check_value(where: str, value, meta: dict) -> None:
    if isinstance(value, str) and meta["choices"] and value not in meta["choices"]:
        raise ScorecastError(f"{where}={value!r} is not allowed; choose one of {list(meta['choices'])}{did_you_mean(value, meta['choices'])}")
    numbers = value if isinstance(value, tuple) else (value,)
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            continue
        low, high = meta["low"], meta["high"]
        too_low = low is not None and (number <= low if meta["low_open"] else number < low)
        too_high = high is not None and (number >= high if meta["high_open"] else number > high)
        if too_low or too_high:
            left = "unbounded" if low is None else f"{'(' if meta['low_open'] else '['}{low}"
            right = "unbounded" if high is None else f"{high}{')' if meta['high_open'] else ']'}"
            raise ScorecastError(f"{where}={value!r} is out of range; allowed: {left}, {right}")


class Spec:
    """Base of every spec: ``name`` (class constant), options (dataclass fields) and ``given`` (the
    mapping as written, name included)."""

    name: ClassVar[str]

    @classmethod
    def options(cls) -> dict[str, dataclasses.Field]:
        """The option fields by name (``given`` excluded)."""
        return {f.name: f for f in dataclasses.fields(cls) if f.name != "given"}

    @classmethod
    def build(cls, entry: dict, where: str) -> "Spec":
        """The spec of ``entry`` ({"name": ..., option: value, ...}); ``where`` names it in errors."""
        fields, hints = cls.options(), typing.get_type_hints(cls)
        values = {}
        for key, value in entry.items():
            if key == "name":
                continue
            if key not in fields:
                raise ScorecastError(f"{where}: unknown option {key!r} for {cls.name}{did_you_mean(key, fields)}; allowed: {sorted(fields) or 'none'}")
            try:
                values[key] = _convert(value, hints[key])
            except TypeError:
                raise ScorecastError(f"{where}.{key} must be {_type_name(hints[key])}, got {value!r}") from None
            _check_value(f"{where}.{key}", values[key], fields[key].metadata)
        made = cls(**values, given=copy.deepcopy(dict(entry)))
        made.check(where)
        return made

    @classmethod
    def default(cls, option: str):
        """The default value of ``option``."""
        field = cls.options()[option]
        return field.default_factory() if field.default is dataclasses.MISSING else field.default

    def check(self, where: str) -> None:
        """Checks that involve several options; the default has none."""

    def as_dict(self) -> dict:
        """Every option with its value (defaults filled in), name first."""
        return {"name": self.name, **{key: getattr(self, key) for key in self.options()}}

    def cache_key(self) -> dict:
        """What a cache key holds of this spec: the name and every option that changes a cached result,
        resolved (defaults filled in), so ``{name: knn}`` and ``{name: knn, k: 10}`` share one entry and a
        new ``label`` recomputes nothing."""
        return {"name": self.name, **{key: getattr(self, key) for key, field in self.options().items() if field.metadata.get("keyed", True)}}

    def title(self) -> str:
        """Readable, stable name from the options as written, e.g. ``knn(k=10)``; ``label`` overrides."""
        if self.given.get("label") is not None:
            return self.given["label"]
        extra = ", ".join(f"{k}={v['name'] if isinstance(v, dict) else v}" for k, v in self.given.items() if k != "name")
        return f"{self.name}({extra})" if extra else self.name

    def _key(self) -> str:
        return json.dumps(self.given, sort_keys=True, default=str)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))


def check_encoder(encoder: dict, where: str) -> None:
    """Raise unless ``encoder`` names a frozen encoder of :mod:`scorecast.unsupervised` and only its options."""
    from .unsupervised import ENCODERS, _option_names, train_simclr

    name = encoder.get("name") if isinstance(encoder, dict) else None
    if name not in ENCODERS:
        raise ScorecastError(f"{where} must be a mapping with a name from {sorted(ENCODERS)}{did_you_mean(name, ENCODERS)}, got {encoder!r}")
    allowed = _option_names(ENCODERS[name], *((train_simclr,) if name == "simclr" else ()))
    unknown = sorted(set(encoder) - allowed - {"name"})
    if unknown:
        raise ScorecastError(f"{where}: unknown option {unknown[0]!r} for {name}{did_you_mean(unknown[0], allowed)}; allowed: {sorted(allowed)}")


_GIVEN = dataclasses.field(default_factory=dict, repr=False)
VIEWS = ("clean", "adv")
RECIPE_SCHEMA = recipe_schema()  # experiment.scoring, experiment.retrain and a scorer's scoring overrides


# ============================================================================ the registry
SCORERS: dict[str, type["ScorerSpec"]] = {}  # name -> scorer spec type, filled by register
METHODS: dict[str, type["MethodSpec"]] = {}  # name -> method spec type, filled by register


def register(spec_type: type) -> type:
    """Class decorator: make the scorer or method ``spec_type`` usable by its ``name`` everywhere
    (parameter files, pipelines, tables, figures). Refuses a name already taken."""
    table = SCORERS if issubclass(spec_type, ScorerSpec) else METHODS
    kind = "scorer" if table is SCORERS else "method"
    if spec_type.name in table and table[spec_type.name] is not spec_type:
        raise ScorecastError(f"a {kind} named {spec_type.name!r} is already registered ({table[spec_type.name].__module__}); choose another name")
    table[spec_type.name] = spec_type
    return spec_type


# ============================================================================ scorers
@spec
class ScorerSpec(Spec):
    """Options every scorer has. ``view``: dynamics on clean or PGD-attacked inputs (adversarial
    paradigm). ``scoring``: scoring-recipe fields that override the experiment's for this scorer
    (e.g. TDDS's SGD recipe); checked against the experiment by :mod:`scorecast.params`.

    A scorer type defines :meth:`score`; :meth:`check_record` refuses options its run cannot serve."""

    label_free: ClassVar[bool] = False  # usable by the unsupervised paradigm (TURTLE pseudo-labels)
    reads_softmax: ClassVar[bool] = False  # reads recorded softmax (else its run records none: 51 GB per ImageNet-64 DU run saved)
    view: str = option("clean", choices=VIEWS)
    scoring: dict | None = option(None)
    given: dict = _GIVEN

    def check(self, where: str) -> None:
        check_mapping(self.scoring or {}, RECIPE_SCHEMA, "scoring.", where)  # the schema of experiment.scoring

    def score(self, dynamics, labels):
        """(m,) scores of a run's m samples from its recorded ``dynamics`` (``true_prob(view)`` (E, m),
        ``softmax(view)`` (E', m, C), ``correct(view)`` (E, m), ``softmax_epochs``, ``indices`` (m,));
        ``labels`` (m,) are the samples' classes (None when unlabelled)."""
        raise NotImplementedError(f"scorer {self.name!r} defines no score()")

    def check_record(self, epochs: int, trajectory: list[int], origin: str, where: str) -> None:
        """Raise when a run recording ``epochs`` epochs (set by ``origin``, a parameter name) and the
        softmax of the ``trajectory`` epochs cannot serve this scorer; the default accepts any."""


# ============================================================================ methods
PARADIGMS = ("supervised", "adversarial", "unsupervised")


@spec
class MethodSpec(Spec):
    """Options every method has: ``label`` replaces the readable name in tables.

    A method type defines :meth:`run` and states its capabilities in class constants: ``direct``
    (scores every sample itself: no subset fraction), ``paradigms`` (those that can run it),
    ``validates`` (fits on part of the subset and validates on the rest, so it needs a subset of
    some size), ``display`` (its name in legends and tables) and ``style`` ((colour, marker) in
    figures; None: one of :mod:`scorecast.plots`' other colours)."""

    direct: ClassVar[bool] = False
    paradigms: ClassVar[tuple[str, ...]] = ("supervised", "adversarial")
    validates: ClassVar[bool] = False
    display: ClassVar[str | None] = None  # None: the name
    style: ClassVar[tuple[str, str] | None] = None
    label: str | None = option(None, keyed=False)
    given: dict = _GIVEN

    def run(self, pipe, scorer: "ScorerSpec", seed: int, fraction: float | None):
        """:class:`scorecast.stages.ScoreResult` of all n samples for ``scorer``, where ``pipe`` is a
        :class:`scorecast.shared.ScoreStages` (the supervised or the unsupervised pipeline) and
        ``fraction`` the subset share (None for a direct method)."""
        raise NotImplementedError(f"method {self.name!r} defines no run()")

    def check_size(self, m: int, n: int, where: str, subset: str) -> None:
        """Raise when this method cannot run on a subset of ``m`` of ``n`` samples (``subset``
        describes it in the message); the default accepts any."""

    def check_subset(self, pipe, fraction: float) -> None:
        """:meth:`check_size` on ``pipe``'s training set, before the subset run of ``fraction``."""
        n = len(pipe.train_set)
        self.check_size(int(round(float(fraction) * n)), n, f"method {self.title()}", f"the subset (fraction {fraction} of {n})")

    def proxy_views(self) -> int:
        """Views per sample the method's proxy predicts (0: it uses no proxy predictions)."""
        return 0


@spec
class Extrapolator(MethodSpec):
    """Options every extrapolator from subset scores has: ``calibrate`` maps the extrapolated part
    onto the subset's score distribution (:func:`scorecast.extrapolate.calibrate_to_subset`)."""

    calibrate: bool = option(False, keyed=False)

"""Typed specs: one frozen dataclass per scorer and per method, its options' types, ranges and defaults
declared once, next to its docstring.

A spec is built from a plain mapping (a YAML entry or a notebook's parameters cell) by
:func:`build`, which refuses a missing or unknown name, an unknown option (naming it, the allowed
ones and the closest match), a wrong type and an out-of-range value, each with a message that names
where the entry came from. Options are declared with :func:`option`; their Python annotation gives
the type (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``int | str``, ``tuple[int, ...]`` or
``dict``), ``low``/``high``/``choices`` the allowed values.

A spec remembers the options as written (``given``): :meth:`Spec.title` and the cache keys are built
from them, so ``{name: knn, k: 10}`` keeps its label ``knn(k=10)``. Two specs are the same spec when
they have the same type and the same options as written.

Which function runs a spec is in :mod:`scorecast.registry`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

from .proxy import FEATURES
from .recipe import recipe_schema
from .validation import ScorecastError, check_mapping, did_you_mean

spec = dataclass(frozen=True, eq=False)  # equality and hash come from Spec (type + options as written)


def option(default, *, low=None, high=None, low_open: bool = False, high_open: bool = False, choices: tuple = ()):
    """A spec option: ``default``, numeric bounds ``low``/``high`` (closed unless ``*_open``) and, for
    strings, the allowed ``choices``. ``None`` as a bound means unbounded."""
    metadata = {"low": low, "high": high, "low_open": low_open, "high_open": high_open, "choices": tuple(choices)}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


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

    def check(self, where: str) -> None:
        """Checks that involve several options; the default has none."""

    def as_dict(self) -> dict:
        """Every option with its value (defaults filled in), name first."""
        return {"name": self.name, **{key: getattr(self, key) for key in self.options()}}

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


# ============================================================================ scorers
@spec
class ScorerSpec(Spec):
    """Options every scorer has. ``view``: dynamics on clean or PGD-attacked inputs (adversarial
    paradigm). ``scoring``: scoring-recipe fields that override the experiment's for this scorer
    (e.g. TDDS's SGD recipe); checked against the experiment by :mod:`scorecast.params`."""

    label_free: ClassVar[bool] = False  # usable by the unsupervised paradigm (TURTLE pseudo-labels)
    view: str = option("clean", choices=VIEWS)
    scoring: dict | None = option(None)
    given: dict = _GIVEN

    def check(self, where: str) -> None:
        check_mapping(self.scoring or {}, RECIPE_SCHEMA, "scoring.", where)  # the schema of experiment.scoring


@spec
class DU(ScorerSpec):
    """Dynamic Uncertainty (:func:`scorecast.scores.dynamic_uncertainty`): ``window`` J epochs per
    sliding window (>= 2, at most the recorded epochs), ``variant`` "clean" or the authors' "reference"."""

    name: ClassVar[str] = "du"
    label_free: ClassVar[bool] = True
    window: int = option(10, low=2)
    variant: str = option("clean", choices=("clean", "reference"))


@spec
class TDDS(ScorerSpec):
    """TDDS (:func:`scorecast.scores.tdds`): ``window`` J >= 3 epochs, ``decay`` beta in (0, 1]."""

    name: ClassVar[str] = "tdds"
    window: int = option(10, low=3)
    decay: float = option(0.9, low=0.0, low_open=True, high=1.0)


@spec
class EL2N(ScorerSpec):
    """EL2N (:func:`scorecast.scores.el2n`) at recorded epoch ``epoch`` (0-based; the record must keep
    that epoch's softmax)."""

    name: ClassVar[str] = "el2n"
    epoch: int = option(0, low=0)


@spec
class Forgetting(ScorerSpec):
    """Forgetting events (:func:`scorecast.scores.forgetting`); ``never_learned`` "max" or "zero"."""

    name: ClassVar[str] = "forgetting"
    never_learned: str = option("max", choices=("max", "zero"))


@spec
class RandomScorer(ScorerSpec):
    """Uniform random scores of the run's samples, drawn with ``seed``."""

    name: ClassVar[str] = "random"
    label_free: ClassVar[bool] = True
    seed: int = option(0, low=0)


# ============================================================================ methods
@spec
class MethodSpec(Spec):
    """Options every method has: ``label`` replaces the readable name in tables."""

    direct: ClassVar[bool] = False  # scores every sample itself: no subset fraction
    label: str | None = option(None)
    given: dict = _GIVEN


@spec
class Full(MethodSpec):
    """The scorer on a run over all n samples (the reference)."""

    name: ClassVar[str] = "full"
    direct: ClassVar[bool] = True


@spec
class RandomMethod(MethodSpec):
    """Uniform random scores of all n samples (random pruning), seeded by the run's seed."""

    name: ClassVar[str] = "random"
    direct: ClassVar[bool] = True


@spec
class FrozenFeatureMethod(MethodSpec):
    """A training-free score on a frozen ``encoder``'s features ({"name": "pixels" | "pca" |
    "simclr" | "dinov2", ...options of :func:`scorecast.unsupervised.encode`})."""

    direct: ClassVar[bool] = True

    def check(self, where: str) -> None:
        check_encoder(self.encoder, f"{where}.encoder")


@spec
class Prototypes(FrozenFeatureMethod):
    """Self-supervised prototype metric (:func:`scorecast.scores.prototypicality`): k-means with
    ``clusters`` centroids (default: the number of classes)."""

    name: ClassVar[str] = "prototypes"
    encoder: dict = option({"name": "pca"})
    clusters: int | None = option(None, low=1)


@spec
class ZCore(FrozenFeatureMethod):
    """Zero-shot coreset score (:func:`scorecast.scores.zero_shot_coreset`); defaults are the paper's."""

    name: ClassVar[str] = "zcore"
    encoder: dict = option({"name": "pca"})
    draws: int | None = option(None, low=1)
    sample_dim: int = option(2, low=1)
    redundancy_nn: int = option(1000, low=1)
    redundancy_exp: float = option(4.0, low=0.0, low_open=True)


@spec
class Extrapolator(MethodSpec):
    """Options every extrapolator from subset scores has: ``calibrate`` maps the extrapolated part
    onto the subset's score distribution (:func:`scorecast.extrapolate.calibrate_to_subset`)."""

    calibrate: bool = option(False)


@spec
class KNN(Extrapolator):
    """kNN extrapolation (:func:`scorecast.extrapolate.knn`). ``k``: neighbours, or "cv" (chosen by
    cross-validation on the subset among ``ks``) or "oracle" (best Spearman with the full-data
    scores of the same seed, the paper's choice, among ``ks``); ks above 80 % of the subset are skipped."""

    name: ClassVar[str] = "knn"
    k: int | str = option(10, low=1, choices=("cv", "oracle"))
    weighting: str = option("uniform", choices=("uniform", "exp"))
    metric: str = option("euclidean", choices=("euclidean", "cosine"))
    backend: str = option("auto", choices=("auto", "faiss", "torch", "ivf", "hnsw"))
    ks: tuple[int, ...] = option((1, 5, 10, 20, 50, 100), low=1)

    def check(self, where: str) -> None:
        if "ks" in self.given and not isinstance(self.k, str):
            raise ScorecastError(f"{where}.ks is only used with k: cv or k: oracle; remove it or set k to one of those")
        if not self.ks:
            raise ScorecastError(f"{where}.ks must list at least one k")


@spec
class Learned(Extrapolator):
    """Options of the trained extrapolators (:func:`scorecast.extrapolate.gnn` / ``mlp``): ``labels``
    feeds one-hot class labels in, ``seed`` (default: the run's seed) seeds the split and the weights."""

    labels: bool = option(False)
    seed: int | None = option(None, low=0)
    dropout: float = option(0.5, low=0.0, high=1.0, high_open=True)
    lr: float = option(1e-3, low=0.0, low_open=True)
    val_fraction: float = option(0.1, low=0.0, high=1.0, low_open=True, high_open=True)
    standardize: bool = option(True)


@spec
class GNN(Learned):
    """GCN over a kNN graph of all samples (:func:`scorecast.extrapolate.gnn`); ``batch_size`` (default:
    full batch) trains on neighbour-sampled mini-batches (``fanout`` neighbours per node and layer);
    ``backend`` builds the kNN graph (``ivf``/``hnsw``: approximate, for millions of samples on a CPU)."""

    name: ClassVar[str] = "gnn"
    k: int = option(10, low=1)
    hidden: tuple[int, ...] = option((512, 256), low=1)
    epochs: int = option(50, low=1)
    metric: str = option("euclidean", choices=("euclidean", "cosine"))
    batch_size: int | None = option(None, low=1)
    fanout: int = option(5, low=1)
    backend: str = option("auto", choices=("auto", "faiss", "torch", "ivf", "hnsw"))


@spec
class MLP(Learned):
    """MLP on the embeddings, no graph (:func:`scorecast.extrapolate.mlp`)."""

    name: ClassVar[str] = "mlp"
    hidden: tuple[int, ...] = option((256, 64), low=1)
    epochs: int = option(200, low=1)


@spec
class ScoreSampling(Extrapolator):
    """Baseline: unscored samples draw scores from the subset's (:func:`scorecast.extrapolate.score_sampling`)."""

    name: ClassVar[str] = "score_sampling"
    seed: int | None = option(None, low=0)


@spec
class SubsetPlusRandom(Extrapolator):
    """Baseline: unscored samples interleave at random with the subset's ranking
    (:func:`scorecast.extrapolate.subset_plus_random`)."""

    name: ClassVar[str] = "subset_plus_random"
    seed: int | None = option(None, low=0)


@spec
class Proxy(MethodSpec):
    """Proxy uncertainty (:func:`scorecast.proxy.proxy_uncertainty`): feature ``kind`` of the subset
    model's softmax over ``augmentations`` K views (view 0 clean)."""

    name: ClassVar[str] = "proxy"
    kind: str = option("aug_std", choices=FEATURES)
    augmentations: int = option(8, low=1)

    def check(self, where: str) -> None:
        if self.kind == "aug_std" and self.augmentations < 2:
            raise ScorecastError(f"{where}: kind aug_std needs augmentations >= 2 (the spread over views), got {self.augmentations}")


@spec
class Hybrid(Proxy):
    """Rank average of kNN (``k``) and proxy scores (:func:`scorecast.proxy.rank_average`); ``weight``
    is the kNN ranks' share."""

    name: ClassVar[str] = "hybrid"
    k: int = option(10, low=1)
    weight: float = option(0.5, low=0.0, high=1.0)


@spec
class Stacked(MethodSpec):
    """Gradient-boosted regressor on [kNN (``k``) prediction, proxy features over ``augmentations``
    views], cross-fitted over ``folds`` folds of the subset so no subset score leaks into its features."""

    name: ClassVar[str] = "stacked"
    augmentations: int = option(8, low=1)
    k: int = option(10, low=1)
    folds: int = option(2, low=2)


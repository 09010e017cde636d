"""The registry: every scorer and method by name, and what each can do.

The tables (:data:`SCORERS`, :data:`METHODS`: name -> spec type) are filled by
:func:`scorecast.specs.register`, where each scorer and method is defined; importing this module
loads the built-in ones (:mod:`scorecast.scorers`, :mod:`scorecast.methods`). Every other module asks
here: which names exist, which a paradigm can run, a method's label, display name and figure style.

A scorer spec scores a run's samples (:meth:`~scorecast.specs.ScorerSpec.score`); a method spec
scores all n samples through a paradigm's pipeline (:meth:`~scorecast.specs.MethodSpec.run`).
"""

from __future__ import annotations

from . import methods, scorers  # noqa: F401 -- the built-in scorers and methods register themselves
from . import unsupervised
from .specs import METHODS, PARADIGMS, SCORERS, MethodSpec, ScorerSpec, Spec, register
from .validation import ScorecastError, did_you_mean

__all__ = ["METHODS", "SCORERS", "build_method", "build_scorer", "check_distinct_labels", "check_paradigm", "method_label",
           "method_names", "register", "scorer_names"]


def _build(kind: str, table: dict, entry, where: str):
    if isinstance(entry, Spec):
        return entry
    if not isinstance(entry, dict) or "name" not in entry:
        raise ScorecastError(f"{where}: each {kind} must be a mapping with a 'name' (one of {sorted(table)}), got {entry!r}")
    if entry["name"] not in table:
        raise ScorecastError(f"{where}.name={entry['name']!r} is not a {kind}{did_you_mean(entry['name'], table)}; allowed: {sorted(table)}")
    return table[entry["name"]].build(entry, where)


def build_scorer(entry: dict | ScorerSpec, where: str = "scorer") -> ScorerSpec:
    """The typed spec of a scorer mapping (a spec is returned as is); ``where`` names it in errors."""
    return _build("scorer", SCORERS, entry, where)


def build_method(entry: dict | MethodSpec, where: str = "method") -> MethodSpec:
    """The typed spec of a method mapping (a spec is returned as is); ``where`` names it in errors."""
    return _build("method", METHODS, entry, where)


def method_label(method: dict | MethodSpec) -> str:
    """Readable, stable name of a method, e.g. ``knn(k=10, weighting=exp)``; ``label`` overrides."""
    return build_method(method).title()


def scorer_names(paradigm: str) -> list[str]:
    """The scorers ``paradigm`` can run (the unsupervised one: the label-free ones)."""
    return [name for name, kind in SCORERS.items() if paradigm != "unsupervised" or kind.label_free]


def method_names(paradigm: str) -> list[str]:
    """The methods ``paradigm`` ("supervised", "adversarial" or "unsupervised") can run."""
    if paradigm not in PARADIGMS:
        raise ScorecastError(f"paradigm={paradigm!r}; allowed: {list(PARADIGMS)}")
    return [name for name, kind in METHODS.items() if paradigm in kind.paradigms]


def check_paradigm(spec: Spec, paradigm: str, where: str) -> None:
    """Raise unless ``paradigm`` ("supervised", "adversarial" or "unsupervised") can run ``spec``."""
    if isinstance(spec, ScorerSpec) and spec.name not in scorer_names(paradigm):
        raise ScorecastError(f"{where}: scorer {spec.name!r} needs labels; the unsupervised paradigm runs {scorer_names(paradigm)}")
    if isinstance(spec, MethodSpec) and spec.name not in method_names(paradigm):
        reason = "is not available without labels" if paradigm == "unsupervised" else f"does not run in the {paradigm} paradigm"
        raise ScorecastError(f"{where}: method {spec.name!r} {reason}; the {paradigm} paradigm runs {method_names(paradigm)}")
    if paradigm == "unsupervised":
        unsupervised.check_label_free(spec.given, where)
    if isinstance(spec, ScorerSpec) and spec.view == "adv" and paradigm != "adversarial":
        raise ScorecastError(f"{where}.view 'adv' needs experiment.paradigm: adversarial (this run is {paradigm})")


def check_distinct_labels(method_specs: list[MethodSpec]) -> None:
    """Raise when two different method specs share a label (their table rows would merge)."""
    seen = {}
    for method in method_specs:
        if seen.setdefault(method.title(), method) != method:
            raise ScorecastError(f"two different methods share the label {method.title()!r}; give one of them its own label")

"""scorecast.specs and scorecast.registry: every option of every scorer and method spec refuses a typo,
a wrong type and an out-of-range value with a message naming it; defaults agree with the library
functions; labels stay as they were; the registry covers every spec."""

import inspect
import typing

import pytest

from scorecast import extrapolate, proxy, scores
from scorecast.params import validate_notebook_params
from scorecast.registry import METHODS, SCORERS, build_method, build_scorer, method_label
from scorecast.validation import ScorecastError

SPEC_TYPES = [(build_scorer, t) for t in SCORERS.values()] + [(build_method, t) for t in METHODS.values()]
OPTIONS = [(build, t, name) for build, t in SPEC_TYPES for name in t.options()]
ids = [f"{t.name}.{name}" for _, t, name in OPTIONS]


def _wrong_type(hint):
    """A value of a type ``hint`` does not accept."""
    args = set(typing.get_args(hint)) or {hint}
    if str in args or hint in (bool, dict) or typing.get_origin(hint) is tuple:
        return 3.5
    return "ten"


def _out_of_range(field, hint):
    """A value of the right type outside the option's range, or None when every value of its type is allowed."""
    meta = field.metadata
    wrap = (lambda v: [v]) if typing.get_origin(hint) is tuple else (lambda v: v)
    if meta["low"] is not None:
        return wrap(meta["low"] if meta["low_open"] else meta["low"] - 1)
    if meta["high"] is not None:
        return wrap(meta["high"] if meta["high_open"] else meta["high"] + 1)
    if meta["choices"]:
        return "bogus"
    if field.name == "encoder":
        return {"name": "pca", "n_componets": 5}
    if field.name == "scoring":
        return {"lr": 0.1, "epoch": 3}
    return None


def _entry(spec_type, **options):
    return {"name": spec_type.name, **options}


@pytest.mark.parametrize("build, spec_type, option", OPTIONS, ids=ids)
def test_typo_is_refused_naming_the_option(build, spec_type, option):
    typo = option[:-1] + option[-1] * 2  # "window" -> "windoww"
    with pytest.raises(ScorecastError) as err:
        build(_entry(spec_type, **{typo: 1}), "params/x.yaml: entry")
    message = str(err.value)
    assert f"unknown option {typo!r} for {spec_type.name}" in message and f"did you mean {option!r}" in message
    assert "params/x.yaml: entry" in message and "allowed:" in message


@pytest.mark.parametrize("build, spec_type, option", OPTIONS, ids=ids)
def test_wrong_type_is_refused(build, spec_type, option):
    value = _wrong_type(typing.get_type_hints(spec_type)[option])
    with pytest.raises(ScorecastError, match=rf"entry\.{option} must be .*got {value!r}|entry\.{option}={value!r} is not allowed"):
        build(_entry(spec_type, **{option: value}), "entry")


@pytest.mark.parametrize("build, spec_type, option", OPTIONS, ids=ids)
def test_out_of_range_is_refused(build, spec_type, option):
    field = spec_type.options()[option]
    value = _out_of_range(field, typing.get_type_hints(spec_type)[option])
    if value is None:
        assert typing.get_type_hints(spec_type)[option] in (bool, str | None), f"{spec_type.name}.{option} has no range"
        return  # a flag or a free label: every value of its type is valid
    with pytest.raises(ScorecastError, match=rf"entry(\.{option})?.*(out of range|is not allowed|unknown (option|key))"):
        build(_entry(spec_type, **{option: value}), "entry")


@pytest.mark.parametrize("build, spec_type", SPEC_TYPES, ids=[t.name for _, t in SPEC_TYPES])
def test_defaults_build_and_every_name_is_registered(build, spec_type):
    spec = build({"name": spec_type.name}, "entry") if spec_type.name not in ("prototypes", "zcore") else build(_entry(spec_type), "entry")
    assert type(spec) is spec_type and spec.title() == spec_type.name
    assert (SCORERS if build is build_scorer else METHODS)[spec_type.name] is spec_type


def test_unknown_names_suggest_the_closest():
    with pytest.raises(ScorecastError, match=r"methods\[1\]\.name='knnn' is not a method \(did you mean 'knn'\?\)"):
        build_method({"name": "knnn"}, "methods[1]")
    with pytest.raises(ScorecastError, match=r"'tdd' is not a scorer \(did you mean 'tdds'\?\)"):
        build_scorer({"name": "tdd"})


def _defaults(function, skip=()):
    return {k: p.default for k, p in inspect.signature(function).parameters.items() if p.default is not inspect.Parameter.empty and k not in skip}


@pytest.mark.parametrize("spec_type, function", [
    (METHODS["knn"], extrapolate.knn), (METHODS["gnn"], extrapolate.gnn), (METHODS["mlp"], extrapolate.mlp),
    (SCORERS["du"], scores.dynamic_uncertainty), (SCORERS["tdds"], scores.tdds), (SCORERS["forgetting"], scores.forgetting),
    (METHODS["zcore"], scores.zero_shot_coreset), (METHODS["proxy"], proxy.proxy_uncertainty), (METHODS["hybrid"], proxy.rank_average),
])
def test_spec_defaults_match_the_library_functions(spec_type, function):
    """A spec's default is the value the pipeline passes, so it must equal the function's own default."""
    built = spec_type.build({"name": spec_type.name}, "entry").as_dict()
    shared = {k: v for k, v in _defaults(function, skip=("seed", "labels", "device", "chunk_size", "graph")).items() if k in built}
    assert shared, "no option in common"
    for key, default in shared.items():
        assert built[key] == (tuple(default) if isinstance(default, (list, tuple)) else default), key


@pytest.mark.parametrize("entry, label", [
    ({"name": "knn", "k": 10}, "knn(k=10)"), ({"name": "knn", "k": 10, "weighting": "exp"}, "knn(k=10, weighting=exp)"),
    ({"name": "gnn", "k": 10, "labels": True}, "gnn(k=10, labels=True)"), ({"name": "full"}, "full"),
    ({"name": "zcore", "encoder": {"name": "pca", "n_components": 32}}, "zcore(encoder=pca)"),
    ({"name": "hybrid", "kind": "aug_std", "augmentations": 8, "k": 10}, "hybrid(kind=aug_std, augmentations=8, k=10)"),
    ({"name": "mlp", "hidden": [16], "label": "small MLP"}, "small MLP"),
])
def test_method_label_is_unchanged(entry, label):
    assert method_label(entry) == label and method_label(build_method(entry)) == label


def test_specs_are_equal_when_written_the_same():
    assert build_method({"name": "knn", "k": 10}) == build_method({"k": 10, "name": "knn"})
    assert build_method({"name": "knn", "k": 10}) != build_method({"name": "knn"})  # another label, another row
    assert len({build_method({"name": "gnn", "hidden": [8]}), build_method({"name": "gnn", "hidden": [8]})}) == 1


def test_cross_option_checks():
    with pytest.raises(ScorecastError, match="ks is only used with k: cv or k: oracle"):
        build_method({"name": "knn", "k": 5, "ks": [1, 5]})
    with pytest.raises(ScorecastError, match="aug_std needs augmentations >= 2"):
        build_method({"name": "proxy", "augmentations": 1})
    with pytest.raises(ScorecastError, match=r"encoder must be a mapping with a name from .*did you mean 'pca'"):
        build_method({"name": "prototypes", "encoder": {"name": "pcaa"}})


def test_notebook_validation_refuses_a_bad_spec_before_anything_runs():
    base = {"experiment": {"data": {"name": "digits"}}, "scorers": [{"name": "du"}], "rates": [0.5], "seeds": [0]}
    with pytest.raises(ScorecastError, match=r"nb: scorers\[0\]: unknown option 'windw' for du \(did you mean 'window'\?\)"):
        validate_notebook_params({**base, "scorers": [{"name": "du", "windw": 5}]}, "nb")
    with pytest.raises(ScorecastError, match=r"nb: methods\[0\]\.k must be int or str, got 2.5"):
        validate_notebook_params({**base, "methods": [{"name": "knn", "k": 2.5}]}, "nb")
    with pytest.raises(ScorecastError, match=r"nb: methods: two different methods share the label 'mine'"):
        validate_notebook_params({**base, "methods": [{"name": "knn", "label": "mine"}, {"name": "gnn", "label": "mine"}]}, "nb")
    with pytest.raises(ScorecastError, match=r"scorers\[0\]\.view 'adv' needs experiment.paradigm: adversarial"):
        validate_notebook_params({**base, "scorers": [{"name": "du", "view": "adv"}]}, "nb")
    with pytest.raises(ScorecastError, match=r"scorers\[0\]\.scoring: lr must be positive"):
        validate_notebook_params({**base, "scorers": [{"name": "tdds", "scoring": {"lr": 0}}]}, "nb")
    with pytest.raises(ScorecastError, match=r"scorer 'tdds' needs labels"):
        validate_notebook_params({**base, "encoder": {"name": "pca"}, "scorers": [{"name": "tdds"}]}, "nb")
    with pytest.raises(ScorecastError, match=r"method 'proxy' is not available without labels"):
        validate_notebook_params({**base, "encoder": {"name": "pca"}, "turtle": {"epochs": 3}, "methods": [{"name": "proxy"}]}, "nb")
    with pytest.raises(ScorecastError, match=r"unknown turtle option 'epoch' \(did you mean 'epochs'\?\)"):
        validate_notebook_params({**base, "encoder": {"name": "pca"}, "turtle": {"epoch": 3}}, "nb")

"""Parameter files: schema, defaults and validation.

Every notebook's ``parameters`` cell and every ``params/<tier>/<notebook>.yaml`` use the keys in
:data:`NOTEBOOK_KEYS`; ``experiment`` is the nested config of :class:`scorecast.pipeline.Pipeline`.
An unknown or mistyped key, a wrong type or an impossible value stops the run with a message naming
the key, the file and what is allowed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from .paths import resolve
from .validation import ScorecastError

DEFAULT_EXPERIMENT = {
    "data": {"name": "digits"},
    "test_data": None,
    "model": "tiny_cnn",
    "paradigm": "supervised",
    "scoring": {"epochs": 20, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant"},
    "record": {"source": "train", "trajectory": "last", "trajectory_length": 10},
    "retrain": {"epochs": 20, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-3, "schedule": "onecycle"},
    "attack": {"eps": 8 / 255, "step": 2 / 255, "steps": 10},
    "eval_attack_steps": 20,
    "device": "auto",
}

_RECIPE = {"epochs": int, "batch_size": int, "optimizer": str, "lr": float, "weight_decay": float, "momentum": float, "nesterov": bool, "schedule": str}
_DATA = {"name": str, "root": (str, type(None)), "download": bool, "resize": int, "crop": int, "pad": int, "flip": bool, "num_classes": int, "limit": int}
EXPERIMENT_SCHEMA = {
    "data": _DATA,
    "test_data": (dict, type(None)),
    "model": str,
    "paradigm": str,
    "scoring": _RECIPE,
    "record": {"source": str, "trajectory": str, "trajectory_length": int},
    "retrain": _RECIPE,
    "attack": {"eps": float, "step": float, "steps": int, "random_start": bool},
    "eval_attack_steps": int,
    "device": str,
}
PARADIGMS = ("supervised", "adversarial")

# keys a notebook's parameters cell may hold, with their types
NOTEBOOK_KEYS = {
    "experiment": (dict, str),
    "scorers": list,
    "methods": list,
    "rates": list,
    "fractions": list,
    "seeds": list,
    "k_grid": list,
    "class_balanced": bool,
    "encoder": dict,
    "turtle": dict,
    "augmentations": int,
    "n_examples": int,
    "cache_dir": (str, type(None)),
    "output_dir": str,
}


def _type_ok(value, expected) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _check_mapping(values: dict, schema: dict, where: str, source: str) -> None:
    for key, value in values.items():
        if key not in schema:
            raise ScorecastError(f"{source}: unknown key {where}{key!r}; allowed: {sorted(schema)}")
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ScorecastError(f"{source}: {where}{key} must be a mapping with keys {sorted(expected)}, got {value!r}")
            _check_mapping(value, expected, f"{where}{key}.", source)
        elif not _type_ok(value, expected):
            names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
            raise ScorecastError(f"{source}: {where}{key} must be {names}, got {value!r}")


def _merge(defaults: dict, overrides: dict) -> dict:
    out = copy.deepcopy(defaults)
    for key, value in overrides.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("data", "test_data") else value
    return out


def _read_yaml(path: Path) -> dict:
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ScorecastError(f"cannot read parameter file {str(path)!r}: {err}") from err
    if not isinstance(values, dict):
        raise ScorecastError(f"{path}: a parameter file must be a mapping")
    return values


def validate_experiment(experiment: dict | str, source: str = "experiment") -> dict:
    """Check an experiment config and return it merged over :data:`DEFAULT_EXPERIMENT`.

    ``experiment`` is a mapping, or the path of a tier's shared YAML file (e.g.
    ``params/cpu/experiment.yaml``, relative to :func:`scorecast.paths.project_root`), so every notebook of a tier
    shares one definition."""
    if isinstance(experiment, str):
        path = resolve(experiment)
        source, experiment = str(path), _read_yaml(path)
    if not isinstance(experiment, dict):
        raise ScorecastError(f"{source}: experiment must be a mapping, got {type(experiment).__name__}")
    _check_mapping(experiment, EXPERIMENT_SCHEMA, "experiment.", source)
    merged = _merge(DEFAULT_EXPERIMENT, experiment)
    if "name" not in merged["data"]:
        raise ScorecastError(f"{source}: experiment.data needs a name")
    if merged["test_data"] is not None:
        _check_mapping(merged["test_data"], _DATA, "experiment.test_data.", source)
    if merged["paradigm"] not in PARADIGMS:
        raise ScorecastError(f"{source}: experiment.paradigm={merged['paradigm']!r}; allowed: {list(PARADIGMS)} (unsupervised runs use the TURTLE notebook keys)")
    from .data import REGISTRY
    from .models import MODELS

    if merged["data"]["name"] not in REGISTRY:
        raise ScorecastError(f"{source}: experiment.data.name={merged['data']['name']!r}; allowed: {sorted(REGISTRY)}")
    if merged["model"] not in MODELS:
        raise ScorecastError(f"{source}: experiment.model={merged['model']!r}; allowed: {sorted(MODELS)}")
    for part in ("scoring", "retrain"):
        if merged[part]["epochs"] < 1:
            raise ScorecastError(f"{source}: experiment.{part}.epochs must be >= 1, got {merged[part]['epochs']}")
    if merged["test_data"] is not None and merged["test_data"].get("name") not in REGISTRY:
        raise ScorecastError(f"{source}: experiment.test_data needs a name from {sorted(REGISTRY)}, got {merged['test_data'].get('name')!r}")
    if merged["record"]["trajectory"] not in ("first", "last"):
        raise ScorecastError(f"{source}: experiment.record.trajectory={merged['record']['trajectory']!r}; allowed: ['first', 'last']")
    if merged["device"] != "auto" and merged["device"] != "cpu" and not merged["device"].startswith("cuda"):
        raise ScorecastError(f"{source}: experiment.device={merged['device']!r}; allowed: 'auto', 'cpu', 'cuda' or 'cuda:<n>'")
    # the training objects check their own values; name the file and the block on failure
    from .train import PGD, Recipe, RecordSpec

    checks = {"scoring": lambda: Recipe(**merged["scoring"]), "retrain": lambda: Recipe(**merged["retrain"]),
              "record": lambda: RecordSpec(merged["record"]["source"]), "attack": lambda: PGD(**merged["attack"])}
    for block, build in checks.items():
        try:
            build()
        except ScorecastError as err:
            raise ScorecastError(f"{source}: experiment.{block}: {err}") from None
    return merged


def validate_notebook_params(params: dict, source: str) -> dict:
    """Check a notebook's parameters (from its YAML file or parameters cell); returns them."""
    _check_mapping(params, NOTEBOOK_KEYS, "", source)
    if "experiment" in params:
        validate_experiment(params["experiment"], source)
    for rate in params.get("rates", []):
        if not _type_ok(rate, float) or not 0 <= rate < 1:
            raise ScorecastError(f"{source}: rates entry {rate!r} must be a fraction in [0, 1)")
    for fraction in params.get("fractions", []):
        if not _type_ok(fraction, float) or not 0 < fraction < 1:
            raise ScorecastError(f"{source}: fractions entry {fraction!r} must lie in (0, 1)")
    for seed in params.get("seeds", []):
        if not _type_ok(seed, int):
            raise ScorecastError(f"{source}: seeds entry {seed!r} must be an integer")
    for key in ("scorers", "methods"):
        for entry in params.get(key, []):
            if not isinstance(entry, dict) or "name" not in entry:
                raise ScorecastError(f"{source}: each {key} entry must be a mapping with a 'name', got {entry!r}")
    return params


def load_params(path: str | Path) -> dict:
    """Read and validate a parameter YAML file."""
    path = Path(path)
    return validate_notebook_params(_read_yaml(path), str(path))

"""Input checks shared by every module: one clear message naming the parameter and the fix.

Every check raises :class:`ScorecastError` (a ``ValueError``) so callers and tests can catch one
type; messages always name the offending parameter and what is allowed.
"""

from __future__ import annotations

import difflib
import math

import numpy as np
import torch


class ScorecastError(ValueError):
    """Bad input to scorecast: the message names the parameter, the problem and what is allowed."""


def did_you_mean(word: str, allowed) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``allowed``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(a) for a in allowed], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(name: str, value, allowed) -> None:
    """Raise unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ScorecastError(f"{name}={value!r} is not allowed; choose one of {sorted(map(str, allowed))}")


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as int, raising unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ScorecastError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_seed(seed) -> int:
    """Return ``seed`` as int, raising unless it is an integer >= 0 (numpy's generators refuse negatives)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ScorecastError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def check_rate(rate) -> float:
    """Pruning rate p (fraction removed) must lie in [0, 1)."""
    if not isinstance(rate, (int, float, np.floating)) or not (0.0 <= float(rate) < 1.0):
        raise ScorecastError(f"rate={rate!r} must be a fraction in [0, 1) (the share of samples removed)")
    return float(rate)


def as_finite_vector(name: str, values, length: int | None = None) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array, raising on NaN/inf, wrong ndim or wrong length."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ScorecastError(f"{name} must be 1-D, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ScorecastError(f"{name} has {arr.shape[0]} entries but {length} are expected (one per sample)")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ScorecastError(
            f"{name} contains {int(bad.sum())} NaN or infinite values (first at position {int(np.argmax(bad))})"
        )
    return arr


def as_finite_matrix(name: str, values) -> np.ndarray:
    """Return ``values`` as a 2-D float32 array (n, d), raising on NaN/inf or wrong ndim."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim != 2:
        raise ScorecastError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ScorecastError(f"{name} contains NaN or infinite values; check the embedding step")
    return arr


def as_index_vector(name: str, indices, n: int) -> np.ndarray:
    """Return unique integer indices in [0, n) as int64, raising on duplicates or out-of-range."""
    arr = np.asarray(indices)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ScorecastError(f"{name} must be a 1-D array of integer sample indices, got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ScorecastError(f"{name} has indices outside [0, {n}): min {arr.min()}, max {arr.max()}")
    if np.unique(arr).size != arr.size:
        raise ScorecastError(f"{name} contains duplicate indices; each sample may appear once")
    return arr


def as_label_vector(name: str, labels, length: int | None = None) -> np.ndarray:
    """Return class labels as a 1-D int64 array, raising on non-integers, negatives or wrong length."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ScorecastError(f"{name} must be a 1-D array of integer class labels, got {arr.dtype} {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ScorecastError(f"{name} has {arr.shape[0]} entries but {length} are expected (one per sample)")
    if arr.size and arr.min() < 0:
        raise ScorecastError(f"{name} must be non-negative class indices, got minimum {arr.min()}")
    return arr.astype(np.int64)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScorecastError(f"device={device!r} but no CUDA device is available; use device: auto or cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ScorecastError(f"device={device!r} is not a device name; use auto, cpu, cuda or cuda:<n>") from None


def type_ok(value, expected) -> bool:
    """Whether a parsed YAML/JSON ``value`` has type ``expected`` (a type or a tuple of types): an
    int is a float, a bool is neither, and a float must be finite (YAML's ``.inf`` and ``.nan``
    are numbers no recipe or option means)."""
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(expected, tuple):
        return any(type_ok(value, member) for member in expected)
    return isinstance(value, expected)


def _type_names(expected) -> str:
    members = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("a finite number" if t is float else "null" if t is type(None) else t.__name__ for t in members)


def check_mapping(values: dict, schema: dict, where: str, source: str) -> None:
    """Raise unless every key of ``values`` is in ``schema`` ({key: type, tuple of types or nested
    schema}) with a value of that type. Messages read ``<source>: <where><key> ...``."""
    for key, value in values.items():
        if key not in schema:
            raise ScorecastError(f"{source}: unknown key {where}{key!r}{did_you_mean(key, schema)}; allowed: {sorted(schema)}")
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ScorecastError(f"{source}: {where}{key} must be a mapping with keys {sorted(expected)}, got {value!r}")
            check_mapping(value, expected, f"{where}{key}.", source)
        elif not type_ok(value, expected):
            raise ScorecastError(f"{source}: {where}{key} must be {_type_names(expected)}, got {value!r}")

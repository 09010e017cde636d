"""Score files: one CSV row per sample in canonical dataset order, plus a JSON sidecar.

``scores.csv`` has the columns index, label, score, in_subset, source (``computed`` for scores
from a model's own training dynamics, ``extrapolated`` for predicted ones). ``scores.csv.json``
holds n, a checksum of the labels (so a file cannot silently be applied to another dataset or
sample order), the full config, its seed and the scorecast version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .validation import ScorecastError, as_finite_vector, as_label_vector, check_choice

COLUMNS = ["index", "label", "score", "in_subset", "source"]
SOURCES = ("computed", "extrapolated")


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a score file: ``<path>.json``."""
    return Path(f"{os.fspath(path)}.json")


def label_checksum(labels: np.ndarray) -> str:
    """sha256 hex digest of the labels as little-endian int64."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype="<i8").tobytes()).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then move it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_scores(path, scores, labels, in_subset, source, config: dict) -> None:
    """Write a score file and its sidecar (both atomically).

    scores: (n,) finite floats in dataset order. labels: (n,) integer class labels.
    in_subset: (n,) bool, True for samples of the scoring subset.
    source: "computed" or "extrapolated", either one string for all rows or an (n,) array.
    config: JSON-serialisable dict describing how the scores were made (its "seed" is copied).
    """
    scores = as_finite_vector("scores", scores)
    n = scores.shape[0]
    labels = as_label_vector("labels", labels, length=n)
    in_subset = np.asarray(in_subset)
    if in_subset.shape != (n,) or in_subset.dtype != bool:
        raise ScorecastError(f"in_subset must be an (n,) = ({n},) bool array, got {in_subset.dtype} {in_subset.shape}")
    source = np.asarray(source, dtype=object)
    if source.ndim == 0:
        source = np.full(n, source.item(), dtype=object)
    if source.shape != (n,):
        raise ScorecastError(f"source must be one string or an (n,) = ({n},) array of strings, got {source.shape}")
    for value in set(source.tolist()):
        check_choice("source", value, SOURCES)
    if not isinstance(config, dict):
        raise ScorecastError(f"config must be a dict, got {type(config).__name__}")
    meta = {
        "n": n,
        "label_checksum": label_checksum(labels),
        "config": config,
        "seed": config.get("seed"),
        "scorecast_version": __version__,
        "columns": COLUMNS,
    }
    try:
        meta_text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    except TypeError as err:
        raise ScorecastError(f"config must be JSON-serialisable (plain numbers, strings, lists, dicts): {err}") from err
    frame = pd.DataFrame(
        {"index": np.arange(n), "label": labels, "score": scores, "in_subset": in_subset, "source": source}
    )
    path = Path(path)
    _write_atomic(path, frame.to_csv(index=False))
    _write_atomic(sidecar_path(path), meta_text)


def read_scores(path, labels=None) -> pd.DataFrame:
    """Read a score file, checking it against its sidecar and, if given, the dataset's labels.

    labels: optional (n,) labels of the dataset the scores will be applied to, in canonical order.
    Returns a DataFrame with columns index, label, score, in_subset, source (one row per sample,
    in dataset order); the sidecar dict is in ``frame.attrs["sidecar"]``.
    """
    path = Path(path)
    meta_path = sidecar_path(path)
    if not path.is_file():
        raise ScorecastError(f"score file {path} does not exist")
    if not meta_path.is_file():
        raise ScorecastError(f"score file {path} has no sidecar {meta_path}; rewrite it with write_scores")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    frame = pd.read_csv(
        path, dtype={"index": np.int64, "label": np.int64, "score": np.float64, "in_subset": bool, "source": str}
    )
    if list(frame.columns) != meta["columns"]:
        raise ScorecastError(
            f"score file {path} has columns {list(frame.columns)}; its sidecar lists {meta['columns']}"
        )
    if len(frame) != meta["n"] or not np.array_equal(frame["index"].to_numpy(), np.arange(len(frame))):
        raise ScorecastError(
            f"score file {path} has {len(frame)} rows but its sidecar says n={meta['n']} "
            "(rows must be indices 0..n-1 in order); the file was modified or truncated"
        )
    file_labels = frame["label"].to_numpy()
    if label_checksum(file_labels) != meta["label_checksum"]:
        raise ScorecastError(f"the label column of {path} does not match its sidecar's checksum; the file was modified")
    if labels is not None:
        labels = as_label_vector("labels", labels)
        if labels.shape != file_labels.shape or not np.array_equal(labels, file_labels):
            raise ScorecastError(
                f"score file {path} belongs to another dataset or sample order: its {len(file_labels)} labels "
                f"differ from the {len(labels)} labels given"
            )
    frame.attrs["sidecar"] = meta
    return frame

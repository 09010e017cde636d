"""Score files: one CSV row per sample in canonical dataset order, plus a JSON sidecar.

``scores.csv`` has the columns index, label, score, in_subset, source (``computed`` for scores
from a model's own training dynamics, ``extrapolated`` for predicted ones). ``scores.csv.json``
holds n, a checksum of the labels (so a file cannot silently be applied to another dataset or
sample order), a checksum of the score, in_subset and source columns (so edited or swapped
scores are detected), the full config, its seed and the scorecast version. The reader refuses,
naming the file, anything unreadable, NaN or infinite scores, an unknown source and any
mismatch with the sidecar.
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


def score_checksum(scores: np.ndarray, in_subset: np.ndarray, source: np.ndarray) -> str:
    """sha256 hex digest of the score (n,) float64, in_subset (n,) bool and source (n,) str columns."""
    digest = hashlib.sha256(np.ascontiguousarray(scores, dtype="<f8").tobytes())
    digest.update(np.ascontiguousarray(in_subset, dtype=np.uint8).tobytes())
    digest.update("\n".join(map(str, source)).encode())
    return digest.hexdigest()


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
        "score_checksum": score_checksum(scores, in_subset, source),
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


def _read_sidecar(path: Path, meta_path: Path) -> dict:
    """The sidecar of score file ``path`` as a dict with at least n, columns and both checksums."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ScorecastError(f"cannot read the sidecar {meta_path} of score file {path} ({err}); rewrite both with write_scores") from err
    required = ("n", "columns", "label_checksum", "score_checksum")
    missing = [key for key in required if key not in meta] if isinstance(meta, dict) else list(required)
    if missing:
        raise ScorecastError(f"the sidecar {meta_path} of score file {path} lacks {missing}; rewrite both with write_scores")
    return meta


def read_scores(path, labels=None) -> pd.DataFrame:
    """Read a score file, checking it against its sidecar and, if given, the dataset's labels.

    labels: optional (n,) labels of the dataset the scores will be applied to, in canonical order.
    Returns a DataFrame with columns index, label, score, in_subset, source (one row per sample,
    in dataset order); the sidecar dict is in ``frame.attrs["sidecar"]``. Every problem raises a
    ScorecastError naming the file.
    """
    path = Path(path)
    meta_path = sidecar_path(path)
    if not path.is_file():
        raise ScorecastError(f"score file {path} does not exist")
    if not meta_path.is_file():
        raise ScorecastError(f"score file {path} has no sidecar {meta_path}; rewrite it with write_scores")
    meta = _read_sidecar(path, meta_path)
    try:
        frame = pd.read_csv(
            path, dtype={"index": np.int64, "label": np.int64, "score": np.float64, "in_subset": bool, "source": str},
            keep_default_na=False, na_values={"score": ["nan", "NaN", "NA", ""]},  # a missing source stays a string
        )
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ScorecastError(f"cannot read score file {path} ({err}); it is damaged or not a score file: rewrite it with write_scores") from err
    if list(frame.columns) != meta["columns"]:
        raise ScorecastError(
            f"score file {path} has columns {list(frame.columns)}; its sidecar lists {meta['columns']}"
        )
    if len(frame) != meta["n"] or not np.array_equal(frame["index"].to_numpy(), np.arange(len(frame))):
        raise ScorecastError(
            f"score file {path} has {len(frame)} rows but its sidecar says n={meta['n']} "
            "(rows must be indices 0..n-1 in order); the file was modified or truncated"
        )
    scores = frame["score"].to_numpy()
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ScorecastError(f"score file {path} has {int(bad.sum())} NaN or infinite scores (first in row {int(np.argmax(bad))}); scores must be finite")
    unknown = sorted(set(frame["source"]) - set(SOURCES))
    if unknown:
        raise ScorecastError(f"score file {path} has source values {unknown}; allowed: {list(SOURCES)}")
    file_labels = frame["label"].to_numpy()
    if label_checksum(file_labels) != meta["label_checksum"]:
        raise ScorecastError(f"the label column of {path} does not match its sidecar's checksum; the file was modified")
    if score_checksum(scores, frame["in_subset"].to_numpy(), frame["source"].to_numpy()) != meta["score_checksum"]:
        raise ScorecastError(
            f"the score, in_subset or source column of {path} does not match its sidecar's checksum; the file was modified"
        )
    if labels is not None:
        labels = as_label_vector("labels", labels)
        if labels.shape != file_labels.shape or not np.array_equal(labels, file_labels):
            raise ScorecastError(
                f"score file {path} belongs to another dataset or sample order: its {len(file_labels)} labels "
                f"differ from the {len(labels)} labels given"
            )
    frame.attrs["sidecar"] = meta
    return frame

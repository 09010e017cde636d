"""Content-addressed artefact cache: trained models, dynamics, scores, embeddings, metrics.

An artefact lives in ``<root>/<stage>/<key>/`` where ``key`` hashes the stage name, the stage's
code version and the full producing config (data fingerprint, seed, hyperparameters). A
``manifest.json`` written last lists every file with its size and SHA-256 plus the stage's wall
time; an artefact without a manifest (half-written) or whose files do not match it (corrupted)
is recomputed. Writes are atomic: the stage writes into a temporary folder that is renamed into
place only when complete, so an interrupted batch run loses nothing that finished.

Root: ``SCORECAST_CACHE`` or ``<project root>/.cache`` (git-ignored; :func:`scorecast.paths.cache_root`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .paths import cache_root

MANIFEST = "manifest.json"


def _plain(value):
    """JSON form of numpy scalars (np.int64(0) keys like 0); arrays are refused: hash them first."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        raise TypeError("a numpy array in a cache config: put a digest of it in the config instead")
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cache config value {value!r} of type {type(value).__name__} is not JSON-serialisable")


def config_key(stage: str, version: str, config: dict) -> str:
    """Stable 20-hex-digit key of (stage, version, config); config must be JSON-serialisable."""
    blob = json.dumps({"stage": stage, "version": version, "config": config}, sort_keys=True, default=_plain)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Artifact:
    """A finished artefact: its folder, the producing config, the stage's wall time (seconds, as
    measured when it was computed, so cost accounting stays honest on cache hits) and whether this
    call found it in the cache."""

    path: Path
    config: dict
    seconds: float
    cached: bool
    info: dict

    def file(self, name: str) -> Path:
        return self.path / name


class Cache:
    """``cache.get(stage, version, config, compute)`` returns an :class:`Artifact`, running
    ``compute(folder) -> info dict`` only when no valid artefact exists."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else cache_root()

    def folder(self, stage: str, version: str, config: dict) -> Path:
        return self.root / stage / config_key(stage, version, config)

    def load(self, stage: str, version: str, config: dict) -> Artifact | None:
        """The valid artefact for this config, or None (missing, half-written or corrupted)."""
        folder = self.folder(stage, version, config)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            for name, entry in manifest["files"].items():
                path = folder / name
                if path.stat().st_size != entry["size"] or _sha256(path) != entry["sha256"]:
                    return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return Artifact(folder, manifest["config"], manifest["seconds"], True, manifest["info"])

    def get(self, stage: str, version: str, config: dict, compute: Callable[[Path], dict[str, Any] | None]) -> Artifact:
        found = self.load(stage, version, config)
        if found is not None:
            return found
        final = self.folder(stage, version, config)
        tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            start = time.perf_counter()
            info = compute(tmp) or {}
            seconds = time.perf_counter() - start
            files = {
                str(p.relative_to(tmp)): {"size": p.stat().st_size, "sha256": _sha256(p)}
                for p in sorted(tmp.rglob("*"))
                if p.is_file()
            }
            manifest = {"stage": stage, "version": version, "config": config, "seconds": seconds, "info": info, "files": files}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=_plain))
            if final.exists():  # a corrupted or half-written artefact: replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return Artifact(final, config, seconds, False, info)

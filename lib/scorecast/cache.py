"""Content-addressed artefact cache: trained models, dynamics, scores, embeddings, metrics.

An artefact lives in ``<root>/<stage>/<key>/`` where ``key`` hashes the stage name, the stage's
code version, the full producing config (data fingerprint, seed, hyperparameters) and the machine
settings that change float results (:func:`machine`: on a CPU torch's thread count, the CPU model and
``ATEN_CPU_CAPABILITY``; on CUDA the GPU model and CUDA settings; the number of data-parallel
processes), so a cache filled on 2 threads or another CPU is never served here, while nodes of a
cluster with identical GPUs share one cache.
A ``manifest.json`` lists every file with its size and SHA-256 plus the stage's wall time and the
machine; ``manifest.json.sha256`` holds the manifest's own SHA-256. An artefact without them
(half-written), whose manifest does not match its digest, or whose files do not match the
manifest (corrupted) is recomputed.

Integrity without re-reading gigabytes on every lookup: the first lookup SHA-256-hashes every file
(a full run's dynamics at ImageNet scale are tens of GB) and, when they match the manifest, stores
each file's size and modification time (ns) in ``verified.json`` beside it. Later lookups hash only
files whose size or modification time differ from that record; a file modified within
:data:`RACY_SECONDS` of the record being written is hashed again (a same-tick rewrite keeps its
mtime). Artefacts written before ``verified.json`` existed are served the same way: hashed once,
then recorded. What that cannot see (bytes changed in place with the size and mtime restored, bit
rot) ``python -m scorecast.cache verify [root]`` finds: it re-hashes every file of every artefact.

Writes are atomic and safe under concurrency: a stage writes into a temporary ``.tmp-*`` folder
that is renamed into place only when complete, so an interrupted batch run loses nothing that
finished. Installing takes an exclusive lock on the stage folder: a writer that finds a valid
artefact already in place (another process won the race) discards its copy and uses the
winner's; a corrupted one is renamed aside, then removed. A writer holds a lock on its
temporary folder while it computes; temporary folders older than :data:`STALE_SECONDS` that no
live writer holds are removed on the next write to that stage.

Log lines on stdout (none under :func:`scorecast.train.quiet`: batch runs and tests set
``SCORECAST_QUIET=1``): one per computed artefact, e.g. ``[scorecast] train 1a2b3c4d: computed in 12.3 s``,
and one per stage for cache reads, at the first read of that stage by this :class:`Cache`
(``[scorecast] retrain: reading from cache (first 1a2b3c4d, computed in 4.1 s); further reads not logged``),
so a cached re-run of a notebook prints a line per stage, not one per artefact.

Root: ``SCORECAST_CACHE`` or ``<project root>/.cache`` (git-ignored; :func:`scorecast.paths.cache_root`).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import platform
import shutil
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .paths import cache_root, check_cache_root
from .train import quiet
from .validation import check_positive_int, resolve_device

MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.json.sha256"
VERIFIED = "verified.json"  # {"at": ns, "files": {name: [size, mtime_ns]}} of files whose SHA-256 matched the manifest
RACY_SECONDS = 2.0
STALE_SECONDS = 6 * 3600


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


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    """The CPU's 'model name' from /proc/cpuinfo, else :func:`platform.processor` or the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str | torch.device = "cpu", processes: int = 1) -> dict:
    """Settings that change the float results of a stage computed on ``device`` by ``processes``
    data-parallel processes (:mod:`scorecast.distributed`), part of every cache key and manifest.

    On a CPU: torch's intra-op thread count (per process), the CPU model and ``ATEN_CPU_CAPABILITY``
    (None when unset), plus ``processes`` when above 1 (so one-process keys are those made before
    data-parallel runs existed). On CUDA the host CPU and its threads do not touch the results, so
    they stay out and identical GPU nodes share artefacts: the GPU model, ``processes``, the CUDA
    and cuDNN versions and the TF32 switches (float32 matmul precision, cuDNN TF32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return {"gpu": torch.cuda.get_device_name(device), "processes": processes, "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(), "float32_matmul_precision": torch.get_float32_matmul_precision(),
                "cudnn_tf32": torch.backends.cudnn.allow_tf32}
    settings = {"threads": torch.get_num_threads(), "cpu": _cpu_model(), "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY")}
    return settings if processes == 1 else {**settings, "processes": processes}


@contextmanager
def _locked(folder: Path, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``folder`` for the block; yields False (without waiting)
    when ``wait`` is False and another process holds it. The lock ends with the block or the process."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _log(stage: str, folder: Path | None, message: str) -> None:
    """One line on stdout, unless quiet (the same switch as the progress bars)."""
    if not quiet():
        print(f"[scorecast] {stage}{'' if folder is None else ' ' + folder.name[:8]}: {message}", flush=True)


@dataclass(frozen=True)
class Artifact:
    """A finished artefact: its folder, the producing config, the stage's wall time (seconds, as
    measured when it was computed, so cost accounting stays honest on cache hits), whether this
    call found it in the cache, the stage's info dict and the :func:`machine` that computed it."""

    path: Path
    config: dict
    seconds: float
    cached: bool
    info: dict
    machine: dict = field(default_factory=dict)

    def file(self, name: str) -> Path:
        return self.path / name


class Cache:
    """``cache.get(stage, version, config, compute)`` returns an :class:`Artifact`, running
    ``compute(folder) -> info dict`` only when no valid artefact exists for this config on this
    machine: ``device`` ("cpu", "cuda", "cuda:<n>"; "auto" as :func:`scorecast.validation.resolve_device`)
    and ``processes``, the device and number of data-parallel processes that compute this Cache's
    artefacts (see :func:`machine`)."""

    def __init__(self, root: str | Path | None = None, device: str = "cpu", processes: int = 1):
        self.root = check_cache_root(Path(root).expanduser() if root else cache_root())
        self.device, self.processes = resolve_device(device), check_positive_int("processes", processes)
        self._read_logged: set[str] = set()  # stages whose cache reads this Cache has logged (once each)

    def settings(self) -> dict:
        """This Cache's :func:`machine` settings, read now (the thread count can change)."""
        return machine(self.device, self.processes)

    def folder(self, stage: str, version: str, config: dict, settings: dict | None = None) -> Path:
        """``<root>/<stage>/<key>``; the key covers ``config`` and the machine ``settings``
        (default: :meth:`settings`)."""
        return self.root / stage / config_key(stage, version, {"config": config, "machine": settings or self.settings()})

    def load(self, stage: str, version: str, config: dict) -> Artifact | None:
        """The valid artefact for this config on this machine, or None (missing, half-written or corrupted)."""
        return self._load(self.folder(stage, version, config))

    @staticmethod
    def _load(folder: Path, full: bool = False) -> Artifact | None:
        """The artefact in ``folder`` if its manifest matches its digest and its files match the
        manifest: by SHA-256, skipped for files whose size and mtime match ``verified.json`` unless ``full``."""
        try:
            text = (folder / MANIFEST).read_bytes()
            if (folder / MANIFEST_DIGEST).read_text() != hashlib.sha256(text).hexdigest() + "\n":
                return None
            manifest = json.loads(text)
            trusted = {} if full else _verified(folder)
            stats, hashed = {}, False
            for name, entry in manifest["files"].items():
                path = folder / name
                stat = path.stat()
                stats[name] = [stat.st_size, stat.st_mtime_ns]
                if stat.st_size != entry["size"]:
                    return None
                if trusted.get(name) != stats[name]:
                    if _sha256(path) != entry["sha256"]:
                        return None
                    hashed = True
            if hashed:
                _record_verified(folder, stats)
            return Artifact(folder, manifest["config"], float(manifest["seconds"]), True, manifest["info"], manifest["machine"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def get(self, stage: str, version: str, config: dict, compute: Callable[[Path], dict[str, Any] | None]) -> Artifact:
        settings = self.settings()
        final = self.folder(stage, version, config, settings)
        found = self._load(final)
        if found is not None:
            if stage not in self._read_logged:
                self._read_logged.add(stage)
                _log(stage, None, f"reading from cache (first {final.name[:8]}, computed in {found.seconds:.1f} s); further reads not logged")
            return found
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(final.parent)
        tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            with _locked(tmp):  # marks the temporary folder live for _remove_stale
                start = time.perf_counter()
                info = compute(tmp) or {}
                seconds = time.perf_counter() - start
                files = {
                    str(p.relative_to(tmp)): {"size": p.stat().st_size, "sha256": _sha256(p)}
                    for p in sorted(tmp.rglob("*"))
                    if p.is_file()
                }
                manifest = {"stage": stage, "version": version, "config": config, "machine": settings, "seconds": seconds, "info": info, "files": files}
                text = json.dumps(manifest, indent=1, sort_keys=True, default=_plain).encode()
                (tmp / MANIFEST).write_bytes(text)
                (tmp / MANIFEST_DIGEST).write_text(hashlib.sha256(text).hexdigest() + "\n")
                winner = _install(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if winner is not None:
            _log(stage, final, f"computed in {seconds:.1f} s, but another process stored it first: using its copy")
            return winner
        _log(stage, final, f"computed in {seconds:.1f} s")
        return Artifact(final, config, seconds, False, info, settings)


def _verified(folder: Path) -> dict:
    """{file: [size, mtime_ns]} from ``folder``'s ``verified.json``, without files modified within
    :data:`RACY_SECONDS` of its writing; {} when absent or unreadable."""
    try:
        record = json.loads((folder / VERIFIED).read_text())
        cutoff = int(record["at"]) - int(RACY_SECONDS * 1e9)
        return {name: list(value) for name, value in record["files"].items() if int(value[1]) < cutoff}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return {}


def _record_verified(folder: Path, stats: dict) -> None:
    """Write ``verified.json`` (atomically) after every file of ``folder`` matched its SHA-256;
    best effort (a read-only cache just keeps hashing)."""
    tmp = folder / f".{VERIFIED}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps({"at": time.time_ns(), "files": stats}, sort_keys=True))
        os.replace(tmp, folder / VERIFIED)
    except OSError:
        tmp.unlink(missing_ok=True)


def verify(root: str | Path | None = None) -> tuple[int, list[Path]]:
    """Re-hash every file of every artefact under ``root`` (default: :func:`scorecast.paths.cache_root`)
    against its manifest, ignoring ``verified.json``. Returns (artefacts checked, damaged folders);
    damaged ones are left in place (the next lookup recomputes them)."""
    root = Path(root) if root else cache_root()
    folders = sorted(p.parent for p in root.glob(f"*/*/{MANIFEST}") if not p.parent.name.startswith(".tmp-"))
    damaged = [folder for folder in folders if Cache._load(folder, full=True) is None]
    return len(folders), damaged


def main(argv: list[str]) -> int:
    """``python -m scorecast.cache verify [root]``: re-hash every artefact; exit 1 naming the damaged ones."""
    if not argv or argv[0] != "verify" or len(argv) > 2:
        print("usage: python -m scorecast.cache verify [cache root]", file=sys.stderr)
        return 2
    checked, damaged = verify(argv[1] if len(argv) > 1 else None)
    for folder in damaged:
        print(f"cache verify: damaged (the next lookup recomputes it): {folder}", file=sys.stderr)
    print(f"cache verify: {checked} artefact(s) re-hashed, {len(damaged)} damaged")
    return 1 if damaged else 0


def _install(tmp: Path, final: Path) -> Artifact | None:
    """Rename the finished ``tmp`` into place, or return the valid artefact another process
    installed first (``tmp`` is then left for the caller to discard). Installs of one stage are
    serialised by a lock on the stage folder; a corrupted ``final`` is renamed aside, then removed."""
    with _locked(final.parent):
        if final.exists():
            winner = Cache._load(final)
            if winner is not None:
                return winner
            aside = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}-corrupted"
            os.rename(final, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.rename(tmp, final)
    return None


def _remove_stale(stage_folder: Path) -> None:
    """Remove ``.tmp-*`` folders of ``stage_folder`` older than :data:`STALE_SECONDS` that no live
    writer holds (left by killed runs). Best effort: another process may remove them first."""
    cutoff = time.time() - STALE_SECONDS
    for tmp in stage_folder.glob(".tmp-*"):
        try:
            if tmp.stat().st_mtime > cutoff:
                continue
            with _locked(tmp, wait=False) as free:
                if free:
                    shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

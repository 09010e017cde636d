"""What produced a results folder: the code, the machine and the float settings.

``python -m scorecast.provenance record results/<tier> <run>`` (called by ``run_all.sh`` after
each notebook) stores, per executed run, the :func:`code_hash` of everything that decides its
numbers, the git commit, the date, the torch thread count, the CPU model and the ATen CPU
capability in ``results/<tier>/provenance.json``. ``tests/test_provenance.py`` fails when a
stored run's hash differs from the current code's, so ``results/smoke`` cannot silently go
stale: regenerate it with ``./run_all.sh`` after any change that touches what it hashes.

The torch thread count changes floating-point reduction order, so each tier has one
(:data:`TIER_THREADS`) used by ``run_all.sh`` and by hand runs alike (:func:`use_tier_threads`), and
``run_all.sh --tests`` re-executes the stored notebooks at the count their provenance records.
``python -m scorecast.provenance threads <tier>`` and ``stored-threads <results dir>`` print them.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from . import cache
from .paths import project_root
from .train import quiet
from .validation import ScorecastError

PROVENANCE = "provenance.json"
TIER_THREADS = {"smoke": 1, "cpu": 2, "paper": 8}  # smoke: what the stored outputs use; cpu: the 2-core reference machine; paper: data loading and GPU feeding


def tier_threads(tier: str) -> int:
    """The torch thread count of ``tier``; ``SCORECAST_THREADS`` overrides (and is recorded)."""
    given = os.environ.get("SCORECAST_THREADS")
    if given is not None:
        if not given.isdigit() or int(given) < 1:
            raise ScorecastError(f"SCORECAST_THREADS={given!r} must be a positive whole number of torch threads")
        return int(given)
    return TIER_THREADS[tier]


def tier_of(experiment) -> str | None:
    """The tier ("smoke", "cpu", "paper") whose parameter folder holds ``experiment`` (a path such as
    params/cpu/experiment.yaml, relative or absolute); None for a mapping or another file."""
    if not isinstance(experiment, (str, Path)):
        return None
    parts = Path(experiment).parts
    return parts[-2] if len(parts) >= 3 and parts[-3] == "params" and parts[-2] in TIER_THREADS else None


def use_tier_threads(experiment) -> None:
    """In a hand or Jupyter run (``OMP_NUM_THREADS`` unset, as ``run_all.sh`` sets it), give torch the
    thread count of the tier ``experiment`` belongs to, so the run reproduces the stored numbers and
    shares their cache entries (the thread count is part of every cache key)."""
    tier = tier_of(experiment)
    if tier is None or "OMP_NUM_THREADS" in os.environ:
        return
    import torch

    threads = tier_threads(tier)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
        if not quiet():
            print(f"[scorecast] torch uses {threads} thread(s), the {tier} tier's count (SCORECAST_THREADS overrides)", flush=True)


def stored_threads(results_dir: str | Path) -> int:
    """The one torch thread count every run in ``<results_dir>/provenance.json`` was made with."""
    path = Path(results_dir) / PROVENANCE
    try:
        counts = {entry["threads"] for entry in json.loads(path.read_text()).values()}
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise ScorecastError(f"{str(path)!r} is missing or damaged ({err}); regenerate the tier with ./run_all.sh") from err
    if len(counts) != 1:
        raise ScorecastError(f"{str(path)!r} mixes thread counts {sorted(counts)}; regenerate the tier with one ./run_all.sh run")
    return counts.pop()


def code_hash(tier: str, root: Path | None = None) -> str:
    """16-hex-digit SHA-256 over the library's sources, the notebooks' cell sources (not their
    outputs), the tier's parameter files with the base files under them (``params/base/``, see
    :mod:`scorecast.paramfiles`) and the pinned dependencies (pyproject.toml)."""
    root = root or project_root()
    digest = hashlib.sha256()
    files = [*sorted((root / "lib" / "scorecast").rglob("*.py")), *sorted((root / "params" / tier).glob("*.yaml")),
             *sorted((root / "params" / "base").glob("*.yaml")), root / "pyproject.toml", *sorted((root / "notebooks").glob("*.ipynb"))]
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            digest.update(json.dumps([[c["cell_type"], "".join(c["source"])] for c in cells]).encode())
        else:
            digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def machine() -> dict:
    """The cache's float-relevant settings (threads, CPU model, ATEN_CPU_CAPABILITY) plus the
    capability torch actually uses and the torch and Python versions."""
    import torch

    return {**cache.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "python": platform.python_version()}


def _commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lib", "notebooks", "params"], cwd=root, capture_output=True, text=True).stdout
        return out.stdout.strip() + ("+uncommitted" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def record(results_dir: str | Path, run: str, tier: str) -> dict:
    """Add or replace ``run``'s entry in ``<results_dir>/provenance.json``; returns the entry."""
    root = project_root()
    path = Path(results_dir) / PROVENANCE
    entries = json.loads(path.read_text()) if path.exists() else {}
    entry = {"code_hash": code_hash(tier, root), "commit": _commit(root),
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), **machine()}
    entries[run] = entry
    path.write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n")
    return entry


if __name__ == "__main__":
    command = sys.argv[1:2]
    try:
        if command == ["record"] and len(sys.argv) == 5:
            record(sys.argv[2], sys.argv[3], sys.argv[4])
        elif command == ["threads"] and len(sys.argv) == 3 and sys.argv[2] in TIER_THREADS:
            print(tier_threads(sys.argv[2]))
        elif command == ["stored-threads"] and len(sys.argv) == 3:
            print(stored_threads(sys.argv[2]))
        else:
            sys.exit("usage: python -m scorecast.provenance record <results dir> <run name> <tier> | threads <smoke|cpu|paper> | stored-threads <results dir>")
    except ScorecastError as err:
        sys.exit(f"scorecast.provenance: {err}")

"""What produced a results folder: the code, the machine and the float settings.

``python -m scorecast.provenance record results/<tier> <run>`` (called by ``run_all.sh`` after
each notebook) stores, per executed run, the :func:`code_hash` of everything that decides its
numbers, the git commit, the date, the torch thread count, the CPU model and the ATen CPU
capability in ``results/<tier>/provenance.json``. ``tests/test_provenance.py`` fails when a
stored run's hash differs from the current code's, so ``results/smoke`` cannot silently go
stale: regenerate it with ``./run_all.sh`` after any change that touches what it hashes.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

from . import cache
from .paths import project_root

PROVENANCE = "provenance.json"


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
    if len(sys.argv) != 5 or sys.argv[1] != "record":
        sys.exit("usage: python -m scorecast.provenance record <results dir> <run name> <tier>")
    record(sys.argv[2], sys.argv[3], sys.argv[4])

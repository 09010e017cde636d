"""Where the kit reads and writes: resolved from the working directory or an explicit setting,
never from where the library is installed (a second checkout sharing one venv stays separate).

- :func:`project_root`: ``SCORECAST_ROOT`` when set, else the nearest folder at or above the
  working directory that holds ``params/`` and ``notebooks/`` (so a notebook run from
  ``notebooks/`` finds its checkout).
- :func:`resolve`: a relative path (``params/smoke/experiment.yaml``, ``results/smoke``) against
  the project root; absolute paths as given.
- :func:`cache_root`: ``SCORECAST_CACHE``, else ``<project root>/.cache``.

A notebook's default ``output_dir`` is ``scratch/<tier>`` (git-ignored), so stepping through a
notebook by hand never overwrites the committed ``results/``; only ``run_all.sh`` writes there.
"""

from __future__ import annotations

import os
from pathlib import Path

from .validation import ScorecastError


def _is_root(folder: Path) -> bool:
    return (folder / "params").is_dir() and (folder / "notebooks").is_dir()


def project_root() -> Path:
    """The scorecast checkout this process works in (see the module docstring)."""
    explicit = os.environ.get("SCORECAST_ROOT")
    if explicit:
        root = Path(explicit).expanduser().resolve()
        if not _is_root(root):
            raise ScorecastError(f"SCORECAST_ROOT={explicit!r} is not a scorecast checkout (no params/ and notebooks/ in it); "
                                 "point it at the folder that holds run_all.sh, or unset it")
        return root
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if _is_root(folder):
            return folder
    raise ScorecastError(f"cannot find the scorecast checkout from the working directory {str(here)!r}: run from inside it "
                         "(the folder with params/ and notebooks/, or below it) or set SCORECAST_ROOT")


def resolve(path: str | Path) -> Path:
    """``path`` as an absolute path: relative ones against :func:`project_root`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


def cache_root() -> Path:
    """Root of the artefact cache: ``SCORECAST_CACHE`` or ``<project root>/.cache``."""
    explicit = os.environ.get("SCORECAST_CACHE")
    return Path(explicit).expanduser() if explicit else project_root() / ".cache"


def check_cache_root(root: Path) -> Path:
    """``root`` as a cache root, refused with a message when it (or a folder above it) is a file."""
    for folder in (root, *root.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ScorecastError(f"cache root {str(root)!r}: {str(folder)!r} is a file, not a folder; point cache_dir (or "
                                     "SCORECAST_CACHE) at a folder, or move the file away")
            break
    return root

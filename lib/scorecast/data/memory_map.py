"""Splits larger than RAM: converted once to an ``.npy`` file, then memory-mapped.

ImageNet-64 is 15.7 GB as uint8, Places-365 more. ``load_dataset(..., mmap=folder)`` converts the
split once into ``folder/<name>-<split>/images.npy`` (n, C, H, W) uint8 in the same canonical order
(:func:`memory_mapped`), part by part for the datasets in :data:`STREAMS` (one ImageNet-64 batch
file or :data:`~scorecast.data.places365.PLACES_PART` Places images at a time), and then maps it:
batches read their rows from disk, and nothing holds the whole array. A conversion records what it
was made from, so a changed source or other options are refused rather than served stale.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..validation import ScorecastError
from .builtin import FASHION_MNIST_ROOT
from .catalog import REGISTRY
from .checks import channels_first, format_ids
from .npz import stream_imagenet64
from .places365 import stream_places365

STREAMS: dict[str, Callable] = {"imagenet64": stream_imagenet64, "places365": stream_places365}
"""Loaders that can yield a split in parts: ``stream(root, split, download, options) -> (n, classes,
iterable of (images (b, ...) uint8, labels (b,)))``, so converting it never holds more than one part."""


def memory_mapped(name: str, split: str, root, download: bool, options: dict, folder: Path):
    """(images (n, C, H, W) uint8 copy-on-write memmap, labels (n,), classes) of a split converted under ``folder``.

    The first call converts the split in canonical order into ``folder/<name>-<split>/`` (images.npy,
    labels.npy, classes.txt, source.json naming what was converted and the size and modification
    time of every source file, :func:`_source_state`), part by part for :data:`STREAMS` datasets;
    later calls only map the file. A folder converted from another source, with other options, or
    whose source files changed since (a replaced train.npz, a new file) is refused rather than
    reused; source files deleted after the conversion are not a change, so the originals can go.
    """
    target = Path(folder).expanduser() / f"{name}-{split}"
    if target.exists() and not target.is_dir() or Path(folder).expanduser().is_file():
        raise ScorecastError(f"data.mmap: {str(folder)!r} must be a folder for the converted splits, but {str(target)!r} or it is a file; set data.mmap to a folder")
    source = {"name": name, "split": split, "options": options}
    if not (target / "source.json").is_file():
        _convert(target, *(STREAMS[name] if name in STREAMS else _one_part(REGISTRY[name].loader))(root, split, download, options))
        (target / "source.json").write_text(json.dumps({**source, "state": _source_state(name, root, split)}, sort_keys=True))
    try:
        found = json.loads((target / "source.json").read_text())
        state = found.pop("state", None)
    except (OSError, ValueError, AttributeError) as err:
        raise ScorecastError(f"data.mmap: {str(target / 'source.json')!r} is damaged ({err}); delete {str(target)!r} to convert the split again") from err
    if found != json.loads(json.dumps(source)):
        raise ScorecastError(f"data.mmap: {str(target)!r} holds a conversion of {found}, not of {source}; delete that folder or set another data.mmap")
    try:
        now = _source_state(name, root, split)
    except ScorecastError:  # the source files were deleted once converted (as one does with ImageNet's batches)
        now = {}
    if state is None or {f: v for f, v in now.items() if f not in state or state[f] != v}:
        raise ScorecastError(f"data.mmap: the source of {str(target)!r} changed since it was converted ({_changed(state, now)}), so the "
                             f"memory map would serve the old images; delete {str(target)!r} to convert the split again")
    try:
        images = np.load(target / "images.npy", mmap_mode="c")  # rows are read from disk when indexed; writes stay private
        labels = np.load(target / "labels.npy")
        classes = (target / "classes.txt").read_text().splitlines()
    except (OSError, ValueError, EOFError) as err:
        raise ScorecastError(f"data.mmap: the conversion in {str(target)!r} is damaged or truncated ({err}); delete that folder to convert the split again") from err
    if images.shape[0] != len(labels):
        raise ScorecastError(f"data.mmap: {str(target)!r} holds {images.shape[0]} images but {len(labels)} labels; delete that folder to convert the split again")
    return images, labels, classes


def _source_state(name: str, root, split: str) -> dict[str, list[int]]:
    """{file: [size, modification time in ns]} of every file the split is read from (the dataset's
    ``sources``, folders walked), so a replaced or edited source file is noticed."""
    root = root or (FASHION_MNIST_ROOT if name == "fashion-mnist" else os.environ.get("SCORECAST_DATA_ROOT"))  # as the loaders do
    state = {}
    for path in REGISTRY[name].sources(Path(root).expanduser().resolve(), split) if root else []:
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                stat = file.stat()
                state[str(file)] = [stat.st_size, stat.st_mtime_ns]
    return state


def _changed(before: dict | None, now: dict) -> str:
    """Which source files differ between two :func:`_source_state` results, for messages."""
    if before is None:
        return "it was converted before scorecast recorded its source files"
    return f"{format_ids(sorted(f for f in set(before) | set(now) if before.get(f) != now.get(f)), 3)} added, removed or modified"


def _one_part(loader: Callable) -> Callable:
    """A stream (see :data:`STREAMS`) that loads the whole split into memory as one part."""

    def stream(root, split, download, options):
        images, labels, classes = loader(root, split, download, options)
        return len(labels), classes, [(images, labels)]

    return stream


def _convert(target: Path, n: int, classes: list, parts) -> None:
    """Write parts (images (b, ...) uint8, labels (b,)) of an n-sample split to ``target`` in order.

    Images go to images.npy (n, C, H, W) by plain file writes, so only the current part is in memory.
    """
    target.mkdir(parents=True, exist_ok=True)
    labels_out, shape, written = np.empty(n, dtype=np.int64), None, 0
    with open(target / "images.npy", "wb") as out:
        for images, labels in parts:
            images = np.ascontiguousarray(channels_first(images))
            if shape is None:
                shape = (n, *images.shape[1:])
                np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape})
            if images.shape[1:] != shape[1:] or written + len(images) > n:
                raise ScorecastError(f"data.mmap: a part of shape {images.shape} does not fit {shape} after {written} samples; the source files are inconsistent")
            out.write(memoryview(images).cast("B"))
            labels_out[written : written + len(images)] = labels
            written += len(images)
            del images, labels  # before the next part is read
    if written != n:
        raise ScorecastError(f"data.mmap: the source lists {n} samples but yielded {written}; the source files are inconsistent")
    np.save(target / "labels.npy", labels_out)
    (target / "classes.txt").write_text("".join(f"{c}\n" for c in classes))

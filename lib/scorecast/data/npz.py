"""Arrays in npz files: a split per file (``npz``), or ImageNet-64's downsampled batches.

``npz``: ``root/<split>.npz`` with arrays ``image`` (n, H, W, C) or (n, C, H, W) uint8 (C = 1 or 3)
and ``label`` (n,) integer, e.g. the 1M synthetic CIFAR-100; row order. The classes are
0..num_classes - 1 (option ``num_classes``), else 0..max(label) of the train split, which must
then hold every class.

``imagenet64``: ``train_data_batch_1..10.npz`` and ``val_data.npz``, each with ``data`` (b, 12288)
uint8 (CHW-flattened 3 x 64 x 64) and ``labels`` (b,) 1-based (read 0-based); batch then row
order. :func:`stream_imagenet64` yields one batch file at a time, for ``data.mmap``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..validation import ScorecastError, check_positive_int
from .checks import check_images, check_labels, format_ids, require_root


def load_npz(root, split, download, options):
    """(images (n, H, W, C) or (n, C, H, W) uint8 as stored, labels (n,) int64, classes) of ``root/<split>.npz``."""
    path = require_root("npz", root, "Point data.root at a folder holding train.npz and test.npz (arrays image, label).") / f"{split}.npz"
    if not path.is_file():
        raise ScorecastError(f"dataset 'npz': {str(path)!r} not found (expected <root>/{split}.npz with arrays 'image' and 'label')")
    images, labels = _read_npz(path, ("image", "label"))
    if images.ndim != 4 or (images.shape[-1] not in (1, 3) and images.shape[1] not in (1, 3)):
        raise ScorecastError(f"dataset 'npz': {str(path)!r} array 'image' has shape {images.shape}; expected (n, H, W, C) or (n, C, H, W) "
                             "with C = 1 (grey) or 3 (RGB); for RGBA images keep the colour channels, e.g. image[..., :3]")
    num_classes = options.get("num_classes")
    if num_classes is not None:
        num_classes = check_positive_int("data.num_classes", num_classes)
    source = f"dataset 'npz': {str(path)!r}"
    labels = check_labels(source, labels, len(check_images(source, images)), num_classes)
    if num_classes is None and split == "train":  # classes inferred as 0..max: a stray large label would add empty classes
        missing = np.setdiff1d(np.arange(labels.max() + 1), labels)
        if missing.size:
            raise ScorecastError(f"{source}: labels run from 0 to {labels.max()} but classes {format_ids(missing)} have no sample, so the model "
                                 f"would get {labels.max() + 1} outputs; relabel the classes to 0..{labels.max() - missing.size} "
                                 "or set data.num_classes to declare the class count")
    return images, labels, [str(c) for c in range(num_classes or labels.max() + 1)]


def load_imagenet64(root, split, download, options):
    """(images (n, 3, 64, 64) uint8, labels (n,) int64 0-based, 1000 class names) of a split."""
    images, labels = zip(*map(_read_imagenet64, imagenet64_files(root, split)))
    return np.concatenate(images), np.concatenate(labels), [str(c) for c in range(1000)]


def stream_imagenet64(root, split, download, options):
    """(n, classes, parts (images (b, 3, 64, 64) uint8, labels (b,)), one batch file each, read as
    they are iterated): the split in :func:`load_imagenet64`'s order."""
    files = imagenet64_files(root, split)
    n = sum(len(_read_npz(f, ("labels",))[0]) for f in files)  # npz members load one at a time: labels only
    return n, [str(c) for c in range(1000)], map(_read_imagenet64, files)


def imagenet64_files(root, split) -> list[Path]:
    """The batch files of a split, in canonical order; a missing one is an error."""
    base = require_root("imagenet64", root, "Download the 64x64 downsampled ImageNet npz batches from image-net.org and put them there.")
    files = [base / f"train_data_batch_{i}.npz" for i in range(1, 11)] if split == "train" else [base / "val_data.npz"]
    for f in files:
        if not f.is_file():
            raise ScorecastError(f"dataset 'imagenet64': {str(f)!r} not found (expected train_data_batch_1..10.npz and val_data.npz)")
    return files


def _read_imagenet64(f: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images (b, 3, 64, 64) uint8 and 0-based labels (b,)."""
    data, batch_labels = _read_npz(f, ("data", "labels"))
    if data.ndim != 2 or data.shape[1] != 3 * 64 * 64:
        raise ScorecastError(f"dataset 'imagenet64': {str(f)!r} array 'data' has shape {data.shape}, expected (n, 12288) (3x64x64, CHW-flattened)")
    source = f"dataset 'imagenet64': {str(f)!r}"
    return check_images(source, data).reshape(-1, 3, 64, 64), check_labels(source, batch_labels, len(data), 1000, first_label=1)  # stored 1-based


def _read_npz(path: Path, names: tuple[str, ...]) -> list[np.ndarray]:
    """Arrays ``names`` of the npz file ``path``; unreadable files and missing arrays name the file."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            found, available = {name: arrays[name] for name in names if name in arrays.files}, arrays.files
    except (OSError, ValueError, EOFError, TypeError, AttributeError, zipfile.BadZipFile) as err:
        raise ScorecastError(f"cannot read npz file {str(path)!r} ({err}); the file is damaged or not an npz archive of plain arrays") from err
    missing = [name for name in names if name not in found]
    if missing:
        raise ScorecastError(f"{str(path)!r} lacks arrays {missing} (has {available})")
    return [found[name] for name in names]

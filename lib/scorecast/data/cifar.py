"""CIFAR-10 and CIFAR-100 in torchvision's pickled batches.

Layout under the data folder: ``cifar-10-batches-py/`` (data_batch_1..5, test_batch, batches.meta)
or ``cifar-100-python/`` (train, test, meta). A batch holds ``data`` (b, 3072) uint8, each row a
CHW-flattened 3 x 32 x 32 image, and its labels (CIFAR-100: the fine labels). Canonical order:
file order (data_batch_1..5 / train), then row order. ``download=True`` fetches the batches
through torchvision.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..validation import ScorecastError
from .checks import check_images, check_labels, download_root, require_root

_LAYOUTS = {  # variant: (folder, batch files per split, label entry, meta file, class names entry)
    "cifar10": ("cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}, "labels", "batches.meta", "label_names"),
    "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}, "fine_labels", "meta", "fine_label_names"),
}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_loader(variant: str):
    """The loader of ``variant`` (cifar10 or cifar100): ``load(root, split, download, options) ->
    (images (n, 3, 32, 32) uint8, labels (n,) int64, class names)``."""
    folder, files, label_key, meta_file, names_key = _LAYOUTS[variant]

    def load(root, split, download, options):
        hint = f"Put torchvision's {folder}/ there, or set data.download: true to fetch it (internet needed)."
        if download:
            import torchvision

            root = download_root(variant, root)
            Path(root).mkdir(parents=True, exist_ok=True)
            getattr(torchvision.datasets, variant.upper())(str(root), train=split == "train", download=True)
        base = require_root(variant, root, hint) / folder
        if not base.is_dir():
            raise ScorecastError(f"dataset {variant!r}: {str(base)!r} not found. {hint}")
        parts = {f: _entries(base / f, "data", label_key) for f in files[split]}
        classes = list(_entries(base / meta_file, names_key)[0])
        images, labels = [], []
        for f, (data, part_labels) in parts.items():
            source, data = f"CIFAR batch {str(base / f)!r}", np.asarray(data)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise ScorecastError(f"{source}: 'data' has shape {data.shape}, expected (n, 3072); delete the folder and download again")
            images.append(check_images(source, data).reshape(-1, 3, 32, 32))
            labels.append(check_labels(source, part_labels, len(data), len(classes)))
        return np.concatenate(images), np.concatenate(labels), classes

    return load


def cifar_sources(variant: str):
    """``sources(root, split)`` of ``variant``: its batch folder (see :class:`~scorecast.data.catalog.DatasetSpec`)."""
    return lambda root, split: [root / _LAYOUTS[variant][0]]


def _entries(path: Path, *keys: str) -> list:
    """Entries ``keys`` of the CIFAR pickle at ``path``."""
    content = _unpickle(path)
    missing = [key for key in keys if not isinstance(content, dict) or key not in content]
    if missing:
        raise ScorecastError(f"CIFAR batch file {str(path)!r} has no {missing} entries; delete the folder and download again")
    return [content[key] for key in keys]


def _unpickle(path: Path) -> dict:
    """The object pickled in the batch file ``path`` (Python 2 pickles, hence latin1)."""
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError) as err:
        raise ScorecastError(f"cannot read CIFAR batch file {str(path)!r} ({err}); delete the folder and download again") from err

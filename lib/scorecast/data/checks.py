"""What every loader shares: finding the data folder and checking what it read.

Loaders never cast what they read: images must be stored as uint8 and labels as integers in range,
or the load fails with a ScorecastError naming the file, the dtype or range found and the fix
(:func:`check_images`, :func:`check_labels`). :func:`channels_first` gives every layout the
(n, C, H, W) order an :class:`~scorecast.data.dataset.ImageDataset` holds; :func:`format_ids`
shortens id lists in messages.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..validation import ScorecastError


def require_root(name: str, root, hint: str) -> Path:
    """The data folder of dataset ``name``: ``root``, else SCORECAST_DATA_ROOT; an error ending in
    ``hint`` (where to get the files) when neither is set, or the path is missing or a file."""
    root = root or os.environ.get("SCORECAST_DATA_ROOT")
    if root is None:
        raise ScorecastError(f"dataset {name!r} needs a data folder: set data.root (or SCORECAST_DATA_ROOT). {hint}")
    path = Path(root).expanduser()
    if not path.exists():
        raise ScorecastError(f"dataset {name!r}: data folder {str(path)!r} does not exist. {hint}")
    if not path.is_dir():
        raise ScorecastError(f"dataset {name!r}: data.root {str(path)!r} is a file, not a folder; set data.root (or "
                             f"SCORECAST_DATA_ROOT) to the folder that holds the data. {hint}")
    return path


def download_root(name: str, root) -> str:
    """The folder a download goes into: ``root``, else SCORECAST_DATA_ROOT; an error naming both when neither is set."""
    root = root or os.environ.get("SCORECAST_DATA_ROOT")
    if root is None:
        raise ScorecastError(f"dataset {name!r} has data.download: true but no folder to download into: set data.root "
                             "(test_data.root for a test set) or SCORECAST_DATA_ROOT")
    return str(Path(root).expanduser())


def check_images(source: str, images: np.ndarray) -> np.ndarray:
    """Refuse non-uint8 images read from ``source`` (named in the message): a cast would turn float
    images in [0, 1) into zeros and wrap wider integers modulo 256. images: (n, ...) any layout."""
    if images.dtype != np.uint8:
        raise ScorecastError(
            f"{source}: images have dtype {images.dtype}, but scorecast reads uint8 pixels in [0, 255] (a cast would turn "
            "floats in [0, 1) into zeros and wrap larger integers modulo 256); store them as uint8, e.g. "
            "np.round(np.clip(x, 0, 1) * 255).astype(np.uint8) for floats in [0, 1]"
        )
    if not images.shape[0]:
        raise ScorecastError(f"{source}: holds no images")
    return images


def check_labels(source: str, labels, n: int, num_classes: int | None = None, first_label: int = 0) -> np.ndarray:
    """Labels read from ``source`` as 0-based int64 (n,).

    labels: (n,) integer class labels in ``[first_label, first_label + num_classes)``, or any
    integers >= ``first_label`` when ``num_classes`` is None. Floats are refused (a cast would
    truncate them), as are a length other than ``n`` (the number of images) and out-of-range values.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ScorecastError(
            f"{source}: labels have dtype {labels.dtype} and shape {labels.shape}, but they must be a 1-D array of integer "
            "class indices (a cast would truncate floats); store them as int64"
        )
    if len(labels) != n:
        raise ScorecastError(f"{source}: {n} images but {len(labels)} labels; there must be one label per image")
    if not n:
        raise ScorecastError(f"{source}: holds no samples")
    last = None if num_classes is None else first_label + num_classes - 1
    if labels.min() < first_label or (last is not None and labels.max() > last):
        allowed = f"lie in [{first_label}, {last}]" if last is not None else f"be >= {first_label}"
        raise ScorecastError(f"{source}: labels range from {labels.min()} to {labels.max()}; they must {allowed}")
    return labels.astype(np.int64) - first_label


def channels_first(images: np.ndarray) -> np.ndarray:
    """(n, C, H, W) view of images stored (n, H, W, C) (C 1 or 3); channels-first input unchanged."""
    return images.transpose(0, 3, 1, 2) if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3) else images


def format_ids(values, shown: int = 8) -> str:
    """``values`` as a short list for messages: the first ``shown`` ids, then how many more."""
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    return str(values) if len(values) <= shown else f"{values[:shown]} and {len(values) - shown} more"

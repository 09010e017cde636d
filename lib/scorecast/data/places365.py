"""Places-365 in torchvision's small-image layout (256 px images).

Layout: ``categories_places365.txt`` (``<name> <id>`` lines, ids 0..364), the split's list file
(``places365_train_standard.txt`` for train, ``places365_val.txt`` for test: ``<image path>
<label>`` lines) and the images under ``data_256_standard/`` / ``val_256/``. Canonical order: the
list file's. Images are scaled to ``resize`` (default 80) px; the augmentation crops 64.
``download=True`` fetches the layout through torchvision (about 24 GB). For ``data.mmap`` the split
is decoded :data:`PLACES_PART` images at a time (:func:`stream_places365`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..validation import ScorecastError
from .checks import check_labels, download_root, require_root
from .folders import decode_images

PLACES_PART = 4096  # images decoded at a time when converting Places365 for data.mmap
_CATEGORIES = "categories_places365.txt"
_LIST_FILES = {"train": "places365_train_standard.txt", "test": "places365_val.txt"}


def load_places365(root, split, download, options):
    """(images (n, resize, resize, 3) uint8, labels (n,) int64, classes) of a Places-365 split."""
    paths, labels, classes = _places365_listing(root, split, download)
    return decode_images(paths, options.get("resize", 80)), labels, classes


def stream_places365(root, split, download, options):
    """(n, classes, parts (images (b, resize, resize, 3) uint8, labels (b,)) of b <= PLACES_PART
    images, decoded as they are iterated): the split in :func:`load_places365`'s order."""
    paths, labels, classes = _places365_listing(root, split, download)
    size, resize = PLACES_PART, options.get("resize", 80)
    parts = ((decode_images(paths[s : s + size], resize), labels[s : s + size]) for s in range(0, len(paths), size))
    return len(paths), classes, parts


def places365_sources(root: Path, split: str) -> list[Path]:
    """The files a split's listing is read from: the category file and the split's list file."""
    return [root / _CATEGORIES, root / _LIST_FILES[split]]


def _places365_listing(root, split, download) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths (n,), labels (n,) and classes of a Places365 split, in file-list order."""
    hint = "Put torchvision's Places365 small-image layout there, or set data.download: true (about 24 GB)."
    tv_split = {"train": "train-standard", "test": "val"}[split]
    if download:
        import torchvision

        root = download_root("places365", root)
        torchvision.datasets.Places365(root, split=tv_split, small=True, download=True)
    base = require_root("places365", root, hint)
    cat_file, list_file = places365_sources(base, split)
    for f in (list_file, cat_file):
        if not f.is_file():
            raise ScorecastError(f"dataset 'places365': {str(f)!r} not found. {hint}")
    categories = _name_number_lines(cat_file)
    if sorted(c for _, c in categories) != list(range(len(categories))):
        raise ScorecastError(f"dataset 'places365': the category ids in {str(cat_file)!r} must be 0..{len(categories) - 1}, each once")
    classes = [name for name, _ in sorted(categories, key=lambda row: row[1])]
    image_dir = base / {"train": "data_256_standard", "test": "val_256"}[split]
    rows = _name_number_lines(list_file)
    labels = check_labels(f"dataset 'places365': {str(list_file)!r}", np.array([c for _, c in rows], dtype=np.int64), len(rows), len(classes))
    return [image_dir / r.lstrip("/") for r, _ in rows], labels, classes


def _name_number_lines(path: Path) -> list[tuple[str, int]]:
    """The ``<name> <integer>`` lines of a Places365 list file, in file order (blank lines skipped)."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise ScorecastError(f"dataset 'places365': line {number} of {str(path)!r} is {line!r}; expected '<name> <integer>'")
        rows.append((fields[0], int(fields[1])))
    return rows

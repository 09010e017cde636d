"""Datasets that need no download: scikit-learn's digits and Debian's Fashion-MNIST.

``digits``: scikit-learn's bundled 8 x 8 digits (pixels 0..16 scaled to 0..255), split 80/20 by a
seeded stratified split (seed 0), each split in the original load_digits order. Needs nothing on
disk. ``fashion-mnist``: IDX files (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
``t10k-...`` for test) in file order; the data folder defaults to :data:`FASHION_MNIST_ROOT`, where
Debian's dataset-fashion-mnist package puts them.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..validation import ScorecastError
from .checks import check_labels, require_root


def load_digits(root, split, download, options):
    """(images (n, 1, 8, 8) uint8, labels (n,) int, classes "0".."9") of a digits split."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    bunch = datasets.load_digits()
    positions = np.arange(len(bunch.target))
    train_pos, test_pos = train_test_split(positions, test_size=0.2, random_state=0, stratify=bunch.target)
    keep = np.sort(train_pos if split == "train" else test_pos)
    images = np.round(bunch.images[keep] * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (n, 1, 8, 8)
    return images, bunch.target[keep], [str(c) for c in range(10)]


FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


def load_fashion_mnist(root, split, download, options):
    """(images (n, 1, 28, 28) uint8, labels (n,) int64, the 10 class names) of a Fashion-MNIST split."""
    base = require_root("fashion-mnist", root or FASHION_MNIST_ROOT, "Install Debian's dataset-fashion-mnist or point data.root at the IDX files.")
    prefix = "train" if split == "train" else "t10k"

    def find(kind: str) -> Path:
        for name in (f"{prefix}-{kind}-ubyte.gz", f"{prefix}-{kind}-ubyte"):
            if (base / name).is_file():
                return base / name
        raise ScorecastError(f"dataset 'fashion-mnist': {prefix}-{kind}-ubyte[.gz] not found in {str(base)!r}")

    image_file, label_file = find("images-idx3"), find("labels-idx1")
    images = _read_idx(image_file)
    if images.ndim != 3:
        raise ScorecastError(f"dataset 'fashion-mnist': {str(image_file)!r} holds an array of shape {images.shape}; expected (n, 28, 28)")
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    labels = check_labels(f"dataset 'fashion-mnist': {str(label_file)!r}", _read_idx(label_file), len(images), len(classes))
    return images[:, None], labels, classes


def _read_idx(path: Path) -> np.ndarray:
    """The unsigned-byte array an IDX file (gzipped when named .gz) holds, in its header's shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as err:
        raise ScorecastError(f"cannot read IDX file {str(path)!r} ({err}); the file is damaged or truncated: replace it with a fresh copy") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ScorecastError(f"{str(path)!r} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ScorecastError(f"IDX file {str(path)!r} is truncated: header says {shape}, found {data.size} bytes")
    return data.reshape(shape)

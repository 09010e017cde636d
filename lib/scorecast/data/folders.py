"""Image files in class folders (e.g. CIFAR-10's JPEG copy), and the decoder Places-365 shares.

Layout: ``root/<split>/<class>/<file>`` (any format PIL reads, converted to RGB). Classes are the
train split's class folders sorted by name (CIFAR-10's JPEG copy then gets CIFAR's canonical label
order), also for the test split, which may lack a class but never add one; samples by class, then
file name. Empty class folders are refused. ``resize`` scales every image to a common side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..validation import ScorecastError
from .checks import require_root


def load_imagefolder(root, split, download, options):
    """(images (n, H, W, 3) uint8, labels (n,) int64, classes) of an imagefolder split. Classes are
    the training split's class folders, so a test split missing a class keeps every label; a test
    class the training split lacks is an error."""
    root = require_root("imagefolder", root, "Point data.root at a folder holding train/<class>/*.jpg and test/<class>/*.jpg.")
    present = _class_folders(root / split)
    classes = present if split == "train" else _class_folders(root / "train")
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise ScorecastError(
            f"dataset 'imagefolder': class folders {unknown} of {str(root / split)!r} are not in the training split "
            f"{str(root / 'train')!r}; a model cannot predict a class it never saw: remove them or add training images"
        )
    paths, labels = [], []
    for cls in present:
        files = sorted(p for p in (root / split / cls).iterdir() if p.is_file())
        paths += files
        labels += [classes.index(cls)] * len(files)
    return decode_images(paths, options.get("resize")), np.asarray(labels, dtype=np.int64), classes


def _class_folders(base: Path) -> list[str]:
    """Sorted names of the class folders of an imagefolder split ``base``; empty ones are refused."""
    if not base.is_dir():
        raise ScorecastError(f"dataset 'imagefolder': split folder {str(base)!r} not found (expected root/{base.name}/<class>/<image>)")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise ScorecastError(f"dataset 'imagefolder': {str(base)!r} has no class folders")
    empty = [c for c in classes if not any(p.is_file() for p in (base / c).iterdir())]
    if empty:
        raise ScorecastError(f"dataset 'imagefolder': class folders {empty} in {str(base)!r} hold no images; add images or remove them")
    return classes


def decode_images(paths: list[Path], resize: int | None) -> np.ndarray:
    """Decode image files to (n, H, W, 3) uint8; ``resize`` scales the shorter side then centre-crops square."""
    from torchvision.transforms import functional as TF

    out = None
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if resize is not None:
                    img = TF.center_crop(TF.resize(img, resize), resize)
                arr = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as err:
            raise ScorecastError(f"corrupt or unreadable image file {str(path)!r} ({err}); replace or remove it") from err
        if out is None:
            out = np.empty((len(paths), *arr.shape), dtype=np.uint8)
        if arr.shape != out.shape[1:]:
            raise ScorecastError(
                f"image {str(path)!r} has size {arr.shape[:2]} but earlier images are {out.shape[1:3]}; "
                "set data.resize to a common side length"
            )
        out[i] = arr
    if out is None:
        raise ScorecastError("no images found")
    return out

"""Datasets: a registry by name, in-memory uint8 images, index-returning samples, batch augmentation.

Every dataset is an :class:`ImageDataset`: ``images`` (n, C, H, W) uint8 and ``labels`` (n,) int64
in a canonical, documented order, so sample ``i`` is always row ``i`` of every score file, dynamics
array and embedding. ``dataset[i]`` yields ``(image, label, i)`` with the test-time transform.
Training code augments whole batches with tensor ops (:func:`batches`), which on a 2-core CPU is
far faster than per-image PIL transforms.

Canonical orders (``load_dataset(name, split, root)``):

============== ============================================================================
digits         scikit-learn's bundled 8x8 digits; seeded stratified 80/20 split (seed 0);
               each split in the original load_digits order. Needs nothing on disk.
cifar10/100    torchvision's pickled batches (``cifar-10-batches-py`` / ``cifar-100-python``
               under ``root``), in file order (data_batch_1..5, test_batch / train, test);
               CIFAR-100 uses the fine labels. ``download=True`` fetches via torchvision.
imagefolder    ``root/<split>/<class>/<file>``; classes are the train split's class folders
               sorted by name (CIFAR-10's JPEG copy then gets CIFAR's canonical label order),
               also for the test split (which may lack a class, never add one); samples by
               class then file name. Empty class folders are refused.
places365      torchvision's Places365 layout (small 256px images; split train = train-standard,
               test = val), in file-list order; resized to 80 px (train crop 64, test centre 64).
imagenet64     downsampled ImageNet npz batches (``train_data_batch_1..10.npz``,
               ``val_data.npz``; ``data`` (n, 12288) CHW-flattened, ``labels`` 1-based ->
               0-based), in batch then row order.
npz            ``root/<split>.npz`` with arrays ``image`` (n, H, W, C) uint8 and ``label`` (n,)
               integer, e.g. the 1M synthetic CIFAR-100; row order.
fashion-mnist  IDX files (``train-images-idx3-ubyte[.gz]`` ...; Debian's package puts them in
               /usr/share/datasets/fashion-mnist), in file order.
============== ============================================================================

Datasets larger than RAM (ImageNet-64 is 15.7 GB as uint8, Places-365 more): ``load_dataset(...,
mmap=folder)`` converts the split once into ``folder/<name>-<split>/images.npy`` (n, C, H, W) in the
same canonical order, streaming imagenet64 and places365 one file or 4096 images at a time, and
then memory-maps it: batches read their rows from disk, and nothing holds the whole array.

Loaders never cast what they read: images must be stored as uint8 and labels as integers in
range, or the load fails with a ScorecastError naming the file, the dtype or range found and the fix.
"""

from __future__ import annotations

import gzip
import os
import hashlib
import json
import pickle
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .validation import ScorecastError, check_choice, check_positive_int

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Augmentation:
    """Paper transforms, applied to whole uint8 batches.

    Train: zero-pad by ``pad``, random ``crop`` x ``crop`` window, optional horizontal flip.
    Test: centre ``crop`` (images stored larger than ``crop``, e.g. Places at 80 px, crop 64).
    """

    crop: int
    pad: int = 0
    flip: bool = True


@dataclass
class ImageDataset(torch.utils.data.Dataset):
    """A labelled image set in canonical order.

    images: (n, C, H, W) uint8 tensor, in memory or (dataset ``npy``) over a copy-on-write memory
    map of a file, whose rows are read from disk when indexed; labels: (n,) int64 tensor in memory;
    mean/std: per-channel floats
    used for normalisation; augmentation: the paper's transform for this dataset.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: Augmentation
    source: str = ""
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ScorecastError(f"{self.name}: images must be (n, C, H, W) uint8, got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ScorecastError(f"{self.name}: {self.images.shape[0]} images but {self.labels.shape[0]} labels")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ScorecastError(f"{self.name}: labels must lie in [0, {len(self.classes)})")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        """(test-transformed float image (C, crop, crop), label, index)."""
        x = transform_batch(self, self.images[index : index + 1], train=False)[0]
        return x, int(self.labels[index]), index

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        """Side length the model sees (after cropping)."""
        return self.augmentation.crop

    def fingerprint(self) -> str:
        """Content hash of images and labels: part of every cache key that depends on the data."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=16)  # fed ~64 MiB at a time: same digest, no full copy of a memmap
            rows = max(1, (64 << 20) // max(1, int(np.prod(self.images.shape[1:]))))
            for start in range(0, len(self), rows):
                digest.update(np.ascontiguousarray(self.images[start : start + rows].numpy()))
            digest.update(self.labels.numpy().astype(np.int64).tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint


# ---------------------------------------------------------------------------------------------
# transforms and batching


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` (any shape, on the CPU) on ``device``. To a GPU it goes through pinned memory with
    ``non_blocking=True``, so the host queues the copy and carries on (a plain ``.to("cuda")``
    waits for every kernel already queued: a host sync per call). On the CPU: ``tensor`` itself."""
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def augmentation_draws(augmentation: Augmentation, height: int, width: int, batch: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The random part of the train transform for ``batch`` images of ``height`` x ``width``, drawn
    on the CPU from ``generator`` in a fixed order: crop offsets off_y, off_x (B,) int64 into the
    padded image, then horizontal flips (B,) bool (None when ``augmentation.flip`` is off)."""
    max_y, max_x = height + 2 * augmentation.pad - augmentation.crop, width + 2 * augmentation.pad - augmentation.crop
    off_y = torch.randint(0, max_y + 1, (batch,), generator=generator)
    off_x = torch.randint(0, max_x + 1, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5 if augmentation.flip else None
    return off_y, off_x, flip


def transform_batch(dataset: ImageDataset, images: torch.Tensor, train: bool, generator: torch.Generator | None = None,
                    draws: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None) -> torch.Tensor:
    """Augment (train) or centre-crop (test) and normalise a uint8 batch, all with tensor ops on
    the batch's device (the few random numbers are drawn on the CPU and copied without a host sync).

    images: (B, C, H, W) uint8 on any device -> (B, C, crop, crop) float32 on the same device.
    ``generator`` (CPU) drives the random crops and flips so runs are reproducible; ``draws``
    (from :func:`augmentation_draws`, each (B,)) replaces those draws (a shard of a larger batch).
    """
    aug, device = dataset.augmentation, images.device
    batch, _, height, width = images.shape
    if train:
        off_y, off_x, flip = draws or augmentation_draws(aug, height, width, batch, generator)
        padded = torch.nn.functional.pad(images, (aug.pad,) * 4) if aug.pad else images
        span = torch.arange(aug.crop, device=device)
        rows = (to_device(off_y, device)[:, None] + span)[:, None, :, None]  # (B, 1, crop, 1)
        cols = (to_device(off_x, device)[:, None] + span)[:, None, None, :]  # (B, 1, 1, crop)
        out = padded[torch.arange(batch, device=device)[:, None, None, None], torch.arange(images.shape[1], device=device)[None, :, None, None], rows, cols]
        if flip is not None:
            out = torch.where(to_device(flip, device)[:, None, None, None], out.flip(3), out)
    else:
        top, left = (height - aug.crop) // 2, (width - aug.crop) // 2
        out = images[:, :, top : top + aug.crop, left : left + aug.crop]
    mean = to_device(torch.tensor(dataset.mean).view(1, -1, 1, 1), device)
    std = to_device(torch.tensor(dataset.std).view(1, -1, 1, 1), device)
    return (out.float() / 255.0 - mean) / std


def batches(
    dataset: ImageDataset,
    indices: np.ndarray,
    batch_size: int,
    train: bool,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    shuffle: bool | None = None,
    shard: tuple[int, int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (x (B, C, crop, crop) float, y (B,) int64, idx (B,) int64) over ``indices``.

    train=True augments and (unless ``shuffle=False``) shuffles, both driven by ``generator``;
    train=False keeps the given order and uses the test transform. ``idx`` (CPU) are dataset
    positions, so per-sample records land in canonical order whatever the batch order. Images and
    labels reach ``device`` by copies that do not sync the host (:func:`to_device`); augmentation
    runs there. ``shard=(rank, world)``: each global batch of ``batch_size`` is cut into ``world``
    contiguous parts (sizes differing by at most one) and only part ``rank`` is yielded, with the
    same order and random draws as the whole batch (data-parallel training).
    """
    order = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    if train if shuffle is None else shuffle:
        order = order[torch.randperm(len(order), generator=generator)]
    height, width = dataset.images.shape[2:]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        draws = augmentation_draws(dataset.augmentation, height, width, len(idx), generator) if train else None
        if shard is not None:
            part = torch.tensor_split(torch.arange(len(idx)), shard[1])[shard[0]]
            idx, draws = idx[part], draws and tuple(None if d is None else d[part] for d in draws)
        x = to_device(dataset.images[idx], device)
        yield transform_batch(dataset, x, train, draws=draws), to_device(dataset.labels[idx], device), idx


def random_subset(n: int, size: int | float, seed: int) -> np.ndarray:
    """Uniform random subset of ``range(n)`` (the paper's m of n), sorted int64 (m,).

    ``size`` is a count (int) or a fraction in (0, 1] (float, rounded to a count).
    """
    if isinstance(size, float):
        if not 0.0 < size <= 1.0:
            raise ScorecastError(f"subset size {size!r} as a fraction must lie in (0, 1]")
        size = int(round(size * n))
    size = check_positive_int("subset size", size)
    if size > n:
        raise ScorecastError(f"subset size {size} is larger than the dataset ({n} samples); use at most {n}")
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# loaders: each returns (images (n, H, W, C) or (n, C, H, W) uint8 ndarray, labels, classes)

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _require_root(name: str, root, hint: str) -> Path:
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


def _check_images(source: str, images: np.ndarray) -> np.ndarray:
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


def _check_labels(source: str, labels, n: int, num_classes: int | None = None, first_label: int = 0) -> np.ndarray:
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


def _download_root(name: str, root) -> str:
    """The folder a download goes into: ``root``, else SCORECAST_DATA_ROOT; an error naming both when neither is set."""
    root = root or os.environ.get("SCORECAST_DATA_ROOT")
    if root is None:
        raise ScorecastError(f"dataset {name!r} has data.download: true but no folder to download into: set data.root "
                             "(test_data.root for a test set) or SCORECAST_DATA_ROOT")
    return str(Path(root).expanduser())


def _load_digits(root, split, download, options):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    positions = np.arange(len(bunch.target))
    train_pos, test_pos = train_test_split(positions, test_size=0.2, random_state=0, stratify=bunch.target)
    keep = np.sort(train_pos if split == "train" else test_pos)
    images = np.round(bunch.images[keep] * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (n, 1, 8, 8)
    return images, bunch.target[keep], [str(c) for c in range(10)]


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError) as err:
        raise ScorecastError(f"cannot read CIFAR batch file {str(path)!r} ({err}); delete the folder and download again") from err


def _entries(path: Path, *keys: str) -> list:
    """Entries ``keys`` of the CIFAR pickle at ``path``."""
    content = _unpickle(path)
    missing = [key for key in keys if not isinstance(content, dict) or key not in content]
    if missing:
        raise ScorecastError(f"CIFAR batch file {str(path)!r} has no {missing} entries; delete the folder and download again")
    return [content[key] for key in keys]


def _load_cifar(variant: str):
    folder, files, label_key, meta_file, names_key = {
        "cifar10": ("cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}, "labels", "batches.meta", "label_names"),
        "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}, "fine_labels", "meta", "fine_label_names"),
    }[variant]

    def load(root, split, download, options):
        hint = f"Put torchvision's {folder}/ there, or set data.download: true to fetch it (internet needed)."
        if download:
            import torchvision

            root = _download_root(variant, root)
            Path(root).mkdir(parents=True, exist_ok=True)
            getattr(torchvision.datasets, variant.upper())(str(root), train=split == "train", download=True)
        base = _require_root(variant, root, hint) / folder
        if not base.is_dir():
            raise ScorecastError(f"dataset {variant!r}: {str(base)!r} not found. {hint}")
        parts = {f: _entries(base / f, "data", label_key) for f in files[split]}
        classes = list(_entries(base / meta_file, names_key)[0])
        images, labels = [], []
        for f, (data, part_labels) in parts.items():
            source, data = f"CIFAR batch {str(base / f)!r}", np.asarray(data)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise ScorecastError(f"{source}: 'data' has shape {data.shape}, expected (n, 3072); delete the folder and download again")
            images.append(_check_images(source, data).reshape(-1, 3, 32, 32))
            labels.append(_check_labels(source, part_labels, len(data), len(classes)))
        return np.concatenate(images), np.concatenate(labels), classes

    return load


def _decode_images(paths: list[Path], resize: int | None) -> np.ndarray:
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


def _load_imagefolder(root, split, download, options):
    """Classes are the training split's class folders, so a test split missing a class keeps every
    label; a test class the training split lacks is an error."""
    root = _require_root("imagefolder", root, "Point data.root at a folder holding train/<class>/*.jpg and test/<class>/*.jpg.")
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
    return _decode_images(paths, options.get("resize")), np.asarray(labels, dtype=np.int64), classes


def _places365_listing(root, split, download) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths (n,), labels (n,) and classes of a Places365 split, in file-list order."""
    hint = "Put torchvision's Places365 small-image layout there, or set data.download: true (about 24 GB)."
    tv_split = {"train": "train-standard", "test": "val"}[split]
    if download:
        import torchvision

        root = _download_root("places365", root)
        torchvision.datasets.Places365(root, split=tv_split, small=True, download=True)
    base = _require_root("places365", root, hint)
    list_file = base / {"train": "places365_train_standard.txt", "test": "places365_val.txt"}[split]
    cat_file = base / "categories_places365.txt"
    for f in (list_file, cat_file):
        if not f.is_file():
            raise ScorecastError(f"dataset 'places365': {str(f)!r} not found. {hint}")
    categories = _name_number_lines(cat_file)
    if sorted(c for _, c in categories) != list(range(len(categories))):
        raise ScorecastError(f"dataset 'places365': the category ids in {str(cat_file)!r} must be 0..{len(categories) - 1}, each once")
    classes = [name for name, _ in sorted(categories, key=lambda row: row[1])]
    image_dir = base / {"train": "data_256_standard", "test": "val_256"}[split]
    rows = _name_number_lines(list_file)
    labels = _check_labels(f"dataset 'places365': {str(list_file)!r}", np.array([c for _, c in rows], dtype=np.int64), len(rows), len(classes))
    return [image_dir / r.lstrip("/") for r, _ in rows], labels, classes


def _load_places365(root, split, download, options):
    paths, labels, classes = _places365_listing(root, split, download)
    return _decode_images(paths, options.get("resize", 80)), labels, classes


PLACES_PART = 4096  # images decoded at a time when converting Places365 for data.mmap


def _stream_places365(root, split, download, options):
    paths, labels, classes = _places365_listing(root, split, download)
    size, resize = PLACES_PART, options.get("resize", 80)
    parts = ((_decode_images(paths[s : s + size], resize), labels[s : s + size]) for s in range(0, len(paths), size))
    return len(paths), classes, parts


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


def _imagenet64_files(root, split) -> list[Path]:
    base = _require_root("imagenet64", root, "Download the 64x64 downsampled ImageNet npz batches from image-net.org and put them there.")
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
    return _check_images(source, data).reshape(-1, 3, 64, 64), _check_labels(source, batch_labels, len(data), 1000, first_label=1)  # stored 1-based


def _load_imagenet64(root, split, download, options):
    images, labels = zip(*map(_read_imagenet64, _imagenet64_files(root, split)))
    return np.concatenate(images), np.concatenate(labels), [str(c) for c in range(1000)]


def _stream_imagenet64(root, split, download, options):
    files = _imagenet64_files(root, split)
    n = sum(len(_read_npz(f, ("labels",))[0]) for f in files)  # npz members load one at a time: labels only
    return n, [str(c) for c in range(1000)], map(_read_imagenet64, files)


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


def _load_npz(root, split, download, options):
    path = _require_root("npz", root, "Point data.root at a folder holding train.npz and test.npz (arrays image, label).") / f"{split}.npz"
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
    labels = _check_labels(source, labels, len(_check_images(source, images)), num_classes)
    if num_classes is None and split == "train":  # classes inferred as 0..max: a stray large label would add empty classes
        missing = np.setdiff1d(np.arange(labels.max() + 1), labels)
        if missing.size:
            raise ScorecastError(f"{source}: labels run from 0 to {labels.max()} but classes {_ids(missing)} have no sample, so the model "
                                 f"would get {labels.max() + 1} outputs; relabel the classes to 0..{labels.max() - missing.size} "
                                 "or set data.num_classes to declare the class count")
    return images, labels, [str(c) for c in range(num_classes or labels.max() + 1)]


def _ids(values, shown: int = 8) -> str:
    """``values`` as a short list for messages: the first ``shown`` ids, then how many more."""
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    return str(values) if len(values) <= shown else f"{values[:shown]} and {len(values) - shown} more"


def _read_idx(path: Path) -> np.ndarray:
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


FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


def _load_fashion_mnist(root, split, download, options):
    base = _require_root("fashion-mnist", root or FASHION_MNIST_ROOT, "Install Debian's dataset-fashion-mnist or point data.root at the IDX files.")
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
    labels = _check_labels(f"dataset 'fashion-mnist': {str(label_file)!r}", _read_idx(label_file), len(images), len(classes))
    return images[:, None], labels, classes


COMMON_OPTIONS = ("crop", "pad", "flip", "limit", "mmap")  # read by load_dataset itself, for every dataset


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its ``loader``, normalisation, default augmentation, the ``options`` its loader
    reads besides :data:`COMMON_OPTIONS` (any other given option is refused, never ignored),
    ``train_size`` (samples in the published training split, None when it depends on the files;
    parameter checks use it before loading) and ``sources(root, split)``: the files and folders
    a split is read from (their sizes and modification times guard a ``data.mmap`` conversion)."""

    loader: Callable
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: Augmentation
    options: tuple[str, ...] = ()
    train_size: int | None = None
    sources: Callable[[Path, str], list[Path]] = lambda root, split: [root]


REGISTRY: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(_load_digits, (0.3,), (0.38,), Augmentation(crop=8, pad=1, flip=False), (), 1437, lambda root, split: []),
    "cifar10": DatasetSpec(_load_cifar("cifar10"), CIFAR_MEAN, CIFAR_STD, Augmentation(crop=32, pad=4), ("root", "download"), 50000,
                           lambda root, split: [root / "cifar-10-batches-py"]),
    "cifar100": DatasetSpec(_load_cifar("cifar100"), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), Augmentation(crop=32, pad=4),
                            ("root", "download"), 50000, lambda root, split: [root / "cifar-100-python"]),
    "imagefolder": DatasetSpec(_load_imagefolder, CIFAR_MEAN, CIFAR_STD, Augmentation(crop=32, pad=4), ("root", "resize"),
                               sources=lambda root, split: sorted({root / "train", root / split})),
    "places365": DatasetSpec(_load_places365, IMAGENET_MEAN, IMAGENET_STD, Augmentation(crop=64, pad=0), ("root", "download", "resize"), 1803460,
                             lambda root, split: [root / "categories_places365.txt", root / {"train": "places365_train_standard.txt", "test": "places365_val.txt"}[split]]),
    "imagenet64": DatasetSpec(_load_imagenet64, IMAGENET_MEAN, IMAGENET_STD, Augmentation(crop=64, pad=4), ("root",), 1281167,
                              lambda root, split: _imagenet64_files(root, split)),
    "npz": DatasetSpec(_load_npz, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), Augmentation(crop=32, pad=4), ("root", "num_classes"),
                       sources=lambda root, split: [root / f"{split}.npz"]),
    "fashion-mnist": DatasetSpec(_load_fashion_mnist, (0.286,), (0.353,), Augmentation(crop=28, pad=2), ("root",), 60000),
}


def check_options(name: str, options, where: str = "data") -> None:
    """Raise unless dataset ``name`` reads every option in ``options`` (names, without ``name``);
    ``where`` names the block in the message (``data`` or ``test_data``)."""
    spec = REGISTRY[name]
    ignored = sorted(set(options) - set(spec.options) - set(COMMON_OPTIONS))
    if ignored:
        reads = sorted(spec.options) + list(COMMON_OPTIONS)
        raise ScorecastError(f"{where}.{ignored[0]} is not read by dataset {name!r}, so it would be ignored; remove it "
                             f"(dataset {name!r} reads: {reads})")


STREAMS: dict[str, Callable] = {"imagenet64": _stream_imagenet64, "places365": _stream_places365}
"""Loaders that can yield a split in parts: ``stream(root, split, download, options) -> (n, classes,
iterable of (images (b, ...) uint8, labels (b,)))``, so converting it never holds more than one part."""


def _channels_first(images: np.ndarray) -> np.ndarray:
    """(n, C, H, W) view of images stored (n, H, W, C) (C 1 or 3); channels-first input unchanged."""
    return images.transpose(0, 3, 1, 2) if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3) else images


def _memory_mapped(name: str, split: str, root, download: bool, options: dict, folder: Path):
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
    return f"{_ids(sorted(f for f in set(before) | set(now) if before.get(f) != now.get(f)), 3)} added, removed or modified"


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
            images = np.ascontiguousarray(_channels_first(images))
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


def _stratified_sample(labels: np.ndarray, limit: int) -> np.ndarray:
    """Sorted positions of a seeded (seed 0) class-stratified sample of ``limit`` of ``labels``."""
    from sklearn.model_selection import train_test_split

    limit = check_positive_int("data.limit", limit)
    classes = len(np.unique(labels))
    if not classes <= limit < len(labels):
        raise ScorecastError(f"data.limit={limit} must lie in [{classes}, {len(labels)}) (at least one sample per class, fewer than the split's samples) or be omitted")
    keep, _ = train_test_split(np.arange(len(labels)), train_size=limit, random_state=0, stratify=labels)
    return np.sort(keep)


def load_dataset(name: str, split: str = "train", root: str | Path | None = None, download: bool = False, **options) -> ImageDataset:
    """Load dataset ``name`` (a key of :data:`REGISTRY`) split ``train`` or ``test`` into memory.

    ``root`` is the data folder (not needed for digits; fashion-mnist defaults to Debian's path);
    ``download`` lets torchvision fetch cifar10/cifar100/places365 (off by default). Options:
    ``resize`` (imagefolder, places365: side length images are scaled to), ``crop``/``pad``/``flip``
    (override the augmentation, e.g. crop 64 for a 64-px imagefolder), ``num_classes`` (npz),
    ``limit`` (train split only: keep a class-stratified random sample of this many samples, drawn
    with seed 0, in canonical order; for CPU-sized runs), ``mmap`` (a folder: for datasets larger
    than RAM, the split is converted there once, in canonical order and part by part for
    imagenet64/places365, and then memory-mapped, so images are read from disk as batches index
    them; the images and labels equal the in-memory load's).
    """
    check_choice("data.name", name, REGISTRY)
    check_choice("split", split, SPLITS)
    check_options(name, [*options, *(["root"] if root is not None else []), *(["download"] if download else [])])
    spec = REGISTRY[name]
    aug_options = {k: options.pop(k) for k in ("crop", "pad", "flip") if k in options}
    limit, mmap = options.pop("limit", None), options.pop("mmap", None)
    if mmap is None:
        images, labels, classes = spec.loader(root, split, download, options)
    else:
        images, labels, classes = _memory_mapped(name, split, root, download, options, mmap)
    if limit is not None and split == "train":
        keep = _stratified_sample(np.asarray(labels), limit)
        images, labels = images[keep], np.asarray(labels)[keep]
    if images.ndim != 4:
        raise ScorecastError(f"dataset {name!r}: images must be 4-D, got shape {images.shape}")
    images = _channels_first(images)
    augmentation = Augmentation(**{**spec.augmentation.__dict__, **aug_options})
    if augmentation.crop > min(images.shape[2:]):
        raise ScorecastError(f"dataset {name!r}: crop {augmentation.crop} exceeds the image size {images.shape[2:]}; set data.crop")
    mean, std = spec.mean, spec.std
    if len(mean) != images.shape[1]:
        mean, std = (float(np.mean(mean)),) * images.shape[1], (float(np.mean(std)),) * images.shape[1]
    return ImageDataset(
        name=name,
        images=torch.from_numpy(images if isinstance(images, np.memmap) else np.require(images, requirements=["C", "W"])),
        labels=torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        classes=[str(c) for c in classes],
        mean=tuple(mean),
        std=tuple(std),
        augmentation=augmentation,
        source=str(root) if root is not None else "",
    )


def check_test_split(train: ImageDataset, test: ImageDataset, train_name: str, test_name: str) -> None:
    """Refuse a training/test pair whose evaluation would fail or mean nothing, before any training.

    ``train_name``/``test_name`` name the two in messages (e.g. ``experiment.data (npz)``). Refused:
    fewer than two classes in either set (top-1 of a one-class set is 1.0 whatever the model),
    other channels or another stored image size than the training images (a 40-px test set would be
    centre-cropped to a 32-px window of another scale; resize it when converting, or with
    ``test_data.resize`` where the loader reads it), another crop, test labels outside the
    training classes, and test classes without a training sample (top-1 silently capped)."""
    train_labels, test_labels = train.labels.numpy(), test.labels.numpy()
    for where, labels in ((train_name, train_labels), (test_name, test_labels)):
        present = np.unique(labels)
        if present.size < 2:
            raise ScorecastError(f"{where} holds a single class ({_ids(present)}): every prediction would be right, so top-1 would mean "
                                 "nothing; use a set with at least two classes")
    if test.in_channels != train.in_channels:
        raise ScorecastError(f"{test_name} has {test.in_channels}-channel images but {train_name} has {train.in_channels}-channel ones; "
                             "convert the test images to the training images' channels (grey = 1, RGB = 3)")
    if tuple(test.images.shape[2:]) != tuple(train.images.shape[2:]):
        raise ScorecastError(f"{test_name} stores {tuple(test.images.shape[2:])}-pixel images but {train_name} stores "
                             f"{tuple(train.images.shape[2:])}; the test transform would centre-crop another scale. Store the test "
                             "images at the training size (or set test_data.resize where its dataset reads it)")
    if test.augmentation.crop != train.augmentation.crop:
        raise ScorecastError(f"{test_name} is cropped to {test.augmentation.crop} px but {train_name} to {train.augmentation.crop} px; "
                             f"set test_data.crop: {train.augmentation.crop}")
    outside = np.unique(test_labels[test_labels >= train.num_classes])
    if outside.size:
        raise ScorecastError(f"{test_name} holds labels {_ids(outside)} but {train_name} has {train.num_classes} classes "
                             f"(0..{train.num_classes - 1}); test on a set with the training labels (e.g. set data.num_classes for npz)")
    unseen = np.setdiff1d(np.unique(test_labels), train_labels)
    if unseen.size:
        share = float(np.isin(test_labels, unseen).mean())
        raise ScorecastError(f"{test_name} holds classes {_ids(unseen)} that {train_name} has no sample of ({share:.1%} of the test "
                             "images, which the model can never get right); add training samples of those classes or drop them "
                             "from the test set")

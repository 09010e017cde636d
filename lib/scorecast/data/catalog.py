"""The datasets by name: :data:`REGISTRY` maps each to its loader, normalisation and augmentation.

A loader is ``loader(root, split, download, options) -> (images (n, H, W, C) or (n, C, H, W) uint8
ndarray, labels (n,) integer, class names)`` in the dataset's canonical order; the format modules
(:mod:`.builtin`, :mod:`.cifar`, :mod:`.folders`, :mod:`.places365`, :mod:`.npz`) hold them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..validation import ScorecastError
from .builtin import load_digits, load_fashion_mnist
from .cifar import cifar_loader, cifar_sources
from .dataset import Augmentation
from .folders import load_imagefolder
from .npz import imagenet64_files, load_imagenet64, load_npz
from .places365 import load_places365, places365_sources

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

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
    "digits": DatasetSpec(load_digits, (0.3,), (0.38,), Augmentation(crop=8, pad=1, flip=False), (), 1437, lambda root, split: []),
    "cifar10": DatasetSpec(cifar_loader("cifar10"), CIFAR_MEAN, CIFAR_STD, Augmentation(crop=32, pad=4), ("root", "download"), 50000,
                           cifar_sources("cifar10")),
    "cifar100": DatasetSpec(cifar_loader("cifar100"), CIFAR100_MEAN, CIFAR100_STD, Augmentation(crop=32, pad=4), ("root", "download"), 50000,
                            cifar_sources("cifar100")),
    "imagefolder": DatasetSpec(load_imagefolder, CIFAR_MEAN, CIFAR_STD, Augmentation(crop=32, pad=4), ("root", "resize"),
                               sources=lambda root, split: sorted({root / "train", root / split})),
    "places365": DatasetSpec(load_places365, IMAGENET_MEAN, IMAGENET_STD, Augmentation(crop=64, pad=0), ("root", "download", "resize"), 1803460,
                             places365_sources),
    "imagenet64": DatasetSpec(load_imagenet64, IMAGENET_MEAN, IMAGENET_STD, Augmentation(crop=64, pad=4), ("root",), 1281167,
                              imagenet64_files),
    "npz": DatasetSpec(load_npz, CIFAR100_MEAN, CIFAR100_STD, Augmentation(crop=32, pad=4), ("root", "num_classes"),
                       sources=lambda root, split: [root / f"{split}.npz"]),
    "fashion-mnist": DatasetSpec(load_fashion_mnist, (0.286,), (0.353,), Augmentation(crop=28, pad=2), ("root",), 60000),
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

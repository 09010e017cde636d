"""Loading a split by name (:func:`load_dataset`) and checking a training/test pair (:func:`check_test_split`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..validation import ScorecastError, check_choice, check_positive_int
from .catalog import REGISTRY, check_options
from .checks import channels_first, format_ids
from .dataset import Augmentation, ImageDataset
from .memory_map import memory_mapped

SPLITS = ("train", "test")


def load_dataset(name: str, split: str = "train", root: str | Path | None = None, download: bool = False, **options) -> ImageDataset:
    """Dataset ``name`` (a key of :data:`REGISTRY`), split ``train`` or ``test``, as an
    :class:`ImageDataset` (images (n, C, H, W) uint8, labels (n,) int64) in canonical order.

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
        images, labels, classes = memory_mapped(name, split, root, download, options, mmap)
    if limit is not None and split == "train":
        keep = _stratified_sample(np.asarray(labels), limit)
        images, labels = images[keep], np.asarray(labels)[keep]
    if images.ndim != 4:
        raise ScorecastError(f"dataset {name!r}: images must be 4-D, got shape {images.shape}")
    images = channels_first(images)
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


def _stratified_sample(labels: np.ndarray, limit: int) -> np.ndarray:
    """Sorted positions of a seeded (seed 0) class-stratified sample of ``limit`` of ``labels``."""
    from sklearn.model_selection import train_test_split

    limit = check_positive_int("data.limit", limit)
    classes = len(np.unique(labels))
    if not classes <= limit < len(labels):
        raise ScorecastError(f"data.limit={limit} must lie in [{classes}, {len(labels)}) (at least one sample per class, fewer than the split's samples) or be omitted")
    keep, _ = train_test_split(np.arange(len(labels)), train_size=limit, random_state=0, stratify=labels)
    return np.sort(keep)


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
            raise ScorecastError(f"{where} holds a single class ({format_ids(present)}): every prediction would be right, so top-1 would mean "
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
        raise ScorecastError(f"{test_name} holds labels {format_ids(outside)} but {train_name} has {train.num_classes} classes "
                             f"(0..{train.num_classes - 1}); test on a set with the training labels (e.g. set data.num_classes for npz)")
    unseen = np.setdiff1d(np.unique(test_labels), train_labels)
    if unseen.size:
        share = float(np.isin(test_labels, unseen).mean())
        raise ScorecastError(f"{test_name} holds classes {format_ids(unseen)} that {train_name} has no sample of ({share:.1%} of the test "
                             "images, which the model can never get right); add training samples of those classes or drop them "
                             "from the test set")

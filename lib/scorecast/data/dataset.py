"""The dataset every loader produces, and how training reads it: transforms, batches, subsets.

An :class:`ImageDataset` holds ``images`` (n, C, H, W) uint8 and ``labels`` (n,) int64 in a
canonical, documented order, so sample ``i`` is always row ``i`` of every score file, dynamics
array and embedding. ``dataset[i]`` yields ``(image, label, i)`` with the test-time transform.
Training code augments whole batches with tensor ops (:func:`batches`, :func:`transform_batch`),
which on a 2-core CPU is far faster than per-image PIL transforms.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from ..validation import ScorecastError, check_positive_int


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

    images: (n, C, H, W) uint8 tensor, in memory or (``load_dataset(..., mmap=folder)``) over a
    copy-on-write memory map of a file, whose rows are read from disk when indexed; labels: (n,)
    int64 tensor in memory; classes: the n_classes class names; mean/std: per-channel floats used
    for normalisation; augmentation: the paper's transform for this dataset; source: the data folder
    it was read from ("" for none).
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
        """Number of classes (the model's outputs)."""
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        """Channels C of the images (1 grey, 3 RGB)."""
        return self.images.shape[1]


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

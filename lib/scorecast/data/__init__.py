"""Datasets: a registry by name, in-memory uint8 images, index-returning samples, batch augmentation.

Every dataset is an :class:`ImageDataset`: ``images`` (n, C, H, W) uint8 and ``labels`` (n,) int64
in a canonical, documented order, so sample ``i`` is always row ``i`` of every score file, dynamics
array and embedding. Training code augments whole batches with tensor ops (:func:`batches`).

Canonical orders (``load_dataset(name, split, root)``), each format in its own module:

============== ============================================================================
digits         scikit-learn's bundled 8x8 digits; seeded stratified 80/20 split (seed 0);
               each split in the original load_digits order. Needs nothing on disk.
               (:mod:`.builtin`)
cifar10/100    torchvision's pickled batches (``cifar-10-batches-py`` / ``cifar-100-python``
               under ``root``), in file order (data_batch_1..5, test_batch / train, test);
               CIFAR-100 uses the fine labels. ``download=True`` fetches via torchvision.
               (:mod:`.cifar`)
imagefolder    ``root/<split>/<class>/<file>``; classes are the train split's class folders
               sorted by name (CIFAR-10's JPEG copy then gets CIFAR's canonical label order),
               also for the test split (which may lack a class, never add one); samples by
               class then file name. Empty class folders are refused. (:mod:`.folders`)
places365      torchvision's Places365 layout (small 256px images; split train = train-standard,
               test = val), in file-list order; resized to 80 px (train crop 64, test centre 64).
               (:mod:`.places365`)
imagenet64     downsampled ImageNet npz batches (``train_data_batch_1..10.npz``,
               ``val_data.npz``; ``data`` (n, 12288) CHW-flattened, ``labels`` 1-based ->
               0-based), in batch then row order. (:mod:`.npz`)
npz            ``root/<split>.npz`` with arrays ``image`` (n, H, W, C) uint8 and ``label`` (n,)
               integer, e.g. the 1M synthetic CIFAR-100; row order. (:mod:`.npz`)
fashion-mnist  IDX files (``train-images-idx3-ubyte[.gz]`` ...; Debian's package puts them in
               /usr/share/datasets/fashion-mnist), in file order. (:mod:`.builtin`)
============== ============================================================================

The modules, in reading order: :mod:`.dataset` (the dataset class, transforms, batches, subsets),
:mod:`.checks` (what every loader checks of what it read), the format modules above,
:mod:`.catalog` (:data:`REGISTRY`: each name's loader, normalisation and augmentation),
:mod:`.memory_map` (splits larger than RAM, converted once and memory-mapped: ``mmap=folder``) and
:mod:`.load` (:func:`load_dataset`, :func:`check_test_split`). This package's names are the API.

Loaders never cast what they read: images must be stored as uint8 and labels as integers in
range, or the load fails with a ScorecastError naming the file, the dtype or range found and the fix.
"""

from .builtin import FASHION_MNIST_ROOT
from .catalog import (CIFAR100_MEAN, CIFAR100_STD, CIFAR_MEAN, CIFAR_STD, COMMON_OPTIONS, IMAGENET_MEAN, IMAGENET_STD, REGISTRY,
                      DatasetSpec, check_options)
from .cifar import CIFAR10_CLASSES
from .dataset import Augmentation, ImageDataset, augmentation_draws, batches, random_subset, to_device, transform_batch
from .load import SPLITS, check_test_split, load_dataset
from .memory_map import STREAMS
from .places365 import PLACES_PART  # a copy: to change the part size, set scorecast.data.places365.PLACES_PART

__all__ = [
    "Augmentation", "ImageDataset", "augmentation_draws", "batches", "random_subset", "to_device", "transform_batch",
    "CIFAR10_CLASSES", "CIFAR_MEAN", "CIFAR_STD", "CIFAR100_MEAN", "CIFAR100_STD", "IMAGENET_MEAN", "IMAGENET_STD",
    "COMMON_OPTIONS", "DatasetSpec", "REGISTRY", "check_options", "FASHION_MNIST_ROOT", "PLACES_PART", "STREAMS",
    "SPLITS", "check_test_split", "load_dataset",
]

"""scorecast.data: every loader on small files written here in its exact on-disk format, dataset
items, random subsets and batch transforms. Nothing is downloaded."""

import gzip
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from scorecast import data
from scorecast.data import Augmentation, ImageDataset, load_dataset, random_subset, transform_batch
from scorecast.validation import ScorecastError


@pytest.fixture(autouse=True)
def _no_data_root_env(monkeypatch):
    monkeypatch.delenv("SCORECAST_DATA_ROOT", raising=False)


def _rng_images(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _check_item(ds, crop):
    x, label, index = ds[1]
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
    assert tuple(x.shape) == (ds.in_channels, crop, crop)
    assert label == int(ds.labels[1]) and index == 1


# --------------------------------------------------------------------------------- digits


def test_digits_split_sizes_range_and_determinism():
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert len(train) == 1437 and len(test) == 1797 - 1437
    assert train.images.dtype == torch.uint8 and tuple(train.images.shape[1:]) == (1, 8, 8)
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    assert train.num_classes == 10 and train.classes == [str(c) for c in range(10)]
    again = load_dataset("digits", "train")
    assert torch.equal(train.images, again.images) and torch.equal(train.labels, again.labels)
    assert train.fingerprint() == again.fingerprint() != test.fingerprint()
    # the split is a partition of load_digits, each part in the original order
    from sklearn.datasets import load_digits

    bunch = load_digits()
    full = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    rows = {full[i].tobytes(): i for i in range(len(full))}
    positions = [rows[img[0].numpy().tobytes()] for img in train.images[:50]]
    assert positions == sorted(positions)
    assert np.array_equal(bunch.target[positions], train.labels[:50].numpy())
    # stratified: every class keeps roughly 80 % of its samples
    counts = np.bincount(train.labels.numpy(), minlength=10) / np.bincount(bunch.target, minlength=10)
    assert np.all(np.abs(counts - 0.8) < 0.02)
    _check_item(train, 8)


def test_limit_is_a_stratified_subset_in_canonical_order():
    full = load_dataset("digits", "train")
    small = load_dataset("digits", "train", limit=100)
    assert len(small) == 100
    again = load_dataset("digits", "train", limit=100)
    assert torch.equal(small.images, again.images) and torch.equal(small.labels, again.labels)
    # every kept row is a row of the full split, in the same (canonical) order
    rows = {}
    for i in range(len(full)):
        rows.setdefault((full.images[i].numpy().tobytes(), int(full.labels[i])), i)
    positions = [rows[(small.images[i].numpy().tobytes(), int(small.labels[i]))] for i in range(100)]
    assert positions == sorted(positions) and len(set(positions)) == 100
    counts = np.bincount(small.labels.numpy(), minlength=10)
    assert counts.min() >= 9 and counts.max() <= 11  # stratified: ~10 per class
    assert len(load_dataset("digits", "test", limit=100)) == 360  # the test split is never limited
    for bad in (len(full), len(full) + 1, 0):
        with pytest.raises(ScorecastError, match="limit"):
            load_dataset("digits", "train", limit=bad)


def test_limit_below_the_number_of_classes_names_the_key():
    # a stratified sample needs one sample per class; the message must name data.limit, not be
    # scikit-learn's bare "train_size = 5 should be greater or equal to the number of classes"
    with pytest.raises(ScorecastError, match="limit"):
        load_dataset("digits", "train", limit=5)


# --------------------------------------------------------------------------------- cifar


def _pickle(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def test_cifar10_batches(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    sizes = [3, 2, 4, 1, 2]
    all_imgs, all_labels = [], []
    for i, size in enumerate(sizes, start=1):
        imgs = _rng_images(i, (size, 3072))
        labels = [(i + j) % 10 for j in range(size)]
        _pickle(base / f"data_batch_{i}", {"data": imgs, "labels": labels, "batch_label": f"b{i}"})
        all_imgs.append(imgs)
        all_labels += labels
    test_imgs = _rng_images(99, (5, 3072))
    _pickle(base / "test_batch", {"data": test_imgs, "labels": [9, 8, 7, 6, 5]})
    _pickle(base / "batches.meta", {"label_names": data.CIFAR10_CLASSES, "num_cases_per_batch": 3})

    train = load_dataset("cifar10", "train", root=tmp_path)
    assert len(train) == sum(sizes)
    assert tuple(train.images.shape) == (sum(sizes), 3, 32, 32)
    expected = np.concatenate(all_imgs).reshape(-1, 3, 32, 32)
    assert np.array_equal(train.images.numpy(), expected)
    # row 3072-layout: the first 1024 bytes are the red plane, row-major
    assert train.images[0, 1, 2, 5] == all_imgs[0][0, 1024 + 2 * 32 + 5]
    assert train.labels.tolist() == all_labels
    assert train.classes == data.CIFAR10_CLASSES
    test = load_dataset("cifar10", "test", root=str(tmp_path))
    assert test.labels.tolist() == [9, 8, 7, 6, 5] and np.array_equal(test.images.numpy().reshape(5, -1), test_imgs)
    _check_item(train, 32)


def test_cifar100_fine_labels(tmp_path):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    names = [f"class{c:03d}" for c in range(100)]
    imgs = _rng_images(1, (4, 3072))
    _pickle(base / "train", {"data": imgs, "fine_labels": [0, 99, 50, 7], "coarse_labels": [0, 19, 10, 1]})
    _pickle(base / "test", {"data": imgs[:2], "fine_labels": [3, 4], "coarse_labels": [0, 0]})
    _pickle(base / "meta", {"fine_label_names": names, "coarse_label_names": [f"c{c}" for c in range(20)]})
    train = load_dataset("cifar100", "train", root=tmp_path)
    assert train.labels.tolist() == [0, 99, 50, 7]
    assert train.num_classes == 100 and train.classes == names
    assert np.array_equal(train.images.numpy().reshape(4, -1), imgs)
    assert load_dataset("cifar100", "test", root=tmp_path).labels.tolist() == [3, 4]


def test_cifar_missing_folder_and_bad_batch(tmp_path):
    with pytest.raises(ScorecastError, match="download"):
        load_dataset("cifar10", "train", root=tmp_path)  # root exists, cifar-10-batches-py does not
    with pytest.raises(ScorecastError, match="does not exist"):
        load_dataset("cifar100", "train", root=tmp_path / "nowhere")
    with pytest.raises(ScorecastError, match="data.root"):
        load_dataset("cifar10", "train", root=None)
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    (base / "train").write_bytes(b"not a pickle")
    with pytest.raises(ScorecastError, match="train"):
        load_dataset("cifar100", "train", root=tmp_path)


@pytest.mark.parametrize(
    "batch, match",
    [
        ({"data": _rng_images(0, (2, 3072)).astype(np.float32) / 255, "labels": [0, 1]}, "dtype float32.*uint8"),
        ({"data": _rng_images(0, (2, 3072)).astype(np.int64) * 3, "labels": [0, 1]}, "dtype int64.*modulo 256"),
        ({"data": _rng_images(0, (2, 3072)), "labels": [0.0, 1.5]}, "dtype float64.*integer"),
        ({"data": _rng_images(0, (2, 3072)), "labels": [0, 10]}, r"range from 0 to 10; they must lie in \[0, 9\]"),
        ({"data": _rng_images(0, (2, 32, 32, 3)), "labels": [0, 1]}, r"shape \(2, 32, 32, 3\), expected \(n, 3072\)"),
        ({"data": _rng_images(0, (2, 3072))}, r"no \['labels'\] entries"),
    ],
)
def test_cifar_bad_batch_contents_name_the_file(tmp_path, batch, match):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    _pickle(base / "test_batch", batch)
    _pickle(base / "batches.meta", {"label_names": data.CIFAR10_CLASSES})
    with pytest.raises(ScorecastError, match=match) as err:
        load_dataset("cifar10", "test", root=tmp_path)
    assert "test_batch" in str(err.value)


# --------------------------------------------------------------------------------- imagefolder


def _write_image(path, arr, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)


def test_imagefolder_order_labels_and_pixels(tmp_path):
    root = tmp_path / "imgs"
    # class folders created out of order; files named so that sorting matters
    written = {}
    seed = 0
    for cls, files in {"zebra": ["b.png", "a.png"], "ant": ["2.png", "10.png", "1.png"], "moth": ["x.png"]}.items():
        for name in files:
            seed += 1
            arr = _rng_images(seed, (8, 8, 3))
            _write_image(root / "train" / cls / name, arr)
            written[(cls, name)] = arr
    (root / "train" / "stray.txt").write_text("not a class folder")
    ds = load_dataset("imagefolder", "train", root=root, crop=8, pad=1)
    assert ds.classes == ["ant", "moth", "zebra"]
    order = [("ant", "1.png"), ("ant", "10.png"), ("ant", "2.png"), ("moth", "x.png"), ("zebra", "a.png"), ("zebra", "b.png")]
    assert ds.labels.tolist() == [0, 0, 0, 1, 2, 2]
    assert tuple(ds.images.shape) == (6, 3, 8, 8)
    for i, key in enumerate(order):  # PNG is lossless: channels-last file -> (3, H, W) exactly
        assert np.array_equal(ds.images[i].permute(1, 2, 0).numpy(), written[key])
    _check_item(ds, 8)
    with pytest.raises(ScorecastError, match="split folder"):
        load_dataset("imagefolder", "test", root=root, crop=8)


def test_imagefolder_jpeg_and_resize(tmp_path):
    root = tmp_path / "imgs"
    _write_image(root / "train" / "a" / "0.jpg", _rng_images(0, (40, 60, 3)))
    _write_image(root / "train" / "b" / "0.jpg", _rng_images(1, (30, 20, 3)))
    with pytest.raises(ScorecastError, match="resize"):  # mixed sizes without resize
        load_dataset("imagefolder", "train", root=root)
    ds = load_dataset("imagefolder", "train", root=root, resize=16, crop=12, pad=0)
    assert tuple(ds.images.shape) == (2, 3, 16, 16) and ds.labels.tolist() == [0, 1]
    _check_item(ds, 12)


@pytest.mark.parametrize("content", [b"garbage, not an image at all", "truncated-jpeg"])
def test_imagefolder_corrupt_file_names_it(tmp_path, content):
    root = tmp_path / "imgs"
    _write_image(root / "train" / "a" / "0.jpg", _rng_images(0, (32, 32, 3)))
    bad = root / "train" / "b" / "broken.jpg"
    _write_image(bad, _rng_images(1, (32, 32, 3)))
    if content == "truncated-jpeg":
        bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    else:
        bad.write_bytes(content)
    with pytest.raises(ScorecastError, match="broken.jpg"):
        load_dataset("imagefolder", "train", root=root)


def test_imagefolder_missing_root(tmp_path):
    with pytest.raises(ScorecastError, match="does not exist"):
        load_dataset("imagefolder", "train", root=tmp_path / "missing")
    (tmp_path / "train").mkdir()
    with pytest.raises(ScorecastError, match="no class folders"):
        load_dataset("imagefolder", "train", root=tmp_path)


def _imagefolder(root, split, counts):
    """Write ``counts[class]`` distinct 8x8 PNGs per class under root/split/class/."""
    for c, (cls, count) in enumerate(counts.items()):
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            _write_image(root / split / cls / f"{k}.png", _rng_images(10 * c + k, (8, 8, 3)))


def test_imagefolder_test_classes_come_from_the_training_split(tmp_path):
    # the test split lacks the middle class "b": "c" must keep label 2, not shift to 1
    _imagefolder(tmp_path, "train", {"a": 2, "b": 2, "c": 2})
    _imagefolder(tmp_path, "test", {"a": 1, "c": 2})
    test = load_dataset("imagefolder", "test", root=tmp_path, crop=8)
    assert test.classes == ["a", "b", "c"] and test.num_classes == 3
    assert test.labels.tolist() == [0, 2, 2]
    _imagefolder(tmp_path, "test", {"zebra": 1})
    with pytest.raises(ScorecastError, match=r"\['zebra'\].*not in the training split"):
        load_dataset("imagefolder", "test", root=tmp_path, crop=8)


@pytest.mark.parametrize("split", ["train", "test"])
def test_imagefolder_empty_class_folder_is_refused(tmp_path, split):
    _imagefolder(tmp_path, "train", {"a": 1, "b": 1})
    _imagefolder(tmp_path, "test", {"a": 1, "b": 1})
    (tmp_path / split / "b" / "0.png").unlink()
    with pytest.raises(ScorecastError, match=r"\['b'\].*hold no images"):
        load_dataset("imagefolder", split, root=tmp_path, crop=8)


# --------------------------------------------------------------------------------- places365


def test_places365_layout_resize_and_crop(tmp_path):
    (tmp_path / "categories_places365.txt").write_text("/b/beach 1\n/a/airfield 0\n/c/canyon 2\n")
    train_rows = [("/a/airfield/00000001.jpg", 0), ("/c/canyon/00000001.jpg", 2), ("/b/beach/00000002.jpg", 1)]
    for k, (rel, _) in enumerate(train_rows):
        _write_image(tmp_path / "data_256_standard" / rel.lstrip("/"), _rng_images(k, (100, 120, 3)))
    (tmp_path / "places365_train_standard.txt").write_text("".join(f"{p} {c}\n" for p, c in train_rows))
    _write_image(tmp_path / "val_256" / "Places365_val_00000001.jpg", _rng_images(7, (90, 90, 3)))
    (tmp_path / "places365_val.txt").write_text("Places365_val_00000001.jpg 2\n")

    train = load_dataset("places365", "train", root=tmp_path)
    assert train.classes == ["/a/airfield", "/b/beach", "/c/canyon"]  # ordered by category id
    assert train.labels.tolist() == [0, 2, 1]  # file-list order
    assert tuple(train.images.shape) == (3, 3, 80, 80)
    assert train.augmentation.crop == 64 and train.augmentation.pad == 0
    _check_item(train, 64)
    out = transform_batch(train, train.images, train=True, generator=torch.Generator().manual_seed(0))
    assert tuple(out.shape) == (3, 3, 64, 64)
    test = load_dataset("places365", "test", root=tmp_path)
    assert test.labels.tolist() == [2] and tuple(test.images.shape) == (1, 3, 80, 80)
    (tmp_path / "places365_val.txt").unlink()
    with pytest.raises(ScorecastError, match="places365_val.txt"):
        load_dataset("places365", "test", root=tmp_path)


@pytest.mark.parametrize(
    "file, content, match",
    [
        ("categories_places365.txt", "/a/airfield 0\n/b/beach\n", r"line 2 of .*categories_places365.txt"),
        ("categories_places365.txt", "/a/airfield 0\n/b/beach 2\n", r"category ids .* must be 0..1"),
        ("places365_val.txt", "x.jpg one\n", r"line 1 of .*places365_val.txt"),
        ("places365_val.txt", "x.jpg 2\n", r"places365_val.txt.*labels range from 2 to 2; they must lie in \[0, 1\]"),
        ("places365_val.txt", "\n", r"places365_val.txt.*no samples"),
    ],
)
def test_places365_bad_list_files_name_the_file(tmp_path, file, content, match):
    (tmp_path / "categories_places365.txt").write_text("/a/airfield 0\n/b/beach 1\n")
    _write_image(tmp_path / "val_256" / "x.jpg", _rng_images(0, (90, 90, 3)))
    (tmp_path / "places365_val.txt").write_text("x.jpg 1\n")
    assert load_dataset("places365", "test", root=tmp_path).labels.tolist() == [1]
    (tmp_path / file).write_text(content)
    with pytest.raises(ScorecastError, match=match):
        load_dataset("places365", "test", root=tmp_path)


# --------------------------------------------------------------------------------- imagenet64


def test_imagenet64_batches(tmp_path):
    sizes = [2, 1, 1, 3, 1, 1, 2, 1, 1, 2]
    expected_labels = []
    first = None
    for i, size in enumerate(sizes, start=1):
        flat = _rng_images(i, (size, 12288))
        labels = np.arange(size) + i  # 1-based on disk
        np.savez(tmp_path / f"train_data_batch_{i}.npz", data=flat, labels=labels, mean=np.zeros(12288))
        expected_labels += list(labels - 1)
        first = flat if first is None else first
    np.savez(tmp_path / "val_data.npz", data=_rng_images(0, (2, 12288)), labels=np.array([1, 1000]))
    train = load_dataset("imagenet64", "train", root=tmp_path)
    assert len(train) == sum(sizes) and train.labels.tolist() == expected_labels
    assert tuple(train.images.shape) == (sum(sizes), 3, 64, 64)
    # CHW flattening: channel 2, row 5, column 7 of the first image
    assert int(train.images[0, 2, 5, 7]) == int(first[0, 2 * 4096 + 5 * 64 + 7])
    assert train.num_classes == 1000
    _check_item(train, 64)
    assert load_dataset("imagenet64", "test", root=tmp_path).labels.tolist() == [0, 999]
    (tmp_path / "train_data_batch_10.npz").unlink()
    with pytest.raises(ScorecastError, match="train_data_batch_10"):
        load_dataset("imagenet64", "train", root=tmp_path)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"data": _rng_images(0, (2, 12288)).astype(np.float32) / 255}, "dtype float32.*uint8"),
        ({"labels": np.array([1.0, 2.0])}, "dtype float64.*integer"),
        ({"labels": np.array([0, 5])}, r"labels range from 0 to 5; they must lie in \[1, 1000\]"),  # label 0 in a 1-based file
        ({"labels": np.array([1, 1001])}, r"range from 1 to 1001"),
        ({"labels": np.array([1, 2, 3])}, "2 images but 3 labels"),
        ({"data": _rng_images(0, (2, 3, 64, 64))}, r"shape \(2, 3, 64, 64\), expected \(n, 12288\)"),
    ],
)
def test_imagenet64_bad_arrays_name_the_file(tmp_path, arrays, match):
    np.savez(tmp_path / "val_data.npz", **{"data": _rng_images(0, (2, 12288)), "labels": np.array([1, 2]), **arrays})
    with pytest.raises(ScorecastError, match=match) as err:
        load_dataset("imagenet64", "test", root=tmp_path)
    assert "val_data.npz" in str(err.value)


# --------------------------------------------------------------------------------- npz


def test_npz_channels_last_converted(tmp_path):
    image = _rng_images(3, (5, 32, 32, 3))
    np.savez(tmp_path / "train.npz", image=image, label=np.array([0, 1, 2, 1, 0]))
    ds = load_dataset("npz", "train", root=tmp_path)
    assert tuple(ds.images.shape) == (5, 3, 32, 32)
    assert np.array_equal(ds.images.numpy(), image.transpose(0, 3, 1, 2))
    assert ds.num_classes == 3
    assert load_dataset("npz", "train", root=tmp_path, num_classes=100).num_classes == 100
    _check_item(ds, 32)
    np.savez(tmp_path / "test.npz", images=image, labels=np.zeros(5))
    with pytest.raises(ScorecastError, match="lacks arrays"):
        load_dataset("npz", "test", root=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScorecastError, match="train.npz"):
        load_dataset("npz", "train", root=tmp_path / "empty")


@pytest.mark.parametrize(
    "image, label, match",
    [
        # a float image in [0, 1) used to become all zeros; int32 wrapped modulo 256
        (_rng_images(0, (3, 8, 8, 3)) / 256.0, [0, 1, 2], r"dtype float64.*uint8.*astype\(np.uint8\)"),
        (_rng_images(0, (3, 8, 8, 3)).astype(np.int32) + 256, [0, 1, 2], "dtype int32.*modulo 256"),
        (_rng_images(0, (3, 8, 8, 3)), [0.0, 1.7, 2.0], "dtype float64.*integer.*truncate"),  # 1.7 became 1
        (_rng_images(0, (3, 8, 8, 3)), [0, -1, 2], "range from -1 to 2"),
        (_rng_images(0, (3, 8, 8, 3)), [0, 1], "3 images but 2 labels"),
        (_rng_images(0, (3, 8, 8, 3)), [[0, 1, 2]], r"shape \(1, 3\).*1-D"),
        (_rng_images(0, (3, 8, 8)), [0, 1, 2], r"shape \(3, 8, 8\); expected \(n, H, W, C\)"),
        (_rng_images(0, (0, 8, 8, 3)), np.zeros(0, np.int64), "no images"),
        (np.array([None] * 3, dtype=object), [0, 1, 2], "cannot read npz file"),
    ],
)
def test_npz_bad_arrays_name_the_file_and_the_fix(tmp_path, image, label, match):
    np.savez(tmp_path / "train.npz", image=image, label=np.asarray(label))
    with pytest.raises(ScorecastError, match=match) as err:
        load_dataset("npz", "train", root=tmp_path)
    assert "train.npz" in str(err.value)


def test_npz_labels_beyond_num_classes_and_damaged_file(tmp_path):
    np.savez(tmp_path / "train.npz", image=_rng_images(0, (3, 8, 8, 3)), label=np.array([0, 1, 5]))
    with pytest.raises(ScorecastError, match=r"train.npz.*labels run from 0 to 5 but classes \[2, 3, 4\] have no sample.*set data.num_classes"):
        load_dataset("npz", "train", root=tmp_path, crop=8)  # inferred classes 0..5 would leave three without a sample
    assert load_dataset("npz", "train", root=tmp_path, crop=8, num_classes=6).num_classes == 6
    with pytest.raises(ScorecastError, match=r"train.npz.*range from 0 to 5; they must lie in \[0, 2\]"):
        load_dataset("npz", "train", root=tmp_path, crop=8, num_classes=3)
    (tmp_path / "train.npz").write_bytes(b"PK\x03\x04 cut off")
    with pytest.raises(ScorecastError, match="cannot read npz file .*train.npz"):
        load_dataset("npz", "train", root=tmp_path)


# --------------------------------------------------------------------------------- fashion-mnist


def _idx_bytes(array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def test_fashion_mnist_idx_files(tmp_path):
    images = _rng_images(5, (6, 28, 28))
    labels = np.array([9, 0, 3, 3, 1, 2], dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(images[:2]))  # uncompressed also read
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(labels[:2]))
    ds = load_dataset("fashion-mnist", "train", root=tmp_path)
    assert tuple(ds.images.shape) == (6, 1, 28, 28)
    assert np.array_equal(ds.images[:, 0].numpy(), images) and ds.labels.tolist() == labels.tolist()
    assert ds.classes[0] == "T-shirt/top" and ds.num_classes == 10
    _check_item(ds, 28)
    assert load_dataset("fashion-mnist", "test", root=tmp_path).labels.tolist() == [9, 0]


def test_fashion_mnist_truncated_and_bad_header(tmp_path):
    images = _rng_images(5, (6, 28, 28))
    raw = _idx_bytes(images)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(6)))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-100])  # data cut short
    with pytest.raises(ScorecastError, match="truncated"):
        load_dataset("fashion-mnist", "train", root=tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + raw[4:])  # float IDX
    with pytest.raises(ScorecastError, match="not an unsigned-byte IDX"):
        load_dataset("fashion-mnist", "train", root=tmp_path)


def test_fashion_mnist_truncated_gzip_is_a_clear_error(tmp_path):
    # An interrupted download leaves a cut-off .gz file: that must be a ScorecastError naming the
    # file, not a bare EOFError from the gzip module.
    compressed = gzip.compress(_idx_bytes(_rng_images(5, (6, 28, 28))))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(compressed[: len(compressed) // 2])
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros(6))))
    with pytest.raises(ScorecastError, match="train-images-idx3-ubyte.gz"):
        load_dataset("fashion-mnist", "train", root=tmp_path)


def test_fashion_mnist_missing(tmp_path):
    with pytest.raises(ScorecastError, match="does not exist"):
        load_dataset("fashion-mnist", "train", root=tmp_path / "absent")
    with pytest.raises(ScorecastError, match="train-images-idx3-ubyte"):
        load_dataset("fashion-mnist", "train", root=tmp_path)


def test_fashion_mnist_label_out_of_range_and_count_mismatch(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(_rng_images(5, (3, 28, 28))))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes([0, 10, 2]))
    with pytest.raises(ScorecastError, match=r"train-labels-idx1-ubyte.*range from 0 to 10; they must lie in \[0, 9\]"):
        load_dataset("fashion-mnist", "train", root=tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes([0, 1]))
    with pytest.raises(ScorecastError, match="train-labels-idx1-ubyte.*3 images but 2 labels"):
        load_dataset("fashion-mnist", "train", root=tmp_path)


# --------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "places365", "imagenet64", "npz", "imagefolder"])
def test_missing_folder_says_where_to_put_data(tmp_path, name):
    with pytest.raises(ScorecastError) as err:
        load_dataset(name, "train", root=tmp_path / "absent")
    message = str(err.value)
    assert "absent" in message
    assert any(word in message for word in ("download", "Download", "put them there", "Point data.root")), message


def test_data_root_from_environment(tmp_path, monkeypatch):
    np.savez(tmp_path / "train.npz", image=_rng_images(0, (2, 32, 32, 3)), label=np.array([0, 1]))
    monkeypatch.setenv("SCORECAST_DATA_ROOT", str(tmp_path))
    assert len(load_dataset("npz", "train")) == 2


def test_unknown_dataset_and_split():
    with pytest.raises(ScorecastError, match="cifar10") as err:
        load_dataset("mnist", "train")
    assert "digits" in str(err.value) and "mnist" in str(err.value)
    with pytest.raises(ScorecastError, match="split"):
        load_dataset("digits", "val")


def test_crop_larger_than_images(tmp_path):
    with pytest.raises(ScorecastError, match="crop"):
        load_dataset("digits", "train", crop=10)


# --------------------------------------------------------------------------------- subsets


def test_random_subset():
    a = random_subset(100, 30, seed=3)
    assert np.array_equal(a, random_subset(100, 30, seed=3))
    assert not np.array_equal(a, random_subset(100, 30, seed=4))
    assert a.dtype == np.int64 and len(a) == 30 and np.all(np.diff(a) > 0)
    assert a.min() >= 0 and a.max() < 100
    assert len(random_subset(100, 0.25, seed=0)) == 25
    assert len(random_subset(101, 0.5, seed=0)) == round(50.5)
    assert np.array_equal(random_subset(7, 1.0, seed=0), np.arange(7))
    assert len(random_subset(100, 1, seed=0)) == 1  # an int is a count, not a fraction
    with pytest.raises(ScorecastError, match="larger than the dataset"):
        random_subset(100, 101, seed=0)
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ScorecastError, match="fraction"):
            random_subset(100, bad, seed=0)
    for bad in (0, -3, 0.001):  # 0.001 of 100 rounds to 0 samples
        with pytest.raises(ScorecastError):
            random_subset(100, bad, seed=0)


# --------------------------------------------------------------------------------- transforms


def _toy_dataset(images, aug, mean=(0.0,), std=(1.0,)):
    n = images.shape[0]
    return ImageDataset("toy", images, torch.zeros(n, dtype=torch.int64), ["a"], mean, std, aug)


def test_transform_batch_train_is_a_crop_of_the_padded_image():
    images = torch.from_numpy(_rng_images(0, (16, 1, 6, 6)))
    ds = _toy_dataset(images, Augmentation(crop=6, pad=2, flip=False))
    out = transform_batch(ds, images, train=True, generator=torch.Generator().manual_seed(11))
    assert tuple(out.shape) == (16, 1, 6, 6) and out.dtype == torch.float32
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2)).float() / 255.0
    # by hand: the generator's first two draws are the row and column offsets of the batch
    gen = torch.Generator().manual_seed(11)
    off_y = torch.randint(0, 5, (16,), generator=gen)
    off_x = torch.randint(0, 5, (16,), generator=gen)
    for b in range(16):
        y, x = int(off_y[b]), int(off_x[b])
        assert torch.equal(out[b], padded[b, :, y : y + 6, x : x + 6])
    # and independently of draw order: each output is some window of its padded image; offsets vary
    found = set()
    for b in range(16):
        hits = [(y, x) for y in range(5) for x in range(5) if torch.equal(out[b], padded[b, :, y : y + 6, x : x + 6])]
        assert hits, f"sample {b} is not a crop of its padded image"
        found.add(hits[0])
    assert len(found) > 3
    # same generator seed -> same batch
    again = transform_batch(ds, images, train=True, generator=torch.Generator().manual_seed(11))
    assert torch.equal(out, again)


def test_transform_batch_flip_and_normalisation():
    images = torch.from_numpy(_rng_images(1, (64, 3, 4, 4)))
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    ds = _toy_dataset(images, Augmentation(crop=4, pad=0, flip=True), mean, std)
    out = transform_batch(ds, images, train=True, generator=torch.Generator().manual_seed(0))
    plain = (images.float() / 255.0 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    same = [torch.allclose(out[b], plain[b]) for b in range(64)]
    flipped = [torch.allclose(out[b], plain[b].flip(2)) for b in range(64)]
    assert all(s or f for s, f in zip(same, flipped))
    assert 10 < sum(flipped) < 54  # roughly half flipped
    noflip = _toy_dataset(images, Augmentation(crop=4, pad=0, flip=False), mean, std)
    assert torch.allclose(transform_batch(noflip, images, train=True), plain)


def test_transform_batch_test_is_centre_crop():
    images = torch.from_numpy(_rng_images(2, (3, 1, 10, 10)))
    ds = _toy_dataset(images, Augmentation(crop=6, pad=4, flip=True), (0.5,), (0.25,))
    out = transform_batch(ds, images, train=False)
    expected = (images[:, :, 2:8, 2:8].float() / 255.0 - 0.5) / 0.25
    assert torch.allclose(out, expected)
    # deterministic: a test transform never draws random numbers
    assert torch.equal(out, transform_batch(ds, images, train=False))
    x, label, index = ds[2]
    assert torch.allclose(x, expected[2]) and (label, index) == (0, 2)


def test_batches_cover_indices_once_with_dataset_positions():
    ds = load_dataset("digits", "test")
    indices = np.array([3, 50, 7, 100, 8])
    seen = []
    for x, y, idx in data.batches(ds, indices, batch_size=2, train=True, generator=torch.Generator().manual_seed(0)):
        assert tuple(x.shape[1:]) == (1, 8, 8)
        assert torch.equal(y, ds.labels[idx])
        seen += idx.tolist()
    assert sorted(seen) == sorted(indices.tolist())
    ordered = [i for _, _, idx in data.batches(ds, indices, 3, train=False) for i in idx.tolist()]
    assert ordered == indices.tolist()


def test_image_dataset_validates_shapes():
    with pytest.raises(ScorecastError, match="uint8"):
        ImageDataset("bad", torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), ["a"], (0.0,), (1.0,), Augmentation(4))
    with pytest.raises(ScorecastError, match="labels"):
        ImageDataset("bad", torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), ["a"], (0.0,), (1.0,), Augmentation(4))
    with pytest.raises(ScorecastError, match=r"\[0, 1\)"):
        ImageDataset("bad", torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ["a"], (0.0,), (1.0,), Augmentation(4))

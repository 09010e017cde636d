"""Audit of bad inputs to the data loaders, the artefact cache and score files (issue 12).

Each probe feeds one bad input (wrong dtype or shape, missing or empty files, corrupted manifests,
NaN scores, concurrent writers, ...) and its outcome is classified as

- clear: a ScorecastError naming the problem (and the file, where one is involved), or the
  fault handled correctly (a corrupted artefact recomputed, test labels kept on the training
  classes);
- unclear: any other exception (a raw numpy/pandas/OS traceback), or a ScorecastError that does
  not name the file;
- silent: accepted without error, with a wrong result.

Run it on any version of the library, e.g. the one before a change::

    git worktree add /tmp/before HEAD~3
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/before/lib .venv/bin/python benchmarks/audit_bad_inputs.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/audit_bad_inputs.py

Prints one line per probe, then the counts per module and in total. Needs no data and no network.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import pickle
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

os.environ.setdefault("SCORECAST_QUIET", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import scorecast  # noqa: E402
from scorecast.cache import MANIFEST, Cache  # noqa: E402
from scorecast.data import load_dataset  # noqa: E402
from scorecast.scorefile import read_scores, sidecar_path, write_scores  # noqa: E402
from scorecast.validation import ScorecastError  # noqa: E402

PROBES: list[tuple[str, str, str | None, Callable[[Path], str | None]]] = []


class Silent(Exception):
    """The bad input was accepted and gave a wrong result."""


def probe(module: str, name: str, mention: str | None = None):
    """Register a probe ``fn(tmp: Path)``. It returns None when the call it makes returned (the bad
    input was accepted: silent), a string when it checked that the fault was handled correctly
    (clear), or raises. ``mention``: text a clear ScorecastError must contain (usually the file)."""

    def register(fn):
        PROBES.append((module, name, mention, fn))
        return fn

    return register


def classify(fn, tmp: Path, mention: str | None) -> tuple[str, str]:
    try:
        handled = fn(tmp)
    except ScorecastError as err:
        message = str(err)
        if mention and mention not in message:
            return "unclear", f"ScorecastError without {mention!r}: {message}"
        return "clear", message
    except Silent as err:
        return "silent", str(err)
    except Exception as err:  # the point of the audit: any other exception is an unclear error
        return "unclear", f"{type(err).__name__}: {err}"
    if handled is None:
        return "silent", "accepted without an error"
    return "clear", handled


# --------------------------------------------------------------------------------- helpers


def rng_images(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def write_png(path: Path, seed: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng_images(seed, (size, size, 3))).save(path)


def imagefolder(root: Path, split: str, counts: dict[str, int]) -> None:
    for c, (cls, count) in enumerate(counts.items()):
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            write_png(root / split / cls / f"{k}.png", 10 * c + k)


def npz(tmp: Path, image, label, **options) -> None:
    np.savez(tmp / "train.npz", image=image, label=np.asarray(label))
    load_dataset("npz", "train", root=tmp, crop=8, **options)


def cifar(tmp: Path, batch) -> None:
    base = tmp / "cifar-10-batches-py"
    base.mkdir()
    with open(base / "test_batch", "wb") as fh:
        pickle.dump(batch, fh)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [str(c) for c in range(10)]}, fh)
    load_dataset("cifar10", "test", root=tmp)


def imagenet64(tmp: Path, **arrays) -> None:
    np.savez(tmp / "val_data.npz", **{"data": rng_images(0, (2, 12288)), "labels": np.array([1, 2]), **arrays})
    load_dataset("imagenet64", "test", root=tmp)


def places(tmp: Path, categories: str, val_list: str) -> None:
    (tmp / "categories_places365.txt").write_text(categories)
    write_png(tmp / "val_256" / "x.jpg", 0, 90)
    (tmp / "places365_val.txt").write_text(val_list)
    load_dataset("places365", "test", root=tmp)


def idx_bytes(array) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()


def fashion(tmp: Path, images: bytes, labels: bytes) -> None:
    (tmp / "train-images-idx3-ubyte").write_bytes(images)
    (tmp / "train-labels-idx1-ubyte").write_bytes(labels)
    load_dataset("fashion-mnist", "train", root=tmp)


# --------------------------------------------------------------------------------- data loaders

IMG = rng_images(0, (3, 8, 8, 3))

for label, image, labels, options in [
    ("float images in [0, 1)", IMG / 256.0, [0, 1, 2], {}),
    ("float32 images in [0, 255]", IMG.astype(np.float32), [0, 1, 2], {}),
    ("float16 images", IMG.astype(np.float16), [0, 1, 2], {}),
    ("int32 images above 255", IMG.astype(np.int32) + 256, [0, 1, 2], {}),
    ("negative int16 images", -IMG.astype(np.int16), [0, 1, 2], {}),
    ("bool images", IMG > 127, [0, 1, 2], {}),
    ("float labels 1.7", IMG, [0.0, 1.7, 2.0], {}),
    ("bool labels", IMG, [True, False, True], {}),
    ("negative labels", IMG, [0, -1, 2], {}),
    ("labels >= num_classes", IMG, [0, 1, 5], {"num_classes": 3}),
    ("fewer labels than images", IMG, [0, 1], {}),
    ("2-D labels", IMG, [[0, 1, 2]], {}),
    ("3-D image array", IMG[..., 0], [0, 1, 2], {}),
    ("no samples", IMG[:0], np.zeros(0, np.int64), {}),
    ("object image array", np.array([None] * 3, dtype=object), [0, 1, 2], {}),
]:
    probe("data", f"npz: {label}", "train.npz")(lambda tmp, i=image, l=labels, o=options: npz(tmp, i, l, **o))


@probe("data", "npz: file missing", "train.npz")
def _(tmp):
    load_dataset("npz", "train", root=tmp)


@probe("data", "npz: garbage bytes", "train.npz")
def _(tmp):
    (tmp / "train.npz").write_bytes(b"PK\x03\x04 cut off")
    load_dataset("npz", "train", root=tmp)


@probe("data", "npz: a single .npy array named train.npz", "train.npz")
def _(tmp):
    with open(tmp / "train.npz", "wb") as fh:
        np.save(fh, IMG)
    load_dataset("npz", "train", root=tmp)


@probe("data", "npz: array 'label' missing", "train.npz")
def _(tmp):
    np.savez(tmp / "train.npz", image=IMG)
    load_dataset("npz", "train", root=tmp)


@probe("data", "imagefolder: test split lacks a middle class")
def _(tmp):
    imagefolder(tmp, "train", {"a": 1, "b": 1, "c": 1})
    imagefolder(tmp, "test", {"a": 1, "c": 1})
    labels = load_dataset("imagefolder", "test", root=tmp, crop=8).labels.tolist()
    if labels != [0, 2]:
        raise Silent(f"test labels {labels}, expected [0, 2] (class 'c' shifted)")
    return "labels kept on the training classes"


@probe("data", "imagefolder: test class unknown to training", "zebra")
def _(tmp):
    imagefolder(tmp, "train", {"a": 1, "b": 1})
    imagefolder(tmp, "test", {"a": 1, "zebra": 1})
    load_dataset("imagefolder", "test", root=tmp, crop=8)


@probe("data", "imagefolder: empty class folder (train)", "'b'")
def _(tmp):
    imagefolder(tmp, "train", {"a": 1, "b": 0})
    load_dataset("imagefolder", "train", root=tmp, crop=8)


@probe("data", "imagefolder: empty class folder (test)", "'b'")
def _(tmp):
    imagefolder(tmp, "train", {"a": 1, "b": 1})
    imagefolder(tmp, "test", {"a": 1, "b": 0})
    load_dataset("imagefolder", "test", root=tmp, crop=8)


@probe("data", "imagefolder: a text file in a class folder", "notes.txt")
def _(tmp):
    imagefolder(tmp, "train", {"a": 1})
    (tmp / "train" / "a" / "notes.txt").write_text("not an image")
    load_dataset("imagefolder", "train", root=tmp, crop=8)


@probe("data", "imagefolder: no class folders", "train")
def _(tmp):
    (tmp / "train").mkdir()
    load_dataset("imagefolder", "train", root=tmp, crop=8)


@probe("data", "imagefolder: test split missing", "test")
def _(tmp):
    imagefolder(tmp, "train", {"a": 1})
    load_dataset("imagefolder", "test", root=tmp, crop=8)


@probe("data", "imagefolder: mixed image sizes without resize", "resize")
def _(tmp):
    write_png(tmp / "train" / "a" / "0.png", 0, 8)
    write_png(tmp / "train" / "b" / "0.png", 1, 12)
    load_dataset("imagefolder", "train", root=tmp, crop=8)


for label, batch in [
    ("float data", {"data": rng_images(0, (2, 3072)).astype(np.float32) / 255, "labels": [0, 1]}),
    ("int64 data above 255", {"data": rng_images(0, (2, 3072)).astype(np.int64) * 3, "labels": [0, 1]}),
    ("float labels", {"data": rng_images(0, (2, 3072)), "labels": [0.0, 1.5]}),
    ("label 10 of 10 classes", {"data": rng_images(0, (2, 3072)), "labels": [0, 10]}),
    ("more labels than images", {"data": rng_images(0, (2, 3072)), "labels": [0, 1, 2]}),
    ("data (n, 32, 32, 3)", {"data": rng_images(0, (2, 32, 32, 3)), "labels": [0, 1]}),
    ("no 'labels' entry", {"data": rng_images(0, (2, 3072))}),
    ("a list, not a dict", [1, 2, 3]),
]:
    probe("data", f"cifar10: {label}", "test_batch")(lambda tmp, b=batch: cifar(tmp, b))


@probe("data", "cifar10: not a pickle", "test_batch")
def _(tmp):
    (tmp / "cifar-10-batches-py").mkdir()
    (tmp / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    load_dataset("cifar10", "test", root=tmp)


for label, arrays in [
    ("label 0 in a 1-based file", {"labels": np.array([0, 5])}),
    ("label 1001", {"labels": np.array([1, 1001])}),
    ("float labels", {"labels": np.array([1.0, 2.5])}),
    ("float data", {"data": rng_images(0, (2, 12288)) / 255.0}),
    ("data (n, 3, 64, 64)", {"data": rng_images(0, (2, 3, 64, 64))}),
    ("data (n, 1000)", {"data": rng_images(0, (2, 1000))}),
    ("more labels than images", {"labels": np.array([1, 2, 3])}),
]:
    probe("data", f"imagenet64: {label}", "val_data.npz")(lambda tmp, a=arrays: imagenet64(tmp, **a))


@probe("data", "imagenet64: array 'labels' missing", "val_data.npz")
def _(tmp):
    np.savez(tmp / "val_data.npz", data=rng_images(0, (2, 12288)))
    load_dataset("imagenet64", "test", root=tmp)


CATEGORIES = "/a/airfield 0\n/b/beach 1\n"
for label, categories, val_list, mention in [
    ("list line without a label", CATEGORIES, "x.jpg\n", "places365_val.txt"),
    ("list label not a number", CATEGORIES, "x.jpg one\n", "places365_val.txt"),
    ("list label beyond the categories", CATEGORIES, "x.jpg 7\n", "places365_val.txt"),
    ("negative list label", CATEGORIES, "x.jpg -1\n", "places365_val.txt"),
    ("empty list", CATEGORIES, "\n", "places365_val.txt"),
    ("category line without an id", "/a/airfield 0\n/b/beach\n", "x.jpg 0\n", "categories_places365.txt"),
    ("category ids with a gap", "/a/airfield 0\n/b/beach 2\n", "x.jpg 0\n", "categories_places365.txt"),
    ("listed image missing", CATEGORIES, "y.jpg 0\n", "y.jpg"),
]:
    probe("data", f"places365: {label}", mention)(lambda tmp, c=categories, v=val_list: places(tmp, c, v))


IDX_IMAGES = idx_bytes(rng_images(0, (3, 28, 28)))
for label, images, labels, mention in [
    ("label 10 of 10 classes", IDX_IMAGES, idx_bytes([0, 10, 2]), "train-labels-idx1-ubyte"),
    ("fewer labels than images", IDX_IMAGES, idx_bytes([0, 1]), "train-labels-idx1-ubyte"),
    ("images file holds labels", idx_bytes([0, 1, 2]), idx_bytes([0, 1, 2]), "train-images-idx3-ubyte"),
    ("truncated images", IDX_IMAGES[:-100], idx_bytes([0, 1, 2]), "train-images-idx3-ubyte"),
    ("float IDX", b"\x00\x00\x0d\x03" + IDX_IMAGES[4:], idx_bytes([0, 1, 2]), "train-images-idx3-ubyte"),
    ("gzip bytes under the plain name", gzip.compress(IDX_IMAGES)[:40], idx_bytes([0, 1, 2]), "train-images-idx3-ubyte"),
]:
    probe("data", f"fashion-mnist: {label}", mention)(lambda tmp, i=images, l=labels: fashion(tmp, i, l))


# --------------------------------------------------------------------------------- cache

CONFIG = {"data": {"name": "digits", "fingerprint": "abc"}, "seed": 0}


def metric(value: float):
    """A compute function that stores ``value`` in a file and in the info dict."""

    def compute(folder):
        np.save(folder / "x.npy", np.full(5, value))
        return {"top1": value}

    return compute


def served(cache: Cache, expected: float) -> str:
    """'recomputed' if the next get recomputes (value 0.5) or serves ``expected``; Silent otherwise."""
    art = cache.get("retrain", "1", CONFIG, metric(0.5))
    value = float(np.load(art.file("x.npy"))[0])
    if art.info["top1"] != value or value not in (expected, 0.5):
        raise Silent(f"served top1 {art.info['top1']} with file value {value}; computed {expected}")
    return "recomputed" if not art.cached else "served the valid artefact"


def damage_manifest(edit):
    def run(tmp):
        cache = Cache(tmp)
        art = cache.get("retrain", "1", CONFIG, metric(0.46))
        edit(art.file(MANIFEST))
        return served(cache, 0.46)

    return run


def edit_json(change):
    def edit(path):
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))

    return edit


probe("cache", "manifest: top1 edited 0.46 -> 0.96")(damage_manifest(lambda p: p.write_text(p.read_text().replace("0.46", "0.96"))))
probe("cache", "manifest: not JSON")(damage_manifest(lambda p: p.write_text("{not json")))
probe("cache", "manifest: deleted (half-written)")(damage_manifest(lambda p: p.unlink()))
probe("cache", "manifest: 'config' removed")(damage_manifest(edit_json(lambda m: m.pop("config"))))
probe("cache", "manifest: 'info' removed")(damage_manifest(edit_json(lambda m: m.pop("info"))))
probe("cache", "manifest: 'files' a list")(damage_manifest(edit_json(lambda m: m.update(files=list(m["files"])))))
probe("cache", "manifest: 'files' emptied")(damage_manifest(edit_json(lambda m: m.update(files={}))))
probe("cache", "manifest: 'seconds' a string")(damage_manifest(edit_json(lambda m: m.update(seconds="fast"))))


@probe("cache", "manifest: 200 single-bit flips")
def _(tmp):
    cache = Cache(tmp)
    art = cache.get("retrain", "1", CONFIG, metric(0.46))
    original = art.file(MANIFEST).read_bytes()
    rng = np.random.default_rng(0)
    wrong = 0
    for _ in range(200):
        raw = bytearray(original)
        raw[rng.integers(len(raw))] ^= 1 << int(rng.integers(8))
        art.file(MANIFEST).write_bytes(bytes(raw))
        found = cache.load("retrain", "1", CONFIG)
        wrong += found is not None and (found.info != {"top1": 0.46} or found.config != CONFIG)
        art.file(MANIFEST).write_bytes(original)
    if wrong:
        raise Silent(f"{wrong} of 200 flips served changed values")
    return "no flip served a changed value"


@probe("cache", "data file: one byte flipped")
def _(tmp):
    cache = Cache(tmp)
    art = cache.get("retrain", "1", CONFIG, metric(0.46))
    raw = bytearray(art.file("x.npy").read_bytes())
    raw[-1] ^= 0xFF
    art.file("x.npy").write_bytes(bytes(raw))
    return served(cache, 0.46)


@probe("cache", "data file: deleted")
def _(tmp):
    cache = Cache(tmp)
    cache.get("retrain", "1", CONFIG, metric(0.46)).file("x.npy").unlink()
    return served(cache, 0.46)


@probe("cache", "stale .tmp-* folder of a killed run (7 h old)")
def _(tmp):
    cache = Cache(tmp)
    stale = tmp / "retrain" / ".tmp-killed-run"
    stale.mkdir(parents=True)
    (stale / "partial.npy").write_bytes(b"x" * 100)
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    cache.get("retrain", "1", CONFIG, metric(0.46))
    if stale.exists():
        raise Silent("the stale folder is still there after the next write")
    return "removed on the next write"


def machine_probe(change, undo):
    def run(tmp):
        cache = Cache(tmp)
        cache.get("retrain", "1", CONFIG, metric(0.46))
        change()
        try:
            art = cache.get("retrain", "1", CONFIG, metric(0.5))
        finally:
            undo()
        if art.cached:
            raise Silent("an artefact computed under other settings was served")
        return "a separate artefact"

    return run


THREADS = torch.get_num_threads()
probe("cache", "torch thread count changed")(machine_probe(lambda: torch.set_num_threads(THREADS + 1), lambda: torch.set_num_threads(THREADS)))
probe("cache", "ATEN_CPU_CAPABILITY changed")(
    machine_probe(lambda: os.environ.__setitem__("ATEN_CPU_CAPABILITY", "default"), lambda: os.environ.pop("ATEN_CPU_CAPABILITY", None))
)


def race_worker(root, keys, barrier, worker, results):
    cache, seen, errors = Cache(root), {}, Counter()
    for key in keys:
        barrier.wait()
        try:
            art = cache.get("retrain", "1", {"key": key}, metric(float(worker)))
            seen[key] = float(np.load(art.file("x.npy"))[0])
        except Exception as err:  # counted and reported by the parent
            errors[f"{type(err).__name__} {getattr(err, 'errno', '')}".strip()] += 1
    results.put((seen, errors))


def race(tmp: Path, corrupt_first: bool) -> str:
    """4 processes x 30 keys, started together per key; optionally every key starts corrupted."""
    keys = list(range(30))
    if corrupt_first:
        for key in keys:
            Cache(tmp).get("retrain", "1", {"key": key}, metric(-1.0)).file("x.npy").write_bytes(b"corrupted")
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=race_worker, args=(tmp, keys, barrier, w, results)) for w in range(4)]
    for process in workers:
        process.start()
    outcomes = [results.get(timeout=600) for _ in workers]
    for process in workers:
        process.join()
    errors = sum((e for _, e in outcomes), Counter())
    if errors:
        raise RuntimeError(f"{sum(errors.values())} errors in 120 gets: {dict(errors)}")
    disagree = sum(len({seen.get(key) for seen, _ in outcomes}) > 1 for key in keys)
    if disagree:
        raise Silent(f"processes read different values for {disagree} of 30 keys")
    return "120 gets, no error, one artefact per key"


probe("cache", "4 processes writing the same 30 keys")(lambda tmp: race(tmp, False))
probe("cache", "4 processes replacing the same 30 corrupted keys")(lambda tmp: race(tmp, True))


# --------------------------------------------------------------------------------- score files

LABELS = np.array([3, 0, 1, 1, 2])
SCORES = np.array([0.1, 0.3, 0.2, -4.0, 1.5])
IN_SUBSET = np.array([True, False, True, False, False])
SOURCE = np.array(["computed", "extrapolated", "computed", "extrapolated", "extrapolated"])


def score_file(tmp: Path) -> Path:
    path = tmp / "scores.csv"
    write_scores(path, SCORES, LABELS, IN_SUBSET, SOURCE, {"seed": 0})
    return path


def edit_cell(row: int, column: int, value: str):
    def run(tmp):
        path = score_file(tmp)
        lines = path.read_text().splitlines()
        fields = lines[row + 1].split(",")
        fields[column] = value
        lines[row + 1] = ",".join(fields)
        path.write_text("\n".join(lines) + "\n")
        read_scores(path)

    return run


def replace_file(content: bytes, sidecar: bool = False):
    def run(tmp):
        path = score_file(tmp)
        (sidecar_path(path) if sidecar else path).write_bytes(content)
        read_scores(path)

    return run


for label, row, column, value in [
    ("score NaN", 1, 2, "nan"),
    ("score inf", 4, 2, "inf"),
    ("score -inf", 0, 2, "-inf"),
    ("score empty", 0, 2, ""),
    ("score not a number", 0, 2, "abc"),
    ("source 'predicted'", 2, 4, "predicted"),
    ("source empty", 2, 4, ""),
    ("score edited", 3, 2, "-4.000001"),
    ("in_subset flipped", 1, 3, "True"),
    ("in_subset 'maybe'", 1, 3, "maybe"),
    ("source flipped", 0, 4, "extrapolated"),
    ("label edited", 0, 1, "4"),
]:
    probe("scorefile", f"read: {label}", "scores.csv")(edit_cell(row, column, value))


@probe("scorefile", "read: two scores swapped", "scores.csv")
def _(tmp):
    path = score_file(tmp)
    lines = path.read_text().splitlines()
    a, b = lines[1].split(","), lines[2].split(",")
    a[2], b[2] = b[2], a[2]
    lines[1], lines[2] = ",".join(a), ",".join(b)
    path.write_text("\n".join(lines) + "\n")
    read_scores(path)


probe("scorefile", "read: binary file", "scores.csv")(replace_file(b"\x89PNG\r\n\x1a\n\x00\x00binary"))
probe("scorefile", "read: empty file", "scores.csv")(replace_file(b""))
probe("scorefile", "read: ragged rows", "scores.csv")(replace_file(b"index,label\n0,3,0.1,True,computed,extra\n"))
probe("scorefile", "read: sidecar not JSON", "scores.csv")(replace_file(b"{not json", sidecar=True))
probe("scorefile", "read: sidecar a list", "scores.csv")(replace_file(b'["a"]', sidecar=True))
probe("scorefile", "read: sidecar not UTF-8", "scores.csv")(replace_file(b"\xff\xfe\x00", sidecar=True))
probe("scorefile", "read: sidecar without checksums", "scores.csv")(replace_file(b'{"n": 5, "columns": ["index", "label", "score", "in_subset", "source"]}', sidecar=True))


@probe("scorefile", "read: last row cut off", "scores.csv")
def _(tmp):
    path = score_file(tmp)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    read_scores(path)


@probe("scorefile", "read: sidecar missing", "scores.csv")
def _(tmp):
    path = score_file(tmp)
    sidecar_path(path).unlink()
    read_scores(path)


@probe("scorefile", "read: labels of another dataset", "scores.csv")
def _(tmp):
    read_scores(score_file(tmp), labels=LABELS[::-1])


for label, kwargs in [
    ("NaN score", {"scores": np.array([np.nan, 1, 2, 3, 4])}),
    ("source 'predicted'", {"source": "predicted"}),
    ("float labels", {"labels": LABELS + 0.5}),
    ("in_subset as ints", {"in_subset": IN_SUBSET.astype(int)}),
    ("config with an object", {"config": {"x": object()}}),
]:
    probe("scorefile", f"write: {label}")(
        lambda tmp, k=kwargs: write_scores(tmp / "s.csv", **{"scores": SCORES, "labels": LABELS, "in_subset": IN_SUBSET, "source": SOURCE, "config": {}, **k})
    )


# --------------------------------------------------------------------------------- issue 23: splits, options, parameter files


def split_pair(tmp: Path, train, test, **options) -> None:
    """A Pipeline over npz splits (images (n, H, W, C), labels); its construction checks the pair."""
    from scorecast.pipeline import Pipeline

    for split, (image, label) in (("train", train), ("test", test)):
        np.savez(tmp / f"{split}.npz", image=image, label=np.asarray(label))
    Pipeline({"data": {"name": "npz", "root": str(tmp), "crop": 8, "pad": 0, **options}}, tmp / "cache")


L20 = np.arange(20) % 4
for label, train, test, options in [
    ("28-px test set with a 32 crop", (rng_images(0, (20, 32, 32, 3)), L20), (rng_images(1, (8, 28, 28, 3)), np.arange(8) % 4), {"crop": 32}),
    ("40-px test images, 32-px training images", (rng_images(0, (20, 32, 32, 3)), L20), (rng_images(1, (8, 40, 40, 3)), np.arange(8) % 4), {"crop": 32}),
    ("grey train, RGB test", (rng_images(0, (20, 8, 8, 1)), L20), (rng_images(1, (8, 8, 8, 3)), np.arange(8) % 4), {}),
    ("test label the model cannot predict", (rng_images(0, (20, 8, 8, 3)), L20), (rng_images(1, (8, 8, 8, 3)), np.arange(8) % 5), {}),
    ("test class without a training sample", (rng_images(0, (21, 8, 8, 3)), np.array([0, 1, 3] * 7)), (rng_images(1, (8, 8, 8, 3)), np.arange(8) % 4), {"num_classes": 4}),
    ("single-class training set", (rng_images(0, (20, 8, 8, 3)), np.zeros(20, int)), (rng_images(1, (8, 8, 8, 3)), np.arange(8) % 2), {}),
    ("single-class test set", (rng_images(0, (20, 8, 8, 3)), L20), (rng_images(1, (8, 8, 8, 3)), np.zeros(8, int)), {}),
    ("labels 0..9 plus one 99", (rng_images(0, (20, 8, 8, 3)), np.append(np.arange(19) % 10, 99)), (rng_images(1, (8, 8, 8, 3)), np.arange(8)), {}),
    ("negative test labels", (rng_images(0, (20, 8, 8, 3)), L20), (rng_images(1, (8, 8, 8, 3)), -np.ones(8, int)), {}),
    ("float test labels", (rng_images(0, (20, 8, 8, 3)), L20), (rng_images(1, (8, 8, 8, 3)), np.arange(8) % 4 + 0.5), {}),
    ("empty test split", (rng_images(0, (20, 8, 8, 3)), L20), (rng_images(1, (0, 8, 8, 3)), np.zeros(0, int)), {}),
    ("RGBA arrays", (rng_images(0, (20, 32, 32, 4)), L20), (rng_images(1, (8, 32, 32, 4)), np.arange(8) % 4), {"crop": 32}),
]:
    probe("splits", f"pipeline: {label}")(lambda tmp, a=train, b=test, o=options: split_pair(tmp, a, b, **o))


@probe("splits", "data.mmap after train.npz was replaced", "npz-train")
def _(tmp):
    np.savez(tmp / "train.npz", image=rng_images(0, (6, 8, 8, 3)), label=np.arange(6) % 2)
    before = load_dataset("npz", "train", root=tmp, crop=8, mmap=tmp / "m").fingerprint()
    np.savez(tmp / "train.npz", image=rng_images(1, (6, 8, 8, 3)), label=np.arange(6) % 2)
    after = load_dataset("npz", "train", root=tmp, crop=8, mmap=tmp / "m").fingerprint()
    if after == before:
        raise Silent("the memory map served the old pixels")
    return "reconverted"


@probe("splits", "data.mmap images.npy truncated", "npz-train")
def _(tmp):
    np.savez(tmp / "train.npz", image=rng_images(0, (6, 8, 8, 3)), label=np.arange(6) % 2)
    load_dataset("npz", "train", root=tmp, crop=8, mmap=tmp / "m")
    images = tmp / "m" / "npz-train" / "images.npy"
    images.write_bytes(images.read_bytes()[:-50])
    load_dataset("npz", "train", root=tmp, crop=8, mmap=tmp / "m")


@probe("splits", "data.root pointing at a file", "train.npz")
def _(tmp):
    np.savez(tmp / "train.npz", image=rng_images(0, (6, 8, 8, 3)), label=np.arange(6) % 2)
    load_dataset("npz", "train", root=tmp / "train.npz")


@probe("splits", "fashion-mnist: corrupt .gz", "train-images-idx3-ubyte.gz")
def _(tmp):
    raw = bytearray(gzip.compress(IDX_IMAGES))
    raw[20:40] = b"\xff" * 20
    (tmp / "train-images-idx3-ubyte.gz").write_bytes(bytes(raw))
    (tmp / "train-labels-idx1-ubyte").write_bytes(idx_bytes([0, 1, 2]))
    load_dataset("fashion-mnist", "train", root=tmp)


@probe("splits", "cache root is a file", "file")
def _(tmp):
    (tmp / "file").write_text("x")
    Cache(tmp / "file").get("retrain", "1", CONFIG, metric(0.5))


def notebook_params(values: dict, notebook: str | None = None):
    """Probe: the parameter file ``values`` (a mapping or raw YAML text) checked as run_all.sh
    does (against ``notebook`` when given) or as a notebook's own check."""

    def run(tmp):
        from scorecast.params import check_file, load_params

        path = tmp / "p.yaml"
        path.write_text(values if isinstance(values, str) else json.dumps(values))
        (check_file(Path("notebooks") / f"{notebook}.ipynb", path) if notebook else load_params(path))

    return run


for label, values, notebook, mention in [
    ("DU window 30 > 20 recorded epochs", {"scorers": [{"name": "du", "window": 30}]}, None, "window"),
    ("TDDS window 12 > 10-epoch trajectory", {"scorers": [{"name": "tdds", "window": 12}]}, None, "window"),
    ("knn k 300 > smallest digits subset 287", {"methods": [{"name": "knn", "k": 300}], "fractions": [0.2]}, None, "k=300"),
    ("ks: [5000]", {"methods": [{"name": "knn", "k": "cv", "ks": [5000]}], "fractions": [0.2]}, None, "ks"),
    ("rate 0.9999", {"rates": [0.9999]}, None, "0.9999"),
    ("lr: .inf", "experiment: {scoring: {lr: .inf}}\n", None, "lr"),
    ("momentum 1.5", {"experiment": {"scoring": {"momentum": 1.5}}}, None, "momentum"),
    ("per-scorer scoring nesterov 'yes'", {"scorers": [{"name": "tdds", "scoring": {"nesterov": "yes"}}]}, None, "nesterov"),
    ("data.resize on digits", {"experiment": {"data": {"name": "digits", "resize": 16}}}, None, "resize"),
    ("data.num_classes on digits", {"experiment": {"data": {"name": "digits", "num_classes": 10}}}, None, "num_classes"),
    ("test_data.limit", {"experiment": {"test_data": {"name": "digits", "limit": 50}}}, None, "limit"),
    ("empty parameter file", "", None, "p.yaml"),
    ("comment-only parameter file", "# nothing\n", None, "p.yaml"),
    ("duplicate YAML key", "rates: [0.5]\nrates: [0.7]\n", None, "rates"),
    ("key the notebook does not define", {"windw": 5}, "quickstart", "windw"),
    ("quickstart with methods [gnn]", {"methods": [{"name": "gnn", "k": 10}]}, "quickstart", "knn"),
    ("unknown notebook name", {"seeds": [0]}, "quickstar", "quickstar"),
]:
    probe("params", label, mention)(notebook_params(values, notebook))


@probe("params", "empty experiment file", "exp.yaml")
def _(tmp):
    from scorecast.params import validate_experiment

    (tmp / "exp.yaml").write_text("")
    validate_experiment(str(tmp / "exp.yaml"))


# --------------------------------------------------------------------------------- run


def main() -> None:
    print(f"scorecast from {Path(scorecast.__file__).parent}; {len(PROBES)} probes")
    counts: dict[str, Counter] = {}
    for module, name, mention, fn in PROBES:
        with tempfile.TemporaryDirectory() as tmp:
            outcome, detail = classify(fn, Path(tmp), mention)
        counts.setdefault(module, Counter())[outcome] += 1
        print(f"{outcome:8s} {module:9s} {name}: {detail.splitlines()[0][:160] if detail else ''}")
    total = sum(counts.values(), Counter())
    print()
    for module, count in [*counts.items(), ("total", total)]:
        print(f"{module:9s} probes {sum(count.values()):3d}  clear {count['clear']:3d}  unclear {count['unclear']:3d}  silent {count['silent']:3d}")


if __name__ == "__main__":
    sys.exit(main())

"""Issue 23: bad inputs refused before any training, with a message naming the file or key and the fix."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from scorecast.data import load_dataset
from scorecast.params import PARAMETERS_CELL, check_file, load_params, validate_experiment, validate_notebook_params
from scorecast.pipeline import Pipeline
from scorecast.validation import ScorecastError


def _npz(folder, split, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{split}.npz", image=images, label=np.asarray(labels))


def _images(n, side=8, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, channels), dtype=np.uint8)


def _pipeline(tmp_path, train, test, **train_options):
    """A Pipeline over generated npz splits: train = (images, labels), test = (images, labels)."""
    _npz(tmp_path / "d", "train", *train)
    _npz(tmp_path / "d", "test", *test)
    return Pipeline({"data": {"name": "npz", "root": str(tmp_path / "d"), "crop": 8, "pad": 0, **train_options}}, tmp_path / "cache")


LABELS = np.arange(20) % 4


@pytest.mark.parametrize("train, test, message", [
    ((_images(20), LABELS), (_images(8, channels=1), np.arange(8) % 4), r"its test split has 1-channel images but .* 3-channel"),
    ((_images(20, channels=1), LABELS), (_images(8), np.arange(8) % 4), r"3-channel images but .* 1-channel"),
    ((_images(20), LABELS), (_images(8, side=10), np.arange(8) % 4), r"stores \(10, 10\)-pixel images but .* \(8, 8\); .*centre-crop"),
    ((_images(20), LABELS), (_images(8), np.arange(8) % 5), r"holds labels \[4\] but .* has 4 classes"),
    ((_images(20), np.arange(20) % 3), (_images(8), np.arange(8) % 2), None),
    ((_images(20), np.zeros(20, int)), (_images(8), np.arange(8) % 2), r"experiment.data \(npz\) holds a single class"),
    ((_images(20), LABELS), (_images(8), np.zeros(8, int)), r"its test split holds a single class"),
])
def test_test_split_is_checked_with_the_training_split_at_construction(tmp_path, monkeypatch, train, test, message):
    import scorecast.train

    monkeypatch.setattr(scorecast.train, "train", lambda *a, **k: pytest.fail("trained"))
    if message is None:
        _pipeline(tmp_path, train, test)  # a test set lacking nothing and adding nothing passes
        return
    with pytest.raises(ScorecastError, match=message):
        _pipeline(tmp_path, train, test)


def test_a_test_class_the_training_set_lacks_is_refused_with_its_id(tmp_path):
    train_labels = np.array([0, 1, 3] * 7)  # class 2 declared (num_classes 4) but without a training sample
    with pytest.raises(ScorecastError, match=r"holds classes \[2\] that experiment.data \(npz\) has no sample of \(25.0% of the test images"):
        _pipeline(tmp_path, (_images(21), train_labels), (_images(8), np.arange(8) % 4), num_classes=4)


def test_a_stray_label_is_a_class_gap_not_extra_classes(tmp_path):
    labels = np.append(np.arange(19) % 10, 99)
    _npz(tmp_path, "train", _images(20), labels)
    with pytest.raises(ScorecastError, match=r"train.npz.*labels run from 0 to 99 but classes \[10, 11, .*, 17\] and 81 more have no sample"):
        load_dataset("npz", "train", root=tmp_path, crop=8)


def test_rgba_arrays_a_root_that_is_a_file_and_a_corrupt_gzip_name_the_file(tmp_path):
    _npz(tmp_path, "train", _images(4, side=32, channels=4), np.arange(4))
    with pytest.raises(ScorecastError, match=r"train.npz.*C = 1 \(grey\) or 3 \(RGB\); for RGBA .*image\[\.\.\., :3\]"):
        load_dataset("npz", "train", root=tmp_path)
    with pytest.raises(ScorecastError, match=r"data.root .*train.npz' is a file, not a folder"):
        load_dataset("npz", "train", root=tmp_path / "train.npz")
    import gzip

    raw = bytearray(gzip.compress(bytes(4 + 12 + 3 * 28 * 28)))
    raw[20:40] = b"\xff" * 20
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(bytes(raw))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2]))
    with pytest.raises(ScorecastError, match=r"cannot read IDX file .*train-images-idx3-ubyte.gz.*damaged"):
        load_dataset("fashion-mnist", "train", root=tmp_path)


def test_mmap_refuses_a_replaced_source_and_a_truncated_conversion(tmp_path):
    _npz(tmp_path / "d", "train", _images(6), np.arange(6) % 2)
    first = load_dataset("npz", "train", root=tmp_path / "d", crop=8, mmap=tmp_path / "m")
    time.sleep(0.01)
    _npz(tmp_path / "d", "train", _images(6, seed=1), np.arange(6) % 2)  # new pixels, same shape
    with pytest.raises(ScorecastError, match=r"data.mmap: the source of .*npz-train.* changed since it was converted \(\[.*train.npz'\] added, removed or modified\).*delete"):
        load_dataset("npz", "train", root=tmp_path / "d", crop=8, mmap=tmp_path / "m")
    import shutil

    shutil.rmtree(tmp_path / "m")
    second = load_dataset("npz", "train", root=tmp_path / "d", crop=8, mmap=tmp_path / "m")
    assert first.fingerprint() != second.fingerprint()
    np.testing.assert_array_equal(second.images.numpy(), _images(6, seed=1).transpose(0, 3, 1, 2))
    images = tmp_path / "m" / "npz-train" / "images.npy"
    images.write_bytes(images.read_bytes()[:-50])
    with pytest.raises(ScorecastError, match=r"data.mmap: the conversion in .*npz-train.* is damaged or truncated.*delete that folder"):
        load_dataset("npz", "train", root=tmp_path / "d", crop=8, mmap=tmp_path / "m")


@pytest.mark.parametrize("experiment, message", [
    ({"data": {"name": "digits", "resize": 16}}, r"experiment.data.resize is not read by dataset 'digits'"),
    ({"data": {"name": "digits", "num_classes": 10}}, r"experiment.data.num_classes is not read by dataset 'digits'"),
    ({"data": {"name": "cifar10", "num_classes": 10}}, r"experiment.data.num_classes is not read by dataset 'cifar10'.*reads: \['download', 'root'"),
    ({"test_data": {"name": "digits", "limit": 50}}, r"experiment.test_data.limit would be ignored"),
    ({"scoring": {"lr": float("inf")}}, r"experiment.scoring.lr must be a finite number, got inf"),
    ({"retrain": {"weight_decay": float("nan")}}, r"experiment.retrain.weight_decay must be a finite number"),
    ({"scoring": {"momentum": 1.5}}, r"experiment.scoring.momentum must be < 1, got 1.5"),
])
def test_experiment_cross_field_checks(experiment, message):
    with pytest.raises(ScorecastError, match=message):
        validate_experiment(experiment, "exp.yaml")


def test_digits_loader_refuses_options_it_does_not_read():
    with pytest.raises(ScorecastError, match=r"data.resize is not read by dataset 'digits', so it would be ignored"):
        load_dataset("digits", "train", resize=16)


@pytest.mark.parametrize("params, message", [
    ({"scorers": [{"name": "du", "window": 30}]}, r"scorers\[0\].window=30 needs 30 recorded epochs, but experiment.scoring.epochs is 20; use window <= 20"),
    ({"scorers": [{"name": "du", "window": 10, "variant": "reference", "scoring": {"epochs": 11}}]}, r"needs 12 recorded epochs \(variant reference .*scorers\[0\].scoring.epochs is 11"),
    ({"scorers": [{"name": "tdds", "window": 12}]}, r"scorers\[0\].window=12 exceeds the 10 epochs of the recorded softmax trajectory"),
    ({"scorers": [{"name": "el2n", "epoch": 0}]}, r"scorers\[0\].epoch=0 is not a recorded softmax epoch"),
    ({"scorers": [{"name": "tdds", "scoring": {"nesterov": "yes"}}]}, r"scorers\[0\]: scoring.nesterov must be bool, got 'yes'"),
    ({"scorers": [{"name": "tdds", "scoring": {"momentum": 1.0}}]}, r"scorers\[0\].scoring.momentum must be < 1"),
    ({"methods": [{"name": "knn", "k": 300}], "fractions": [0.2]}, r"methods\[0\].k=300 exceeds the smallest subset \(fractions 0.2 of 1437\) = 287 samples"),
    ({"methods": [{"name": "knn", "k": "cv", "ks": [5000]}], "fractions": [0.2]}, r"methods\[0\].ks=\[5000\]: k: cv tries only ks up to 80 % .* 287 samples \(<= 229\), and none is"),
    ({"methods": [{"name": "gnn", "k": 1437}], "fractions": [0.2]}, r"methods\[0\].k=1437 exceeds the 1436 other samples"),
    ({"k_grid": [1, 300], "fractions": [0.2]}, r"k_grid entry 300 exceeds 229"),
    ({"rates": [0.5, 0.9999]}, r"rates entry 0.9999 keeps no sample of the 1437 training samples"),
    ({"experiment": {"data": {"name": "digits", "limit": 100}}, "methods": [{"name": "knn", "k": 30}], "fractions": [0.2]}, r"= 20 samples"),
    ({"sizes": [1500]}, r"sizes entry 1500 is not below the 1437 training samples"),
])
def test_notebook_cross_field_checks(params, message):
    with pytest.raises(ScorecastError, match=message):
        validate_notebook_params(params, "nb.yaml")


def test_k_above_an_unknown_size_subset_is_refused_before_the_subset_run(tmp_path, monkeypatch):
    pipe = _pipeline(tmp_path, (_images(20), LABELS), (_images(8), np.arange(8) % 4))
    monkeypatch.setattr(Pipeline, "scoring_run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ScorecastError, match=r"method knn\(k=5\).k=5 exceeds the subset \(fraction 0.2 of 20\) = 4 samples"):
        pipe.extrapolated_scores({"name": "du"}, 0.2, 0, {"name": "knn", "k": 5})


def test_parameter_files_refuse_duplicates_empty_files_unknown_notebooks_and_missing_methods(tmp_path):
    (tmp_path / "dup.yaml").write_text("rates: [0.5]\nseeds: [0]\nrates: [0.7]\n")
    with pytest.raises(ScorecastError, match=r"dup.yaml.*duplicate key 'rates' \(YAML would keep only its last value\)"):
        load_params(tmp_path / "dup.yaml")
    (tmp_path / "exp.yaml").write_text("# nothing yet\n")
    with pytest.raises(ScorecastError, match=r"exp.yaml: holds no parameters"):
        validate_experiment(str(tmp_path / "exp.yaml"))
    (tmp_path / "q.yaml").write_text(yaml.safe_dump({"methods": [{"name": "gnn", "k": 10}]}))
    with pytest.raises(ScorecastError, match=r"q.yaml: methods must include a 'knn' entry: quickstart.ipynb shows"):
        check_file("notebooks/quickstart.ipynb", tmp_path / "q.yaml")
    with pytest.raises(ScorecastError, match=r"parameters cell: methods must include a 'knn' entry: tab3_unsupervised.ipynb"):
        validate_notebook_params({"methods": [{"name": "gnn", "k": 10}]}, PARAMETERS_CELL, "tab3_unsupervised")  # a hand run
    with pytest.raises(ScorecastError, match=r"no notebook 'notebooks/quickstar.ipynb' .*\(did you mean 'quickstart'\?\)"):
        check_file("notebooks/quickstar.ipynb", tmp_path / "q.yaml")


def test_cache_root_that_is_a_file_is_refused(tmp_path):
    from scorecast.cache import Cache

    (tmp_path / "file").write_text("x")
    with pytest.raises(ScorecastError, match=r"cache root .*file' is a file.*SCORECAST_CACHE"):
        Cache(tmp_path / "file").get("retrain", "1", {"a": 1}, lambda folder: {})


def test_papermill_parameter_the_notebook_does_not_define_is_refused(tmp_path):
    """A hand run `papermill -p windw 5` (papermill only warns) stops at the notebook's own check."""
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                                            "language_info": {"name": "python"}})
    cell = nbformat.v4.new_code_cell("seeds = [0]\nrates = [0.5]")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell('from scorecast import params\nparams.validate_notebook_params({"seeds": seeds, "rates": rates}, "parameters cell")')]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    run = lambda *p: subprocess.run([sys.executable, "-m", "papermill", str(tmp_path / "nb.ipynb"), str(tmp_path / "out.ipynb"), *p, "-k", "python3"],
                                    capture_output=True, text=True, env={**os.environ, "SCORECAST_QUIET": "1"}, cwd=tmp_path)
    bad = run("-p", "seedz", "1")
    assert bad.returncode != 0 and "papermill set 'seedz', which is not a parameter of this notebook (did you mean 'seeds'?)" in bad.stderr + bad.stdout
    good = run("-y", "seeds: [1]")
    assert good.returncode == 0, good.stderr[-2000:]

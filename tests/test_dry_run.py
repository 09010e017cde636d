"""The paper tier's dry run (scorecast.dryrun): generated data in each paper format, the one override,
and run_all.sh's handling of signals and of parameter files that papermill cannot read."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from scorecast import dryrun
from scorecast.data import load_dataset
from scorecast.params import load_params, validate_experiment
from scorecast.validation import ScorecastError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key", sorted(dryrun.GENERATED))
def test_generated_data_loads_with_the_paper_loader(tmp_path, key):
    spec = dryrun.GENERATED[key]
    folder = spec.write(tmp_path)
    name = key.split(":")[0]
    options = {"num_classes": int(key.split(":")[1])} if name == "npz" else {}
    train = load_dataset(name, "train", folder, **options)
    side = {"places365": 64, "imagenet64": 64}.get(name, 32)
    assert tuple(train.images.shape) == (spec.n_train, 3, *(train.images.shape[2:]))
    assert min(train.images.shape[2:]) >= side
    assert sorted(np.unique(train.labels.numpy())) == list(range(spec.present))
    assert train.num_classes == {"cifar10": 10, "cifar100": 100, "npz": options.get("num_classes"), "places365": 365, "imagenet64": 1000}[name]
    if spec.n_test:
        assert len(load_dataset(name, "test", folder, **options)) == spec.n_test
    # images differ by class, so a model can learn something in a few epochs
    means = [train.images[train.labels == c].float().mean() for c in range(2)]
    assert means[0] != means[1]


def _paper(name):
    params = load_params(ROOT / "params/paper" / f"{name}.yaml")  # the paper tier's values over params/base/<name>.yaml
    return params, validate_experiment(str(ROOT / params["experiment"]))


def test_shrink_changes_only_epochs_windows_seeds_sizes_and_paths(tmp_path):
    params, experiment = _paper("tab2_extrapolation_correlation")
    data = {"cifar10": tmp_path / "cifar10"}
    shrunk, notes = dryrun.shrink(params, experiment, data, tmp_path, "tab2")
    exp = shrunk["experiment"]
    # the paper's windows of 10 and TDDS trajectory of 10 epochs -> 3 (TDDS's smallest window), and 3 epochs
    assert [s["window"] for s in params["scorers"]] == [10, 10] and experiment.record.trajectory_length == 10
    assert [s["window"] for s in shrunk["scorers"]] == [3, 3] and exp["record"]["trajectory_length"] == 3
    assert exp["scoring"]["epochs"] == 3
    assert exp["retrain"]["epochs"] == 1
    assert shrunk["seeds"] == [0]
    assert exp["data"]["root"] == str(tmp_path / "cifar10")
    assert shrunk["output_dir"] == str(tmp_path / "out" / "tab2") and shrunk["cache_dir"] == str(tmp_path / "cache")
    original = experiment.as_dict()
    for key in ("model", "paradigm"):
        assert exp[key] == original[key]
    assert {**exp["record"], "trajectory_length": 10} == original["record"]
    for key in ("batch_size", "optimizer", "lr", "weight_decay", "schedule"):
        assert exp["scoring"][key] == original["scoring"][key] and exp["retrain"][key] == original["retrain"][key]
    # everything else is the paper's, and the shrunk experiment validates
    changed = {"data", "record", "scoring", "retrain"}
    assert {k: v for k, v in exp.items() if k not in changed} == {k: v for k, v in original.items() if k not in changed}
    assert validate_experiment(exp).as_dict() == exp
    assert [s["name"] for s in shrunk["scorers"]] == ["du", "tdds"] and shrunk["scorers"][1]["scoring"] == params["scorers"][1]["scoring"]
    assert [m["name"] for m in shrunk["methods"]] == [m["name"] for m in params["methods"]]
    # a GNN validates on 10 % of the subset: 0.1 of the 100 generated images is raised to 0.2, and reported
    assert shrunk["fractions"] == [0.2] and any("fractions" in n for n in notes)
    # the inputs are untouched
    assert params["seeds"] == [0, 1, 2] and experiment.scoring.epochs == 50


def test_shrink_limits_samples_caps_k_and_shrinks_attacks(tmp_path):
    params, experiment = _paper("tab4_adversarial")
    shrunk, notes = dryrun.shrink(params, experiment, {"cifar10": tmp_path}, tmp_path, "tab4")
    exp = shrunk["experiment"]
    # fraction 0.2 and rates up to 0.7 need 10 samples for subsets and pruned sets of >= 2
    assert exp["data"]["limit"] == 10
    assert exp["attack"]["steps"] == 1 and exp["eval_attack_steps"] == 1
    assert exp["attack"]["eps"] == experiment.attack.eps and exp["model"] == "wrn28_10"
    assert [m.get("k") for m in shrunk["methods"]] == [None, 2, None] and notes == ["knn k 10 -> 2"]
    assert shrunk["rates"] == params["rates"] == [0.3, 0.7]
    params, experiment = _paper("fig2_accuracy_vs_pruning_rate")
    shrunk, _ = dryrun.shrink(params, experiment, {"cifar10": tmp_path}, tmp_path, "fig2")
    assert params["rates"] == [0.0, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95] and shrunk["rates"] == [0.0, 0.1, 0.95]


def test_shrink_k_grid_fits_the_cross_validation_folds(tmp_path):
    params, experiment = _paper("app_k_sweep")
    shrunk, notes = dryrun.shrink(params, experiment, {"cifar10": tmp_path}, tmp_path, "k")
    n = 100  # the generated CIFAR-10 size: 20 / 0.1 samples would be needed, 0.1 is raised to 0.2
    assert shrunk["fractions"] == [0.2] and "limit" not in shrunk["experiment"]["data"]
    assert shrunk["k_grid"] == [10, 16]  # 4/5 of a 20-sample subset
    assert any("k_grid" in note for note in notes) and n * 0.2 == 20


def test_shrink_marks_dinov2_as_a_stand_in_and_sets_turtle_epochs(tmp_path):
    params, experiment = _paper("tab3_unsupervised")
    shrunk, notes = dryrun.shrink(params, experiment, {"cifar10": tmp_path}, tmp_path, "tab3")
    assert shrunk["encoder"] == {**params["encoder"], "stand_in": True}
    assert shrunk["turtle"]["epochs"] == dryrun.WINDOW and shrunk["turtle"]["batch_size"] == params["turtle"]["batch_size"]
    assert any("STAND-IN" in n for n in notes)
    params, experiment = _paper("fig3_time_vs_accuracy")
    shrunk, _ = dryrun.shrink(params, experiment, {"cifar10": tmp_path}, tmp_path, "fig3")
    assert [m["encoder"]["stand_in"] for m in shrunk["methods"] if "encoder" in m] == [True, True]


def test_prepare_covers_every_paper_file_and_dataset(tmp_path):
    runs = dryrun.paper_runs()
    files = {p.stem for p in (ROOT / "params/paper").glob("*.yaml") if not p.stem.startswith("experiment")}
    assert files <= set(runs)
    datasets = {dryrun.dataset_key(spec) for _, _, exp in runs.values() for spec in (exp.data, exp.test_data) if spec is not None}
    assert datasets == set(dryrun.GENERATED)
    prepared = dryrun.prepare(tmp_path, ["tab4_adversarial--2m"])
    assert [p[0] for p in prepared] == ["tab4_adversarial--2m"]
    written = yaml.safe_load(prepared[0][2].read_text())
    assert written["experiment"]["test_data"]["root"] == str(tmp_path / "data" / "cifar10")
    with pytest.raises(ScorecastError, match="no paper run named"):
        dryrun.prepare(tmp_path, ["fig9"])


@pytest.mark.parametrize("dataset", ["imagenet64", "places365", "cifar100_1m"])
def test_large_dataset_variants_are_dry_run_through_their_memory_map(tmp_path, dataset):
    runs = dryrun.paper_runs()
    for notebook in ("fig2_accuracy_vs_pruning_rate", "tab2_extrapolation_correlation"):
        assert runs[f"{notebook}--{dataset}"][2].data["mmap"] == f"data/mmap/{dataset}"
    prepared = dryrun.prepare(tmp_path, [f"fig2_accuracy_vs_pruning_rate--{dataset}"])
    data = yaml.safe_load(prepared[0][2].read_text())["experiment"]["data"]
    key = dryrun.dataset_key(data)
    assert data["mmap"] == str(tmp_path / "mmap" / dryrun.GENERATED[key].folder)  # never the checkout's data/
    options = {k: v for k, v in data.items() if k not in ("name", "root", "limit")}
    mapped = load_dataset(data["name"], "train", data["root"], **options)
    assert (Path(data["mmap"]) / f"{data['name']}-train" / "images.npy").is_file()  # converted there, mapped from there
    in_memory = load_dataset(data["name"], "train", data["root"], **{k: v for k, v in options.items() if k != "mmap"})
    assert np.array_equal(mapped.images.numpy(), in_memory.images.numpy()) and np.array_equal(mapped.labels, in_memory.labels)


def test_dinov2_stand_in_only_when_asked():
    from scorecast import unsupervised

    ds = load_dataset("digits", "train")
    ds.images = ds.images[:6]
    ds.labels = ds.labels[:6]
    with pytest.warns(UserWarning, match="STAND-IN"):
        Z = unsupervised.encode(ds, "dinov2", seed=0, device="cpu", stand_in=True)
    assert Z.shape == (6, 64) and np.isfinite(Z).all()
    with pytest.raises(ScorecastError, match="stand_in must be true or false"):
        unsupervised.encode(ds, "dinov2", device="cpu", stand_in="yes")


# ------------------------------------------------------------------ run_all.sh


def _mini_checkout(tmp_path, cell_source):
    """A checkout with run_all.sh, one smoke notebook 'probe' (parameters cell + ``cell_source``)."""
    shutil.copy(ROOT / "run_all.sh", tmp_path / "run_all.sh")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params" / "smoke").mkdir(parents=True)
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "output_dir = 'x'", "outputs": [], "execution_count": None},
             {"cell_type": "code", "metadata": {}, "source": cell_source, "outputs": [], "execution_count": None}]
    notebook = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "notebooks" / "probe.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "tmp").mkdir()  # run_all.sh's mktemp files and folders go here (TMPDIR)
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TMPDIR": str(tmp_path / "tmp")}
    return env


def _left_behind(tmp_path):
    """What run_all.sh's mktemp made (tmp.XXXXXXXXXX) and did not remove."""
    return sorted(p.name for p in (tmp_path / "tmp").glob("tmp.*"))


def _descendants(pid):
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_sigterm_leaves_no_papermill_or_kernel_behind(tmp_path):
    marker = tmp_path / "cell-started"
    env = _mini_checkout(tmp_path, f"import time\nopen({str(marker)!r}, 'w').close()\ntime.sleep(600)")
    (tmp_path / "params" / "smoke" / "probe.yaml").write_text("{}\n")
    proc = subprocess.Popen(["bash", str(tmp_path / "run_all.sh"), "probe"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for _ in range(1200):  # the kernel starts, then the long cell writes the marker
        if marker.exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "the long cell never started"
    spawned = _descendants(proc.pid)
    assert len(spawned) >= 2  # papermill and its kernel
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert "interrupted" in proc.stderr.read()
    for _ in range(100):
        if not any(_alive(pid) for pid in spawned):
            break
        time.sleep(0.1)
    assert [pid for pid in spawned if _alive(pid)] == []
    assert _left_behind(tmp_path) == []  # the checked parameter values and the marker file are removed too


def test_unreadable_parameter_file_is_named_and_no_copy_is_claimed(tmp_path):
    env = _mini_checkout(tmp_path, "print('hello')")
    (tmp_path / "params" / "smoke" / "probe.yaml").write_text("scorers: [unclosed\n")
    result = subprocess.run(["bash", str(tmp_path / "run_all.sh"), "probe"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "params/smoke/probe.yaml" in result.stderr
    assert "is kept at" not in result.stderr
    assert not (tmp_path / "results" / "smoke" / "probe.ipynb").exists()
    assert _left_behind(tmp_path) == []


def test_download_without_a_folder_names_what_to_set(monkeypatch):
    # the dry run's first finding: Table 5's test set (download: true, root: null) crashed with a TypeError
    monkeypatch.delenv("SCORECAST_DATA_ROOT", raising=False)
    with pytest.raises(ScorecastError, match="no folder to download into: set data.root"):
        load_dataset("cifar10", "test", None, download=True)


def _notebook(tmp_path, name, parameters, source):
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": parameters, "outputs": [], "execution_count": None},
             {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}]
    notebook = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "notebooks" / f"{name}.ipynb").write_text(json.dumps(notebook))


def test_a_failed_notebook_does_not_stop_the_batch_and_is_named(tmp_path):
    env = _mini_checkout(tmp_path, "print('hello')")
    for name in ("pyproject.toml", "REPRODUCTION.md"):  # the index names the version and the verdicts
        shutil.copy(ROOT / name, tmp_path / name)
    _notebook(tmp_path, "a_broken", "output_dir = 'x'", "raise RuntimeError('boom')")
    for name in ("a_broken", "probe"):
        (tmp_path / "params" / "smoke" / f"{name}.yaml").write_text("{}\n")
    result = subprocess.run(["bash", str(tmp_path / "run_all.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr
    assert (tmp_path / "results" / "smoke" / "probe.html").is_file()  # ran after the failure
    assert (tmp_path / "results" / "smoke" / "index.html").is_file()
    assert "1 of 2 notebook(s) failed: a_broken" in result.stderr


def test_preflight_refuses_a_missing_data_root_within_a_minute_naming_the_file(tmp_path):
    env = _mini_checkout(tmp_path, "print('hello')")
    _notebook(tmp_path, "probe", "output_dir = 'x'\nexperiment = None", "print('hello')")
    (tmp_path / "params" / "paper").mkdir()
    (tmp_path / "params" / "paper" / "experiment.yaml").write_text(
        f"data: {{name: cifar10, root: {tmp_path / 'nowhere'}}}\nmodel: tiny_cnn\ndevice: cpu\n")
    (tmp_path / "params" / "paper" / "probe.yaml").write_text("experiment: params/paper/experiment.yaml\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(["bash", str(tmp_path / "run_all.sh"), "--tier", "paper", "--preflight"], env=env, capture_output=True, text=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds, not wall time: on a loaded shared test machine two Python start-ups can take a minute of wall time
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 60
    assert result.returncode == 2
    assert "params/paper/probe.yaml: [data] experiment params/paper/experiment.yaml" in result.stderr
    assert str(tmp_path / "nowhere") in result.stderr and "no notebook was run" in result.stderr
    assert not (tmp_path / "results").exists()

"""scorecast.preflight on small generated datasets (scorecast.dryrun's writers, the paper formats)."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import pytest
import torch

from scorecast import dryrun, preflight
from scorecast.params import validate_experiment

ROOT = Path(__file__).resolve().parents[1]


def _files(tmp_path, data: str, device: str = "auto", tier: str = "paper", extra: str = "") -> Path:
    """params/<tier>/fig2_accuracy_vs_pruning_rate.yaml (a notebook that exists) + its experiment file."""
    folder = tmp_path / "params" / tier
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.yaml").write_text(f"data: {data}\nmodel: resnet18\ndevice: {device}\n"
                                            "scoring: {epochs: 10}\nrecord: {trajectory_length: 10}\n")
    path = folder / "fig2_accuracy_vs_pruning_rate.yaml"
    path.write_text(f"experiment: {folder / 'experiment.yaml'}\nscorers: [{{name: du, window: 10}}]\n"
                    f"methods: [{{name: full}}, {{name: knn, k: 2}}]\nrates: [0.5]\nfractions: [0.5]\nseeds: [0]\ncache_dir: {tmp_path / 'cache'}\n{extra}")
    return path


@pytest.fixture
def imagenet(tmp_path):
    return dryrun.GENERATED["imagenet64"].write(tmp_path / "data")


def _checks(problems):
    return sorted(p.check for p in problems)


def test_readable_data_on_a_cpu_experiment_passes(tmp_path, imagenet):
    assert preflight.preflight([str(_files(tmp_path, f"{{name: imagenet64, root: {imagenet}}}", device="cpu"))]) == []


def test_missing_and_unreadable_files_are_named(tmp_path, imagenet):
    path = _files(tmp_path, f"{{name: imagenet64, root: {tmp_path / 'nowhere'}}}", device="cpu")
    train, test = preflight.preflight([str(path)])
    assert train.check == test.check == "data" and train.file == str(path) and str(tmp_path / "nowhere") in train.message
    (imagenet / "train_data_batch_7.npz").unlink()
    path = _files(tmp_path, f"{{name: imagenet64, root: {imagenet}}}", device="cpu")
    (problem,) = preflight.preflight([str(path)])
    assert "train_data_batch_7.npz" in problem.message and "experiment" in problem.message


def test_a_places365_image_listed_but_missing_is_found(tmp_path):
    places = dryrun.GENERATED["places365"].write(tmp_path / "data")
    first = (places / "places365_train_standard.txt").read_text().split()[0]
    (places / "data_256_standard" / first.lstrip("/")).unlink()
    (problem,) = preflight.preflight([str(_files(tmp_path, f"{{name: places365, root: {places}}}", device="cpu"))])
    assert first.lstrip("/") in problem.message


def test_the_paper_tier_refuses_auto_without_a_gpu(tmp_path, imagenet, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = f"{{name: imagenet64, root: {imagenet}}}"
    assert _checks(preflight.preflight([str(_files(tmp_path, data))])) == ["gpu"]
    assert preflight.preflight([str(_files(tmp_path, data, tier="cpu"))]) == []  # auto may fall back off the paper tier
    assert _checks(preflight.preflight([str(_files(tmp_path, data, device="cuda", tier="cpu"))])) == ["gpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert preflight.preflight([str(_files(tmp_path, data))]) == []
    assert "torch sees 1 GPU" in preflight.preflight([str(_files(tmp_path, data, device="cuda:1"))])[0].message


def test_dinov2_weights_must_be_in_the_hub_cache(tmp_path, imagenet, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    data = f"{{name: imagenet64, root: {imagenet}}}"
    method = "methods: [{name: full}, {name: prototypes, encoder: {name: dinov2, arch: dinov2_vits14}}]\n"
    path = _files(tmp_path, data, device="cpu")
    path.write_text(path.read_text().replace("methods: [{name: full}, {name: knn, k: 2}]\n", method))
    (problem,) = preflight.preflight([str(path)])
    assert problem.check == "weights" and "dinov2_vits14_pretrain.pth" in problem.message
    (hub / "facebookresearch_dinov2_main").mkdir(parents=True)
    (hub / "checkpoints").mkdir()
    (hub / "checkpoints" / "dinov2_vits14_pretrain.pth").write_bytes(b"x")
    assert preflight.preflight([str(path)]) == []
    path.write_text(path.read_text().replace("arch: dinov2_vits14", "arch: dinov2_vits14, stand_in: true"))
    (hub / "checkpoints" / "dinov2_vits14_pretrain.pth").unlink()
    assert preflight.preflight([str(path)]) == []  # the dry run's stand-in needs no weights


def test_planned_bytes_counts_each_run_once():
    experiment = validate_experiment({"data": {"name": "cifar100", "limit": 1000}, "paradigm": "supervised", "scoring": {"epochs": 90},
                                      "record": {"trajectory_length": 10}})
    params = {"scorers": [{"name": "du"}, {"name": "el2n"}], "methods": [{"name": "proxy", "augmentations": 8}], "seeds": [0], "fractions": [0.1]}
    seen = set()
    full = 90 * 1000 * 9 + preflight.MODEL_BYTES
    subset = 90 * 100 * 9 + preflight.MODEL_BYTES + 1000 * preflight.EMBED_DIM * 4 + 8 * 1000 * 100 * 4
    softmax = 10 * 1000 * 100 * 4 + 10 * 100 * 100 * 4  # el2n reads the last 10 records' softmax, du none
    assert preflight.planned_bytes(params, experiment, seen) == 2 * (full + subset) + softmax  # a run each for du and el2n
    assert preflight.planned_bytes(params, experiment, seen) == 0  # a second notebook reuses them


def test_disk_shortage_and_pending_mmap_conversion_are_refused(tmp_path, imagenet, monkeypatch):
    path = _files(tmp_path, f"{{name: imagenet64, root: {imagenet}, mmap: {tmp_path / 'mm'}}}", device="cpu")
    plan = {}
    assert preflight.check_file(path, set(), plan) == []
    assert plan[tmp_path / "mm" / "imagenet64-train"] == 40 * (3 * 64 * 64 + 8)  # the generated split's 40 images, not yet converted
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: usage(1, 1, 0))
    (problem,) = preflight.preflight([str(path)])
    assert problem.check == "disk" and "0.0 GiB free" in problem.message


def test_main_lists_every_problem_and_exits_1(tmp_path, capsys):
    path = _files(tmp_path, f"{{name: cifar10, root: {tmp_path / 'nowhere'}}}", device="cpu")
    assert preflight.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("[data]") == 2 and "2 problem(s)" in err  # the train and the test split
    assert preflight.main([str(tmp_path / "missing.yaml")]) == 2

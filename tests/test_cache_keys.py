"""What each stage's cache key holds changes only together with that stage's STAGE_VERSIONS entry.

A tiny digits pipeline (DU and TDDS runs, kNN, GNN, proxy and hybrid extrapolation, retraining) records every (stage, version, config) it asks the cache for. Configs name upstream
artefacts by folder name, which includes the machine (thread count, CPU model); those names are
replaced by a machine-free digest so the record is the same on every machine. For a stage whose
version equals the one in ``cache_configs.json``, every config must be one recorded there: a
refactor that changes what a key holds would silently orphan (or, worse, reuse) cached artefacts.
After a deliberate version bump, or a new kind of config whose old kinds keep their meaning (the
record's diff shows which), regenerate the record: ``python tests/test_cache_keys.py``.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from scorecast import cache
from scorecast.cache import Cache
from scorecast.pipeline import Pipeline

RECORD = Path(__file__).with_name("cache_configs.json")
EXPERIMENT = {
    "data": {"name": "digits"},
    "model": "tiny_cnn",
    "scoring": {"epochs": 4, "batch_size": 128},
    "record": {"source": "train", "trajectory": "last", "trajectory_length": 4},
    "retrain": {"epochs": 2, "batch_size": 64, "lr": 0.01},
    "subset_length": "epochs",  # the phase search's tried multiples depend on float results
    "device": "cpu",
}
DU = {"name": "du", "window": 3}
METHODS = [{"name": "knn", "k": 5}, {"name": "gnn", "k": 5, "labels": True, "epochs": 20},
           {"name": "proxy", "kind": "aug_std", "augmentations": 2}, {"name": "hybrid", "kind": "aug_std", "augmentations": 2, "k": 5}]


def _replace(value, names: dict):
    if isinstance(value, dict):
        return {k: _replace(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, names) for v in value]
    return names.get(value, value) if isinstance(value, str) else value


def recorded_configs(root: Path) -> dict[str, dict[str, list[str]]]:
    """{stage: {version: sorted JSON configs}} the tiny pipeline asks the cache for."""
    names, seen = {}, {}
    real_get = Cache.get

    def spy(self, stage, version, config, compute):
        artifact = real_get(self, stage, version, config, compute)
        plain = _replace(json.loads(json.dumps(config, sort_keys=True, default=cache._plain)), names)
        names[artifact.path.name] = f"{stage}:{cache.config_key(stage, version, plain)}"
        seen.setdefault(stage, {}).setdefault(version, set()).add(json.dumps(plain, sort_keys=True))
        return artifact

    Cache.get = spy
    try:
        pipe = Pipeline(EXPERIMENT, cache_root=root)
        pipe.full_scores(DU, seed=0)
        pipe.full_scores({"name": "tdds", "window": 3}, seed=0)  # a run that records its softmax trajectory
        for method in METHODS:
            pipe.extrapolated_scores(DU, 0.3, 0, method)
        pipe.retrain(np.arange(len(pipe.train_set), dtype=np.float32), 0.5, seed=0)  # kept set independent of float results
    finally:
        Cache.get = real_get
    return {stage: {v: sorted(c) for v, c in versions.items()} for stage, versions in sorted(seen.items())}


def test_a_cache_key_changes_only_with_its_stage_version(tmp_path):
    record = json.loads(RECORD.read_text())
    now = recorded_configs(tmp_path)
    for stage, versions in now.items():
        for version, configs in versions.items():
            if version not in record.get(stage, {}):
                pytest.fail(f"stage {stage!r} is at version {version!r}, {RECORD.name} at {sorted(record.get(stage, {}))}: "
                            f"after a deliberate bump regenerate it with python tests/test_cache_keys.py")
            changed = sorted(set(configs) - set(record[stage][version]))
            assert not changed, (f"the {stage!r} cache config changed without a STAGE_VERSIONS bump: {changed[:1]} "
                                 f"is not in {RECORD.name}; bump the stage's version or keep the config as it was")


def test_options_as_written_share_one_entry_when_they_resolve_alike(tmp_path):
    """{knn} and {knn, k: 10} (the default k) are one artefact; a label or post-cache calibration adds none."""
    pipe = Pipeline(EXPERIMENT, cache_root=tmp_path)
    written = [{"name": "knn"}, {"name": "knn", "k": 10}, {"name": "knn", "label": "mine"}, {"name": "knn", "calibrate": True}]
    scores = [pipe.extrapolated_scores(DU, 0.3, 0, method).scores for method in written]
    assert len(list((tmp_path / "extrapolate").glob("*/manifest.json"))) == 1
    assert all(np.array_equal(scores[0], s) for s in scores[1:3]) and not np.array_equal(scores[0], scores[3])
    pipe.extrapolated_scores(DU, 0.3, 0, {"name": "knn", "k": 7})
    assert len(list((tmp_path / "extrapolate").glob("*/manifest.json"))) == 2  # another k is another artefact


if __name__ == "__main__":
    import tempfile

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        RECORD.write_text(json.dumps(recorded_configs(Path(folder)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORD}")

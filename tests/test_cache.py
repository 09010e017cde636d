"""scorecast.cache: hits, misses, corrupted and half-written artefacts, atomic writes, stable keys."""

import hashlib
import json

import numpy as np
import pytest

from scorecast.cache import MANIFEST, Cache, config_key

CONFIG = {"data": {"name": "digits", "fingerprint": "abc"}, "seed": 0, "lr": 0.001, "epochs": 3}


class Counter:
    """A compute function that writes two files (one in a sub-folder) and counts its calls."""

    def __init__(self, value=1.0):
        self.calls = 0
        self.value = value

    def __call__(self, folder):
        self.calls += 1
        np.save(folder / "x.npy", np.full(5, self.value))
        (folder / "sub").mkdir()
        (folder / "sub" / "note.txt").write_text(f"call {self.calls}")
        return {"m": 5, "value": self.value}


def _entries(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_hit_skips_compute_and_returns_same_record(tmp_path):
    cache, compute = Cache(tmp_path), Counter()
    first = cache.get("train", "1", CONFIG, compute)
    assert compute.calls == 1 and not first.cached
    assert first.path == tmp_path / "train" / config_key("train", "1", CONFIG)
    assert np.array_equal(np.load(first.file("x.npy")), np.ones(5))
    manifest = json.loads(first.file(MANIFEST).read_text())
    assert set(manifest["files"]) == {"x.npy", "sub/note.txt"}
    second = cache.get("train", "1", CONFIG, compute)
    assert compute.calls == 1 and second.cached
    assert second.path == first.path
    assert second.info == first.info == {"m": 5, "value": 1.0}
    assert second.seconds == first.seconds >= 0.0  # the wall time measured when it was computed
    assert second.config == first.config == CONFIG
    # a fresh Cache object on the same root (another notebook) hits too
    assert Cache(tmp_path).get("train", "1", dict(reversed(list(CONFIG.items()))), compute).cached
    assert compute.calls == 1
    assert Cache(tmp_path).load("train", "1", CONFIG) is not None


def test_miss_on_changed_config_stage_or_version(tmp_path):
    cache, compute = Cache(tmp_path), Counter()
    base = cache.get("train", "1", CONFIG, compute)
    paths = {base.path}
    for stage, version, config in [
        ("train", "1", {**CONFIG, "seed": 1}),
        ("train", "1", {**CONFIG, "lr": 0.0011}),
        ("train", "1", {**CONFIG, "data": {"name": "digits", "fingerprint": "abd"}}),
        ("train", "2", CONFIG),
        ("embed", "1", CONFIG),
    ]:
        art = cache.get(stage, version, config, compute)
        assert not art.cached
        paths.add(art.path)
    assert compute.calls == 6 and len(paths) == 6


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete a file", "delete the manifest", "garble the manifest"])
def test_damaged_artefact_is_recomputed(tmp_path, damage):
    cache = Cache(tmp_path)
    art = cache.get("train", "1", CONFIG, Counter(1.0))
    target = art.file("x.npy")
    if damage == "flip a byte":  # same size, different content: caught by the SHA-256
        raw = bytearray(target.read_bytes())
        raw[-1] ^= 0xFF
        target.write_bytes(bytes(raw))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-8])
    elif damage == "delete a file":
        art.file("sub/note.txt").unlink()
    elif damage == "delete the manifest":  # a half-written artefact
        art.file(MANIFEST).unlink()
    else:
        art.file(MANIFEST).write_text("{not json")
    assert cache.load("train", "1", CONFIG) is None
    again = Counter(2.0)
    redone = cache.get("train", "1", CONFIG, again)
    assert again.calls == 1 and not redone.cached and redone.path == art.path
    assert np.array_equal(np.load(redone.file("x.npy")), np.full(5, 2.0))
    assert redone.info["value"] == 2.0
    assert cache.get("train", "1", CONFIG, again).cached and again.calls == 1
    assert not [p for p in redone.path.parent.iterdir() if p.name.startswith(".tmp")]


def test_failed_compute_leaves_nothing(tmp_path):
    cache = Cache(tmp_path)

    def boom(folder):
        np.save(folder / "partial.npy", np.zeros(3))
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        cache.get("train", "1", CONFIG, boom)
    assert not cache.folder("train", "1", CONFIG).exists()
    stage = tmp_path / "train"
    assert not stage.exists() or list(stage.iterdir()) == []  # no final folder, no .tmp-* folder
    assert cache.load("train", "1", CONFIG) is None
    compute = Counter()
    assert not cache.get("train", "1", CONFIG, compute).cached and compute.calls == 1


def test_failed_recompute_keeps_no_temporary_but_old_damage_is_not_served(tmp_path):
    cache = Cache(tmp_path)
    art = cache.get("train", "1", CONFIG, Counter())
    art.file(MANIFEST).unlink()

    def boom(folder):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get("train", "1", CONFIG, boom)
    assert cache.load("train", "1", CONFIG) is None
    assert not [p for p in (tmp_path / "train").iterdir() if p.name.startswith(".tmp")]


def test_key_is_stable():
    key = config_key("train", "1", CONFIG)
    assert len(key) == 20 and all(c in "0123456789abcdef" for c in key)
    # independent of dict order, nested or not
    shuffled = {"epochs": 3, "lr": 0.001, "seed": 0, "data": {"fingerprint": "abc", "name": "digits"}}
    assert config_key("train", "1", shuffled) == key
    # the documented construction, so keys survive library refactors and new processes
    blob = json.dumps({"stage": "train", "version": "1", "config": CONFIG}, sort_keys=True)
    assert key == hashlib.sha256(blob.encode()).hexdigest()[:20]
    assert key == "72626ea98f0b223909d4"  # pinned: a change here invalidates every cache
    # tuples and lists (JSON has only lists) give one key; any value change gives another
    assert config_key("s", "1", {"e": (1, 2)}) == config_key("s", "1", {"e": [1, 2]})
    assert config_key("s", "1", {"e": 1}) != config_key("s", "1", {"e": 1.5})
    assert config_key("s", "1", {"e": None}) != config_key("s", "1", {})


def test_default_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SCORECAST_CACHE", str(tmp_path / "env"))
    assert Cache().root == tmp_path / "env"
    assert Cache(tmp_path / "explicit").root == tmp_path / "explicit"


def test_numpy_scalars_key_like_python_numbers_and_arrays_are_refused():
    from scorecast.cache import config_key

    assert config_key("s", "1", {"seed": np.int64(3), "rate": np.float64(0.5)}) == config_key("s", "1", {"seed": 3, "rate": 0.5})
    with pytest.raises(TypeError, match="digest"):
        config_key("s", "1", {"indices": np.arange(3)})

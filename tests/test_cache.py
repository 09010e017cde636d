"""scorecast.cache: hits, misses, corrupted and half-written artefacts, checksummed manifests,
atomic writes under concurrency, stale temporaries, machine settings in keys, stable keys, log lines."""

import hashlib
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scorecast import cache as cache_module
from scorecast.cache import MANIFEST, MANIFEST_DIGEST, STALE_SECONDS, Cache, config_key, machine

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
    assert first.path == tmp_path / "train" / config_key("train", "1", {"config": CONFIG, "machine": machine()})
    assert np.array_equal(np.load(first.file("x.npy")), np.ones(5))
    manifest = json.loads(first.file(MANIFEST).read_text())
    assert set(manifest["files"]) == {"x.npy", "sub/note.txt"}
    assert manifest["machine"] == first.machine == machine()  # provenance
    assert first.file(MANIFEST_DIGEST).read_text() == hashlib.sha256(first.file(MANIFEST).read_bytes()).hexdigest() + "\n"
    second = cache.get("train", "1", CONFIG, compute)
    assert compute.calls == 1 and second.cached
    assert second.path == first.path
    assert second.info == first.info == {"m": 5, "value": 1.0}
    assert second.seconds == first.seconds >= 0.0  # the wall time measured when it was computed
    assert second.config == first.config == CONFIG and second.machine == first.machine
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


# --------------------------------------------------------------------------------- machine settings


def test_machine_settings_are_part_of_the_key(tmp_path, monkeypatch):
    """A cache filled on 2 threads, another CPU or another ATEN_CPU_CAPABILITY is not served here."""
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    cache, compute = Cache(tmp_path), Counter()
    base = cache.get("train", "1", CONFIG, compute)
    assert base.machine == {"threads": torch.get_num_threads(), "cpu": cache_module._cpu_model(), "aten_cpu_capability": None}
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        other_threads = cache.get("train", "1", CONFIG, compute)
    finally:
        torch.set_num_threads(threads)
    assert not other_threads.cached and other_threads.machine["threads"] == threads + 1
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    other_isa = cache.get("train", "1", CONFIG, compute)
    assert not other_isa.cached and other_isa.machine["aten_cpu_capability"] == "default"
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    this_cpu = cache_module._cpu_model
    monkeypatch.setattr(cache_module, "_cpu_model", lambda: "Another CPU")
    other_cpu = cache.get("train", "1", CONFIG, compute)
    assert not other_cpu.cached and other_cpu.machine["cpu"] == "Another CPU"
    assert compute.calls == 4 and len({base.path, other_threads.path, other_isa.path, other_cpu.path}) == 4
    monkeypatch.setattr(cache_module, "_cpu_model", this_cpu)  # back to base's settings (whatever the outer environment sets)
    assert cache.get("train", "1", CONFIG, compute).path == base.path and compute.calls == 4


def test_data_parallel_and_gpu_settings_in_the_key(tmp_path, monkeypatch):
    """A one-process CPU key holds exactly the CPU settings (so existing caches stay valid); a
    data-parallel one adds its process count. On CUDA the key holds the GPU model, the process count
    and CUDA settings, not the host CPU or its threads, so identical GPU nodes share artefacts."""
    assert Cache(tmp_path).settings() == machine() == machine("cpu", 1) == {"threads": torch.get_num_threads(), "cpu": cache_module._cpu_model(),
                                                                           "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY")}
    assert machine("cpu", 2) == {**machine(), "processes": 2}
    compute = Counter()
    one, two = (Cache(tmp_path, "cpu", p).get("train", "1", CONFIG, compute) for p in (1, 2))
    assert one.path != two.path and two.machine["processes"] == 2 and compute.calls == 2
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    gpu = machine(torch.device("cuda"), 8)
    assert gpu["gpu"] == "NVIDIA H100 80GB HBM3" and gpu["processes"] == 8 and not {"cpu", "threads", "aten_cpu_capability"} & set(gpu)
    monkeypatch.setattr(cache_module, "_cpu_model", lambda: "Another CPU")
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        assert machine("cuda", 8) == gpu  # another host CPU and thread count: the same key
    finally:
        torch.set_num_threads(threads)
    assert machine("cuda", 4) != gpu


def test_cpu_model_comes_from_proc_cpuinfo():
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")] if cpuinfo.exists() else []
    model = cache_module._cpu_model()
    assert model and (not names or model == names[0])


# --------------------------------------------------------------------------------- checksummed manifests


def test_edited_manifest_is_recomputed_never_served(tmp_path):
    """The audit's case: a hand-edited metric in a manifest (0.46 -> 0.96) used to be served."""
    cache = Cache(tmp_path)
    art = cache.get("retrain", "1", CONFIG, lambda folder: {"top1": 0.46})
    path = art.file(MANIFEST)
    path.write_text(path.read_text().replace("0.46", "0.96"))
    assert cache.load("retrain", "1", CONFIG) is None
    again = cache.get("retrain", "1", CONFIG, lambda folder: {"top1": 0.47})
    assert not again.cached and again.info == {"top1": 0.47}
    assert cache.get("retrain", "1", CONFIG, lambda folder: {"top1": 0.0}).info == {"top1": 0.47}


def test_every_bit_flip_in_a_manifest_or_its_digest_means_recompute(tmp_path):
    cache = Cache(tmp_path)
    art = cache.get("train", "1", CONFIG, Counter())
    for name in (MANIFEST, MANIFEST_DIGEST):
        original = art.file(name).read_bytes()
        for position in range(len(original)):
            raw = bytearray(original)
            raw[position] ^= 0x01
            art.file(name).write_bytes(bytes(raw))
            assert cache.load("train", "1", CONFIG) is None, (name, position)
        art.file(name).write_bytes(original)
        assert cache.load("train", "1", CONFIG) is not None


@pytest.mark.parametrize("edit", ["drop info", "drop machine", "files as a list", "seconds as text", "delete the digest"])
def test_manifest_with_a_matching_digest_but_bad_fields_is_recomputed_not_a_crash(tmp_path, edit):
    """Even a manifest rewritten together with its digest must not raise KeyError or serve junk."""
    cache = Cache(tmp_path)
    art = cache.get("train", "1", CONFIG, Counter())
    manifest = json.loads(art.file(MANIFEST).read_text())
    if edit == "drop info":
        del manifest["info"]
    elif edit == "drop machine":
        del manifest["machine"]
    elif edit == "files as a list":
        manifest["files"] = list(manifest["files"])
    elif edit == "seconds as text":
        manifest["seconds"] = "fast"
    text = json.dumps(manifest).encode()
    art.file(MANIFEST).write_bytes(text)
    art.file(MANIFEST_DIGEST).write_text(hashlib.sha256(text).hexdigest() + "\n")
    if edit == "delete the digest":
        art.file(MANIFEST_DIGEST).unlink()
    assert cache.load("train", "1", CONFIG) is None
    assert not cache.get("train", "1", CONFIG, Counter(3.0)).cached


# --------------------------------------------------------------------------------- concurrency


def test_writer_that_loses_the_race_uses_the_winners_copy(tmp_path):
    """While this writer computes, another one installs the same key: this one must keep the
    winner's artefact (not delete it), discard its own copy and return the winner's values."""
    cache = Cache(tmp_path)

    def slow(folder):
        winner = Cache(tmp_path).get("train", "1", CONFIG, Counter(7.0))  # the other process, finishing first
        assert not winner.cached
        return Counter(8.0)(folder)

    art = cache.get("train", "1", CONFIG, slow)
    assert art.cached and art.info["value"] == 7.0
    assert np.array_equal(np.load(art.file("x.npy")), np.full(5, 7.0))
    assert cache.load("train", "1", CONFIG).info["value"] == 7.0
    assert [p.name for p in (tmp_path / "train").iterdir()] == [art.path.name]  # the loser's copy is gone


def _race_worker(root, keys, barrier, worker, results):
    """One process of the race: get every key (value = worker id) and read back what it got."""
    cache, seen, errors = Cache(root), {}, []
    for key in keys:
        barrier.wait()
        try:
            art = cache.get("train", "1", {"key": key}, Counter(float(worker)))
            seen[key] = float(np.load(art.file("x.npy"))[0])
            assert art.info["value"] == seen[key]
        except Exception as err:  # reported to the parent, which fails the test with it
            errors.append(f"{type(err).__name__}: {err}")
    results.put((worker, seen, errors))


def test_many_processes_writing_the_same_keys(tmp_path):
    """4 processes get the same 25 keys at once (a barrier per key), 5 of them pre-corrupted: no
    ENOTEMPTY, no FileNotFoundError, and every process reads the one artefact that stays."""
    keys = list(range(25))
    for key in keys[:5]:
        damaged = Cache(tmp_path).get("train", "1", {"key": key}, Counter(-1.0))
        damaged.file("x.npy").write_bytes(b"corrupted")
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_race_worker, args=(tmp_path, keys, barrier, w, results)) for w in range(4)]
    for process in workers:
        process.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for process in workers:
        process.join(timeout=60)
    assert [e for _, _, errors in outcomes for e in errors] == []
    cache = Cache(tmp_path)
    for key in keys:
        values = {seen[key] for _, seen, _ in outcomes}
        on_disk = cache.load("train", "1", {"key": key})
        assert on_disk is not None and values == {on_disk.info["value"]} and values <= {0.0, 1.0, 2.0, 3.0}
    assert not [p for p in (tmp_path / "train").iterdir() if p.name.startswith(".tmp")]


# --------------------------------------------------------------------------------- stale temporaries


def test_stale_temporaries_are_removed_on_the_next_write(tmp_path):
    cache = Cache(tmp_path)
    cache.get("train", "1", CONFIG, Counter())
    stage = tmp_path / "train"
    old = time.time() - STALE_SECONDS - 60
    stale, fresh, live = (stage / f".tmp-{name}" for name in ("killed-run", "running-now", "running-for-days"))
    for folder in (stale, fresh, live):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "part.npy").write_bytes(b"x")
    os.utime(stale, (old, old))
    os.utime(live, (old, old))
    with cache_module._locked(live):  # a live writer holds its temporary folder, however old
        cache.get("train", "1", {**CONFIG, "seed": 1}, Counter())
    assert not stale.exists() and fresh.exists() and live.exists()
    cache.get("embed", "1", CONFIG, Counter())  # another stage's write leaves this stage alone
    assert fresh.exists() and live.exists()


# --------------------------------------------------------------------------------- log lines


def test_one_log_line_per_computed_artefact_and_one_per_stage_for_cache_reads(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SCORECAST_QUIET", raising=False)
    cache = Cache(tmp_path)
    arts = [cache.get("train", "1", {**CONFIG, "seed": seed}, Counter()) for seed in range(3)]
    out, err = capsys.readouterr()
    assert out == "".join(f"[scorecast] train {a.path.name[:8]}: computed in {a.seconds:.1f} s\n" for a in arts) and err == ""
    reader = Cache(tmp_path)  # a notebook re-run: every artefact read from the cache
    for _ in range(2):
        for seed in range(3):
            assert reader.get("train", "1", {**CONFIG, "seed": seed}, Counter()).cached
    reader.get("embed", "1", CONFIG, Counter())
    reader.get("embed", "1", CONFIG, Counter())
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == f"[scorecast] train: reading from cache (first {arts[0].path.name[:8]}, computed in {arts[0].seconds:.1f} s); further reads not logged"
    assert len(lines) == 3 and lines[1].startswith("[scorecast] embed ") and lines[1].endswith(" s")  # embed computed once, then read silently
    assert lines[2].startswith("[scorecast] embed: reading from cache")
    monkeypatch.setenv("SCORECAST_QUIET", "1")
    Cache(tmp_path).get("train", "1", CONFIG, Counter())
    Cache(tmp_path).get("train", "1", {**CONFIG, "seed": 5}, Counter())
    assert capsys.readouterr() == ("", "")


def test_progress_bars_close_at_their_total(monkeypatch):
    """tqdm redraws at most every 0.1 s: a fast loop's last drawing used to stop short of its total, and a
    notebook saved the bar that way. Every drawing of the bar is recorded here (a notebook's widget or a
    terminal's line alike)."""
    import tqdm

    from scorecast import train

    drawn = []

    class Recorded(tqdm.tqdm):
        def display(self, msg=None, pos=None):
            if msg is None:  # a drawing of the bar (msg "" clears it)
                drawn.append((self.n, self.total))
            return True

    monkeypatch.delenv("SCORECAST_QUIET", raising=False)
    monkeypatch.setattr(train, "tqdm", Recorded)
    assert list(train.progress(range(50), "fast")) == list(range(50))
    assert drawn[-1] == (50, 50)
    drawn.clear()
    assert list(train.progress(iter(range(7)), "no len", total=7)) == list(range(7)) and drawn[-1] == (7, 7)
    drawn.clear()
    monkeypatch.setenv("SCORECAST_QUIET", "1")
    assert list(train.progress(range(3), "quiet")) == [0, 1, 2] and drawn == []


def _count_hashes(monkeypatch):
    calls = []
    real = cache_module._sha256
    monkeypatch.setattr(cache_module, "_sha256", lambda path: calls.append(path.name) or real(path))
    return calls


def test_lookups_hash_once_then_trust_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "RACY_SECONDS", 0.0)
    cache = Cache(tmp_path)
    art = cache.get("train", "1", CONFIG, Counter())
    hashes = _count_hashes(monkeypatch)
    assert cache.load("train", "1", CONFIG) is not None and sorted(hashes) == ["note.txt", "x.npy"]  # first lookup: full check
    recorded = json.loads(art.file(cache_module.VERIFIED).read_text())["files"]
    assert recorded["x.npy"] == [art.file("x.npy").stat().st_size, art.file("x.npy").stat().st_mtime_ns]
    hashes.clear()
    assert cache.get("train", "1", CONFIG, Counter()).cached and hashes == []  # later lookups: stat only
    np.save(art.file("x.npy"), np.full(5, 7.0))  # same size, new content and mtime: hashed, refused
    assert cache.load("train", "1", CONFIG) is None and hashes == ["x.npy"]


def test_an_artefact_written_before_verified_json_is_served_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "RACY_SECONDS", 0.0)
    cache = Cache(tmp_path)
    art = cache.get("train", "1", CONFIG, Counter())
    manifest = json.loads(art.file(MANIFEST).read_text())
    assert set(manifest["files"]["x.npy"]) == {"size", "sha256"}  # the manifest format is unchanged
    assert not art.file(cache_module.VERIFIED).exists()
    hashes = _count_hashes(monkeypatch)
    assert cache.load("train", "1", CONFIG).path == art.path and len(hashes) == 2
    assert cache.load("train", "1", CONFIG) is not None and len(hashes) == 2


def test_a_same_tick_rewrite_is_hashed_again(tmp_path):
    cache = Cache(tmp_path)
    art = cache.get("train", "1", CONFIG, Counter())
    assert cache.load("train", "1", CONFIG) is not None  # records sizes and mtimes within RACY_SECONDS of now
    target = art.file("x.npy")
    before = target.stat()
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # the same mtime, as a coarse clock would give
    assert cache.load("train", "1", CONFIG) is None


def test_verify_rehashes_what_size_and_mtime_cannot_see(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cache_module, "RACY_SECONDS", 0.0)
    cache = Cache(tmp_path)
    good = cache.get("train", "1", CONFIG, Counter())
    bad = cache.get("embed", "1", CONFIG, Counter())
    assert cache.load("embed", "1", CONFIG) is not None
    target = bad.file("x.npy")
    before = target.stat()
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # bit rot: size and mtime unchanged
    assert cache.load("embed", "1", CONFIG) is not None  # a lookup cannot see it ...
    assert cache_module.verify(tmp_path) == (2, [bad.path])  # ... the full verify does
    assert cache_module.main(["verify", str(tmp_path)]) == 1
    assert str(bad.path) in capsys.readouterr().err and good.path.exists()
    target.write_bytes(bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF])))
    assert cache_module.main(["verify", str(tmp_path)]) == 0

"""Scale paths: memory-mapped datasets, approximate kNN backends, mini-batch GCN training."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from scorecast import data as D
from scorecast import extrapolate as E
from scorecast.metrics import spearman
from scorecast.validation import ScorecastError


@pytest.fixture
def imagenet64_root(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(1, 11):
        np.savez(tmp_path / f"train_data_batch_{i}.npz", data=rng.integers(0, 256, (6, 12288), dtype=np.uint8), labels=rng.integers(1, 4, 6))
    return tmp_path


def test_memory_mapped_load_equals_in_memory_load(imagenet64_root, tmp_path):
    memory = D.load_dataset("imagenet64", "train", imagenet64_root)
    mapped = D.load_dataset("imagenet64", "train", imagenet64_root, mmap=tmp_path / "mm")
    assert torch.equal(memory.images, mapped.images) and torch.equal(memory.labels, mapped.labels)
    assert memory.classes == mapped.classes and memory.fingerprint() == mapped.fingerprint()
    batches = [D.batches(ds, np.arange(60), 16, train=True, generator=torch.Generator().manual_seed(3)) for ds in (memory, mapped)]
    for a, b in zip(*batches):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    for f in imagenet64_root.glob("*.npz"):  # later loads read only the converted file
        f.unlink()
    again = D.load_dataset("imagenet64", "train", imagenet64_root, mmap=tmp_path / "mm")
    assert torch.equal(again.images, memory.images)


def test_memory_mapped_channels_last_npz_and_option_mismatch(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "train.npz", image=rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8), label=rng.integers(0, 4, 12))
    memory = D.load_dataset("npz", "train", tmp_path, num_classes=4, crop=8, pad=1)
    mapped = D.load_dataset("npz", "train", tmp_path, num_classes=4, crop=8, pad=1, mmap=str(tmp_path / "mm"))
    assert mapped.images.shape == (12, 3, 8, 8) and torch.equal(memory.images, mapped.images)
    with pytest.raises(ScorecastError, match="data.mmap.*delete that folder"):
        D.load_dataset("npz", "train", tmp_path, num_classes=5, crop=8, mmap=str(tmp_path / "mm"))


def test_fingerprint_is_the_whole_array_hash():
    """Cache keys depend on it: the chunked hash must equal hashing all bytes at once."""
    dataset = D.load_dataset("digits", "train")
    digest = hashlib.blake2b(digest_size=16)
    digest.update(dataset.images.numpy().tobytes())
    digest.update(dataset.labels.numpy().astype(np.int64).tobytes())
    assert dataset.fingerprint() == digest.hexdigest()


@pytest.mark.parametrize("backend", ["ivf", "hnsw"])
def test_approximate_backends_recall(backend):
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(3000, 16)).astype(np.float32)
    exact = E.knn_graph(Z, 10, backend="torch", device="cpu").indices
    found = E.knn_graph(Z, 10, backend=backend, device="cpu").indices
    recall = np.mean([np.isin(e, f).mean() for f, e in zip(found, exact)])
    assert recall > 0.9 and (found != np.arange(3000)[:, None]).all()


def test_knn_default_backend_on_cpu_is_faiss():
    rng = np.random.default_rng(3)
    Z, idx = rng.normal(size=(400, 8)).astype(np.float32), np.arange(0, 400, 4)
    scores = rng.random(idx.size)
    assert np.array_equal(E.knn(Z, idx, scores), E.knn(Z, idx, scores, backend="faiss", device="cpu"))


def _smooth_problem(n: int = 1200):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(n, 8)).astype(np.float32)
    truth = np.sin(Z[:, 0]) + 0.5 * Z[:, 1] ** 2
    idx = np.sort(rng.choice(n, n // 5, replace=False))
    return Z, idx, truth[idx], E.knn_graph(Z, 10, device="cpu")


def test_whole_graph_forward_equals_pyg_gcn():
    """The mini-batch model's exact forward is GCNConv's maths: same weights, same outputs."""
    Z, _, _, graph = _smooth_problem(300)
    x, dims = torch.from_numpy(Z), [8, 16, 8, 1]
    torch.manual_seed(0)
    ours = E.graph._BlockStack(dims, 0.5, E.graph._SampledGCNLayer).eval()
    pyg = E.graph._Stack(dims, 0.5, E.graph._gcn_conv).eval()
    pyg.load_state_dict(ours.state_dict())
    sources, weights = E.graph._normalised_edges(graph, 10)
    with torch.no_grad(), torch.sparse.check_sparse_tensor_invariants(False):
        expected = pyg(x, graph.adjacency(10))
        got = ours(x, [(torch.from_numpy(sources), torch.from_numpy(weights))])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_mini_batch_gnn_tracks_full_batch():
    """Measured Spearman with the full-batch result on the unscored nodes of this problem: 0.982 (fanout 5)."""
    Z, idx, scores, graph = _smooth_problem()
    common = dict(k=10, graph=graph, hidden=(64, 32), device="cpu")
    full = E.gnn(Z, idx, scores, epochs=60, **common)
    mini = E.gnn(Z, idx, scores, epochs=20, batch_size=32, **common)
    rest = np.setdiff1d(np.arange(len(Z)), idx)
    assert np.array_equal(mini[idx], scores)
    assert spearman(mini[rest], full[rest]) > 0.9
    assert np.array_equal(mini, E.gnn(Z, idx, scores, epochs=20, batch_size=32, **common))


@pytest.mark.parametrize("option", [{"batch_size": 0}, {"batch_size": 8, "fanout": 0}, {"batch_size": 8, "k": 20}])
def test_mini_batch_gnn_bad_options(option):
    Z, idx, scores, graph = _smooth_problem(200)
    with pytest.raises(ScorecastError):
        E.gnn(Z, idx, scores, graph=graph, epochs=1, device="cpu", **{"k": 10, **option})


def test_memory_mapped_places365_streams_in_parts(tmp_path, monkeypatch):
    from scorecast.data import places365
    from scorecast.data.folders import decode_images
    from scorecast.dryrun import write_places365

    write_places365(tmp_path / "places", n_train=9, n_test=2, present=3)
    decoded = []  # images per decode call

    def decode(paths, resize):
        decoded.append(len(paths))
        return decode_images(paths, resize)

    monkeypatch.setattr(places365, "PLACES_PART", 4)  # 9 images in parts of 4, 4, 1
    monkeypatch.setattr(places365, "decode_images", decode)
    memory = D.load_dataset("places365", "train", tmp_path / "places", resize=72)
    mapped = D.load_dataset("places365", "train", tmp_path / "places", resize=72, mmap=tmp_path / "mm")
    assert decoded == [9, 4, 4, 1]
    assert mapped.images.shape == (9, 3, 72, 72)
    assert torch.equal(memory.images, mapped.images) and torch.equal(memory.labels, mapped.labels)

"""Unsupervised paradigm: label-free encoders, TURTLE clustering and its recorded dynamics."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from scorecast.data import load_dataset
from scorecast.metrics import cluster_accuracy
from scorecast.scores import dynamic_uncertainty
from scorecast.train import embed
from scorecast.unsupervised import check_label_free, encode, nt_xent, simclr_views, train_simclr, turtle
from scorecast.validation import ScorecastError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_turtle(digits):
    """TURTLE at its paper settings (400 epochs; one batch = all 1437 samples) on digit pixels."""
    return turtle(encode(digits, "pixels"), 10, epochs=400, seed=0, device="cpu")


def test_turtle_recovers_digit_classes(digits, digits_turtle):
    result = digits_turtle
    n = len(digits)
    assert result.final_softmax.shape == (n, 10) and result.true_prob.shape == (400, n)
    np.testing.assert_allclose(result.final_softmax.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.pseudo_labels, result.final_softmax.argmax(1))
    np.testing.assert_array_equal(result.true_prob[-1], np.take_along_axis(result.final_softmax, result.pseudo_labels[:, None], 1)[:, 0])
    # measured 0.781 (seeds 0-2: 0.74-0.78; chance 0.1); labels are used only for this evaluation
    assert cluster_accuracy(digits.labels.numpy(), result.pseudo_labels) > 0.6
    with torch.no_grad():
        logits = result.task_encoder(torch.from_numpy(encode(digits, "pixels")))
    np.testing.assert_allclose(logits.softmax(1).numpy(), result.final_softmax, atol=1e-5)


def test_dynamic_uncertainty_on_turtle_dynamics(digits_turtle):
    du = dynamic_uncertainty(digits_turtle.true_prob, window=10)
    assert du.shape == (digits_turtle.true_prob.shape[1],) and np.isfinite(du).all() and du.max() > 0


def test_turtle_is_deterministic_and_records_to_disk(digits, tmp_path):
    Z = encode(digits, "pca", n_components=20)[:300]
    first = turtle(Z, 5, epochs=5, batch_size=128, seed=3, device="cpu", record_dir=tmp_path)
    second = turtle(Z, 5, epochs=5, batch_size=128, seed=3, device="cpu")
    assert isinstance(first.true_prob, np.memmap) and (tmp_path / "pseudo_labels.npy").is_file()
    # records sized to what the scores read: q_t (E, n), the final tau (n, C), no (E, n, C) trajectory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pseudo_labels.npy", "softmax.npy", "true_prob.npy"]
    assert np.load(tmp_path / "softmax.npy").shape == (300, 5)
    np.testing.assert_array_equal(first.final_softmax, second.final_softmax)
    np.testing.assert_array_equal(first.true_prob, second.true_prob)
    np.testing.assert_array_equal(np.load(tmp_path / "pseudo_labels.npy"), second.pseudo_labels)
    other = turtle(Z, 5, epochs=5, batch_size=128, seed=4, device="cpu")
    assert not np.array_equal(first.final_softmax, other.final_softmax)


def test_q_t_recomputed_from_the_encoder_maps_equals_each_epochs_own_tau(digits):
    # a run stopped after epoch t has the same trajectory up to t: its final tau is tau_t of the longer run
    Z = encode(digits, "pca", n_components=20)[:300]
    full = turtle(Z, 5, epochs=6, batch_size=128, seed=3, device="cpu")
    for t in (0, 3):
        stopped = turtle(Z, 5, epochs=t + 1, batch_size=128, seed=3, device="cpu")
        np.testing.assert_array_equal(full.true_prob[t], np.take_along_axis(stopped.final_softmax, full.pseudo_labels[:, None], 1)[:, 0])


@pytest.mark.parametrize("options", [{"warm_start": False}, {"normalize": "l2"}, {"normalize": "standard"}])
def test_turtle_variants_run(digits, options):
    result = turtle(encode(digits, "pixels")[:200], 4, epochs=3, seed=0, device="cpu", **options)
    assert result.true_prob.shape == (3, 200) and np.isfinite(result.true_prob).all()


def test_turtle_rejects_bad_input():
    Z = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ScorecastError, match="num_clusters"):
        turtle(Z, 1)
    with pytest.raises(ScorecastError, match="normalize"):
        turtle(Z, 2, normalize="minmax")
    with pytest.raises(ScorecastError, match="gamma"):
        turtle(Z, 2, gamma=-1.0)
    with pytest.raises(ScorecastError, match="NaN"):
        turtle(np.full((4, 2), np.nan), 2)


def test_cluster_accuracy_hungarian_matching():
    truth = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_accuracy(truth, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    # clusters {a: 0,0,1}, {b: 1,2}, {c: 2}: best matching a->0, b->1, c->2 gets 2 + 1 + 1 of 6
    assert cluster_accuracy(truth, np.array([5, 5, 5, 7, 7, 1])) == pytest.approx(4 / 6)


def test_check_label_free():
    check_label_free({"encoder": "pixels", "extrapolator": {"name": "gnn", "labels": None}, "use_labels": False})
    with pytest.raises(ScorecastError, match=r"config\.extrapolator\.labels"):
        check_label_free({"extrapolator": {"name": "gnn", "labels": "true"}})
    with pytest.raises(ScorecastError, match=r"config\.stages\.1\.use_labels"):
        check_label_free({"stages": [{}, {"use_labels": True}]})


def test_encoders_give_finite_features(digits):
    n = len(digits)
    assert encode(digits, "pixels").shape == (n, 64)
    pca = encode(digits, "pca", n_components=12, seed=1)
    assert pca.shape == (n, 12) and pca.dtype == np.float32
    np.testing.assert_array_equal(pca, encode(digits, "pca", n_components=12, seed=1))
    with pytest.raises(ScorecastError, match="choose one of"):
        encode(digits, "clip")
    with pytest.raises(ScorecastError, match="n_components"):
        encode(digits, "pca", n_component=5)


def test_simclr_tiny_run(digits):
    subset = np.arange(300)
    model = train_simclr(digits, epochs=1, seed=0, batch_size=64, indices=subset, device="cpu")
    features = encode(digits, "simclr", device="cpu", model=model)
    assert features.shape == (len(digits), model.embedding_dim) and np.isfinite(features).all()
    with pytest.raises(ScorecastError, match="no effect"):
        encode(digits, "simclr", model=model, epochs=3)
    generator = torch.Generator().manual_seed(0)
    views = simclr_views(digits, digits.images[:8], generator)
    assert views.shape == (8, 1, 8, 8) and torch.isfinite(views).all()


def test_simclr_learns_useful_features(digits):
    test = load_dataset("digits", "test")
    model = train_simclr(digits, epochs=4, seed=0, device="cpu")
    generator = torch.Generator().manual_seed(1)
    images = digits.images[:256]
    with torch.no_grad():  # NT-Xent of 256 image pairs: log(511) = 6.24 untrained, measured 5.58
        loss = nt_xent(model(torch.cat([simclr_views(digits, images, generator) for _ in range(2)])), 0.5)
    assert loss < np.log(511) - 0.3
    # labels are used only to evaluate the frozen features; measured kNN accuracy 0.96 (chance 0.1)
    knn = KNeighborsClassifier(5).fit(embed(model, digits, device="cpu"), digits.labels.numpy())
    assert knn.score(embed(model, test, device="cpu"), test.labels.numpy()) > 0.5


def test_dinov2_without_internet_raises_a_clear_error(digits, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.raises(ScorecastError, match=r"internet access once.*'pixels', 'pca' or 'simclr'"):
        encode(digits, "dinov2")


def test_dinov2_feeds_224px_imagenet_normalised_rgb(digits, monkeypatch):
    seen = []

    class FakeDino(torch.nn.Module):  # stands in for the hub model: CLS features = channel means
        def forward(self, x):
            seen.append(tuple(x.shape[1:]))
            return x.mean((2, 3))

    monkeypatch.setattr(torch.hub, "load", lambda repo, arch, **kwargs: FakeDino())
    few = dataclasses.replace(digits, images=digits.images[:100], labels=digits.labels[:100], _fingerprint=None)
    features = encode(few, "dinov2", device="cpu", batch_size=64)
    assert features.shape == (100, 3) and set(seen) == {(3, 224, 224)}
    gray = few.images.float().mean((1, 2, 3)).numpy() / 255.0  # bicubic resizing keeps the mean (nearly)
    np.testing.assert_allclose(features[:, 0], (gray - 0.485) / 0.229, atol=0.1)

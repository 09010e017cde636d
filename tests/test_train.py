"""scorecast.train: recorded dynamics checked by hand on a linear model, determinism, PGD and
adversarial training, and bad input."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from scorecast.data import Augmentation, ImageDataset, load_dataset
from scorecast.models import Classifier, build_model
from scorecast.data import transform_batch
from scorecast.train import PGD, Dynamics, Recipe, RecordSpec, embed, predict, resolve_device, softmax_outputs, train, view_softmax
from scorecast.validation import ScorecastError

# ----------------------------------------------------------------------------------------------
# A model whose forward pass we can compute by hand: features = flatten (no parameters, no BN,
# no dropout, so train and eval mode agree), head = linear. Images are 1x2x2 with mean 0 / std 1,
# no padding, no flip, crop = full size, so the train transform is the identity map x = pixel/255.

PIXELS = np.array(
    [
        [[10, 200], [30, 40]],
        [[250, 0], [90, 120]],
        [[5, 5], [255, 60]],
        [[128, 64], [32, 16]],
        [[0, 100], [200, 50]],
    ],
    dtype=np.uint8,
)[:, None]  # (5, 1, 2, 2)
LABELS = np.array([0, 2, 1, 2, 1])
N_CLASSES = 3


def toy_dataset():
    return ImageDataset(
        "toy", torch.from_numpy(PIXELS.copy()), torch.from_numpy(LABELS.copy()), ["a", "b", "c"],
        (0.0,), (1.0,), Augmentation(crop=2, pad=0, flip=False),
    )


def toy_model(seed=0):
    torch.manual_seed(seed)
    return Classifier(nn.Flatten(), 4, N_CLASSES)


def _params(model):
    return model.head.weight.detach().double().numpy().copy(), model.head.bias.detach().double().numpy().copy()


def _softmax(W, b, X):
    z = X @ W.T + b
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _sgd_step(W, b, X, y, lr):
    """One plain SGD step on the mean cross-entropy of the batch (X, y), by hand."""
    P = _softmax(W, b, X)
    G = P - np.eye(N_CLASSES)[y]
    return W - lr * G.T @ X / len(y), b - lr * G.mean(0)


def _features(idx):
    return PIXELS[idx].reshape(len(idx), -1).astype(np.float64) / 255.0


LR = 2.0
SGD = dict(optimizer="sgd", lr=LR, momentum=0.0, weight_decay=0.0)


def _check_consistency(dyn, view="clean"):
    tp, correct, loss = np.asarray(dyn.true_prob(view)), np.asarray(dyn.correct(view)), np.asarray(dyn.loss(view))
    np.testing.assert_allclose(loss, -np.log(tp), rtol=1e-5, atol=1e-6)
    return tp, correct, loss


def test_train_source_matches_hand_computation(tmp_path):
    ds, model = toy_dataset(), toy_model()
    W, b = _params(model)
    given = np.array([4, 1, 3])  # unsorted on purpose; one batch of 3 per epoch
    dyn = train(model, ds, given, Recipe(epochs=3, batch_size=8, **SGD), seed=0,
                record=RecordSpec("train", (0, 2)), record_dir=tmp_path / "dyn", device="cpu")
    assert isinstance(dyn, Dynamics)
    cols = np.array([1, 3, 4])
    np.testing.assert_array_equal(dyn.indices, cols)  # canonical order: sorted dataset positions
    assert dyn.epochs == 3 and dyn.views == ["clean"] and dyn.softmax_epochs == [0, 2]
    X, y = _features(cols), LABELS[cols]
    expected = []
    for _ in range(3):  # "train" records the training pass, i.e. the weights BEFORE this epoch's step
        expected.append(_softmax(W, b, X))
        W, b = _sgd_step(W, b, X, y, LR)
    expected = np.stack(expected)  # (E, m, C)
    tp, correct, _ = _check_consistency(dyn)
    assert tp.shape == (3, 3) and tp.dtype == np.float32
    np.testing.assert_allclose(tp, expected[:, np.arange(3), y], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(correct, expected.argmax(2) == y)
    sm = np.asarray(dyn.softmax())
    assert sm.shape == (2, 3, N_CLASSES)
    np.testing.assert_allclose(sm, expected[[0, 2]], rtol=1e-5, atol=1e-6)
    # the model ends with the weights after three steps
    np.testing.assert_allclose(_params(model)[0], W, rtol=1e-5, atol=1e-6)
    # read back from disk by a fresh object: same arrays
    again = Dynamics(tmp_path / "dyn")
    np.testing.assert_array_equal(np.asarray(again.true_prob()), tp)


def test_eval_source_matches_hand_computation(tmp_path):
    ds, model = toy_dataset(), toy_model(1)
    W, b = _params(model)
    cols = np.array([0, 2, 4])
    dyn = train(model, ds, cols, Recipe(epochs=3, batch_size=8, **SGD), seed=3,
                record=RecordSpec("eval", (1,)), record_dir=tmp_path / "dyn", device="cpu")
    X, y = _features(cols), LABELS[cols]
    expected = []
    for _ in range(3):  # "eval" records after each epoch, i.e. the weights AFTER the step
        W, b = _sgd_step(W, b, X, y, LR)
        expected.append(_softmax(W, b, X))
    expected = np.stack(expected)
    tp, correct, _ = _check_consistency(dyn)
    np.testing.assert_allclose(tp, expected[:, np.arange(3), y], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(correct, expected.argmax(2) == y)
    np.testing.assert_allclose(np.asarray(dyn.softmax())[0], expected[1], rtol=1e-5, atol=1e-6)


def test_train_source_per_step_with_shuffled_batches(tmp_path):
    # batch size 1: each sample is recorded with the weights of the step at which it was drawn.
    # Whatever the shuffled order, the records must match one of the 2**3 possible orderings.
    ds, model = toy_dataset(), toy_model(2)
    W0, b0 = _params(model)
    cols = np.array([1, 2])
    dyn = train(model, ds, cols, Recipe(epochs=3, batch_size=1, **SGD), seed=0,
                record=RecordSpec("train", (0, 1, 2)), record_dir=tmp_path / "dyn", device="cpu")
    tp = np.asarray(dyn.true_prob())
    X, y = _features(cols), LABELS[cols]
    matches = []
    for orders in itertools.product([(0, 1), (1, 0)], repeat=3):
        W, b = W0, b0
        sim = np.zeros((3, 2))
        for epoch, order in enumerate(orders):
            for j in order:
                sim[epoch, j] = _softmax(W, b, X[j : j + 1])[0, y[j]]
                W, b = _sgd_step(W, b, X[j : j + 1], y[j : j + 1], LR)
        if np.allclose(sim, tp, rtol=1e-5, atol=1e-6):
            matches.append(orders)
    assert len(matches) == 1, f"records match {len(matches)} orderings"


def test_adversarial_train_source_views(tmp_path):
    # Hook the model to capture, for each training pass (train mode, with grad), the weights and
    # the adversarial input it saw. The adv view records that pass; the clean view of the same
    # epoch must describe the same model (the weights before the optimizer step), on the clean
    # (augmented) batch, so the two views of one epoch are comparable.
    ds, model = toy_dataset(), toy_model(3)
    seen = []

    def hook(module, inputs, output):
        if module.training and torch.is_grad_enabled():
            seen.append((_params(module), inputs[0].detach().double().flatten(1).numpy().copy()))

    model.register_forward_hook(hook)
    cols = np.array([0, 1, 3])
    attack = PGD(eps=0.1, step=0.05, steps=2)
    dyn = train(model, ds, cols, Recipe(epochs=3, batch_size=8, **SGD), seed=0, attack=attack,
                record=RecordSpec("train", (0, 1, 2)), record_dir=tmp_path / "dyn", device="cpu")
    assert dyn.views == ["clean", "adv"]
    assert len(seen) == 3  # one training pass per epoch (PGD runs in eval mode)
    y = LABELS[cols]
    X = _features(cols)
    for epoch, ((W, b), x_in) in enumerate(seen):
        # the batch order is shuffled: find each recorded sample's row in the batch
        rows = [int(np.argmin(np.abs(x_in - X[j]).sum(1))) for j in range(3)]
        adv = _softmax(W, b, x_in[rows])
        assert np.all(np.abs(x_in[rows] - X).max(1) <= 0.1 + 1e-6)
        np.testing.assert_allclose(np.asarray(dyn.softmax("adv"))[epoch], adv, rtol=1e-5, atol=1e-6)
        clean = _softmax(W, b, X)
        np.testing.assert_allclose(np.asarray(dyn.true_prob("clean"))[epoch], clean[np.arange(3), y], rtol=1e-5, atol=1e-6)
    _check_consistency(dyn, "adv")
    _check_consistency(dyn, "clean")


# ----------------------------------------------------------------------------------------------
# determinism on real data


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def _digits_run(ds, seed, folder, source="train"):
    model = build_model("tiny_cnn", ds.num_classes, ds.in_channels, seed=seed)
    idx = np.arange(0, 400, 2)
    dyn = train(model, ds, idx, Recipe(epochs=2, batch_size=64), seed=seed,
                record=RecordSpec(source, (1,)), record_dir=folder, device="cpu")
    return model, dyn


def test_same_seed_identical_different_seed_not(digits, tmp_path):
    ds = digits[0]
    m1, d1 = _digits_run(ds, 0, tmp_path / "a")
    m2, d2 = _digits_run(ds, 0, tmp_path / "b")
    m3, d3 = _digits_run(ds, 1, tmp_path / "c")
    for kind in ("true_prob", "correct", "loss", "softmax"):
        assert np.array_equal(getattr(d1, kind)(), getattr(d2, kind)()), kind
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not np.array_equal(d1.true_prob(), d3.true_prob())
    assert not torch.equal(m1.head.weight, m3.head.weight)
    tp = np.asarray(d1.true_prob())
    assert tp.shape == (2, 200) and np.all((tp >= 0) & (tp <= 1))
    np.testing.assert_array_equal(d1.indices, np.arange(0, 400, 2))
    sm = np.asarray(d1.softmax())
    np.testing.assert_allclose(sm.sum(2), 1.0, atol=1e-5)
    np.testing.assert_allclose(sm[0][np.arange(200), ds.labels[d1.indices].numpy()], tp[1], rtol=1e-6)


def test_eval_source_equals_predict_after_training(digits, tmp_path):
    ds = digits[0]
    model, dyn = _digits_run(ds, 0, tmp_path / "e", source="eval")
    logits, adv = predict(model, ds, dyn.indices, device="cpu")
    assert adv is None
    probs = logits.softmax(1).numpy()
    labels = ds.labels[dyn.indices].numpy()
    np.testing.assert_allclose(np.asarray(dyn.true_prob())[-1], probs[np.arange(len(labels)), labels], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(dyn.correct())[-1], probs.argmax(1) == labels)
    Z = embed(model, ds, dyn.indices[:10], device="cpu")
    assert Z.shape == (10, model.embedding_dim) and Z.dtype == np.float32
    with torch.no_grad():
        x = torch.stack([ds[int(i)][0] for i in dyn.indices[:10]])
        np.testing.assert_allclose(Z, model.embed(x).numpy(), rtol=1e-5, atol=1e-5)


def test_softmax_outputs_clean_and_augmented(digits):
    test_set = digits[1]
    model = build_model("tiny_cnn", 10, 1, seed=0).eval()
    clean = softmax_outputs(model, test_set, device="cpu")
    logits, _ = predict(model, test_set, device="cpu")
    assert clean.shape == (len(test_set), 10) and clean.dtype == np.float32
    np.testing.assert_allclose(clean, logits.softmax(1).numpy(), rtol=1e-5, atol=1e-6)
    aug = softmax_outputs(model, test_set, augment_seed=3, device="cpu")
    np.testing.assert_array_equal(aug, softmax_outputs(model, test_set, augment_seed=3, device="cpu"))
    assert not np.allclose(aug, clean)
    # canonical order, one train-time augmentation drawn with that seed (one batch: n < 512)
    x = transform_batch(test_set, test_set.images, train=True, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        np.testing.assert_allclose(aug, model(x).softmax(1).numpy(), rtol=1e-5, atol=1e-6)


def test_view_softmax_stacks_the_clean_view_and_seeded_augmentations(digits):
    test_set = digits[1]
    model = build_model("tiny_cnn", 10, 1, seed=0).eval()
    views = view_softmax(model, test_set, 3, device="cpu")
    assert views.shape == (3, len(test_set), 10) and views.dtype == np.float32
    np.testing.assert_array_equal(views[0], softmax_outputs(model, test_set, device="cpu"))
    for k in (1, 2):
        np.testing.assert_array_equal(views[k], softmax_outputs(model, test_set, augment_seed=k, device="cpu"))


def test_train_without_record_returns_none(digits):
    model = build_model("tiny_cnn", 10, 1, seed=0)
    assert train(model, digits[0], np.arange(50), Recipe(epochs=1, batch_size=32), seed=0, device="cpu") is None


# ----------------------------------------------------------------------------------------------
# PGD and adversarial training


def _pgd_check(model, ds, attack, x, y):
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    x_adv = attack.perturb(model, x, y, ds, torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert ((x_adv - x).abs() * std).max() <= attack.eps + 1e-6
    pixels = x_adv * std + mean
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    return x_adv


@pytest.fixture(scope="module")
def plain_model(digits):
    """tiny_cnn trained 5 epochs on all digits (seed 0), no attack."""
    model = build_model("tiny_cnn", 10, 1, seed=0)
    train(model, digits[0], np.arange(len(digits[0])), Recipe(epochs=5, batch_size=64), seed=0, device="cpu")
    return model.eval()


def test_pgd_increases_loss_within_the_eps_ball(digits, plain_model):
    test_set = digits[1]
    model = plain_model.eval()
    x = torch.stack([test_set[i][0] for i in range(64)])
    y = test_set.labels[:64]
    for attack in (PGD(eps=0.1, step=0.025, steps=5), PGD(eps=0.05, step=0.05, steps=1, random_start=False)):
        x_adv = _pgd_check(model, test_set, attack, x, y)
        # uniform noise of the same radius, for comparison: PGD must do much better than chance
        noise = (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1) * attack.eps / test_set.std[0]
        with torch.no_grad():
            clean_loss, adv_loss, noise_loss = (float(torch.nn.functional.cross_entropy(model(v), y)) for v in (x, x_adv, x + noise))
        # measured (tiny_cnn 16/32/64, 5 epochs): clean 0.45, noise 0.46-0.47, PGD 1.04 (1 step) / 1.90 (5 steps)
        assert adv_loss > 1.5 * clean_loss and adv_loss > noise_loss + 0.3, (clean_loss, noise_loss, adv_loss)
    assert not model.training  # mode left unchanged
    model.train()
    _pgd_check(model, test_set, PGD(eps=0.1, step=0.05, steps=2), x, y)
    assert model.training


def test_pgd_three_channel_bounds():
    # per-channel std/mean: the eps ball and [0, 1] box hold in pixel space for every channel
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (8, 3, 6, 6), dtype=np.uint8))
    images[:, :, :2] = 0
    images[:, :, -2:] = 255  # pixels at the box edges
    ds = ImageDataset("rgb", images, torch.arange(8) % 2, ["a", "b"], (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), Augmentation(6))
    model = build_model("tiny_cnn", 2, 3, seed=0).eval()
    x = torch.stack([ds[i][0] for i in range(8)])
    _pgd_check(model, ds, PGD(eps=0.3, step=0.1, steps=4), x, ds.labels)


def test_adversarial_training_is_more_robust(digits, plain_model):
    # tiny_cnn (16/32/64) on digits, 5 epochs, PGD eps 0.15 (step 0.075, 2 steps) in training;
    # evaluated by PGD-10 (step 0.0375). Measured over seeds 0-2: undefended robust top-1
    # 0.008-0.022 (clean 0.96), adversarially trained 0.32-0.39 (clean 0.79-0.86).
    train_set, test_set = digits
    idx = np.arange(len(train_set))
    evaluation = PGD(eps=0.15, step=0.0375, steps=10)
    labels = test_set.labels.numpy()
    robust = {}
    defended = build_model("tiny_cnn", 10, 1, seed=0)
    train(defended, train_set, idx, Recipe(epochs=5, batch_size=64), seed=0, attack=PGD(eps=0.15, step=0.075, steps=2), device="cpu")
    for name, model in (("plain", plain_model), ("adv", defended)):
        clean, adv = predict(model, test_set, attack=evaluation, device="cpu", seed=0)
        robust[name] = float((adv.argmax(1).numpy() == labels).mean())
        assert float((clean.argmax(1).numpy() == labels).mean()) > 0.6
    assert robust["adv"] > robust["plain"] + 0.15, robust


# ----------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": -2}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"epochs": 1, "batch_size": 0}, "batch_size"),
        ({"epochs": 1, "optimizer": "rmsprop"}, "optimizer"),
        ({"epochs": 1, "schedule": "step"}, "schedule"),
        ({"epochs": 1, "lr": 0.0}, "lr"),
        ({"epochs": 1, "lr": -1e-3}, "lr"),
    ],
)
def test_bad_recipe(kwargs, match):
    with pytest.raises(ScorecastError, match=match):
        Recipe(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": 0.0}, "eps"),
        ({"eps": -0.1}, "eps"),
        ({"eps": 0.6}, "eps"),
        ({"eps": 0.1, "step": 0.2}, "step"),
        ({"eps": 0.1, "step": 0.0}, "step"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_pgd(kwargs, match):
    with pytest.raises(ScorecastError, match=match):
        PGD(**kwargs)


def test_bad_record_and_train_arguments(tmp_path, monkeypatch):
    ds = toy_dataset()
    with pytest.raises(ScorecastError, match="record.source"):
        RecordSpec("test")
    for epochs in ((3,), (-1,), (0, 5)):
        with pytest.raises(ScorecastError, match="softmax_epochs"):
            train(toy_model(), ds, [0, 1], Recipe(epochs=3), 0, RecordSpec("train", epochs), tmp_path / "d", device="cpu")
    with pytest.raises(ScorecastError, match="record_dir"):
        train(toy_model(), ds, [0, 1], Recipe(epochs=1), 0, RecordSpec(), None, device="cpu")
    with pytest.raises(ScorecastError, match="empty"):
        train(toy_model(), ds, np.array([], dtype=np.int64), Recipe(epochs=1), 0, device="cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ScorecastError, match="CUDA"):
        train(toy_model(), ds, [0, 1], Recipe(epochs=1), 0, device="cuda")
    with pytest.raises(ScorecastError, match="CUDA"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_unknown_device_name_is_a_scorecast_error():
    # a typo such as "gpu" (params accept any string) should get the same clear message as an
    # unavailable CUDA device, not torch's bare RuntimeError from deep inside a training run
    with pytest.raises(ScorecastError, match="device"):
        resolve_device("gpu")


@pytest.mark.parametrize("source", ["train", "eval"])
def test_recording_every_second_epoch_keeps_exactly_those_epochs(digits, tmp_path, source):
    """RecordSpec(every=2) on a 4-epoch run records epochs 1 and 3 as rows 0 and 1 (softmax of row 1 =
    epoch 3); training itself is unchanged, so the rows equal those epochs of an every-epoch recording."""
    ds, idx = digits[0], np.arange(0, 300, 3)
    runs = {}
    for every in (1, 2):
        model = build_model("tiny_cnn", ds.num_classes, ds.in_channels, seed=0)
        runs[every] = train(model, ds, idx, Recipe(epochs=4, batch_size=50), seed=0, device="cpu",
                            record=RecordSpec(source, (3 // every,), every=every), record_dir=tmp_path / f"every{every}")
    every_epoch, every_second = runs[1], runs[2]
    assert every_second.epochs == 2 and np.asarray(every_second.true_prob()).shape == (2, len(idx))
    for kind in ("true_prob", "correct", "loss"):
        np.testing.assert_array_equal(getattr(every_second, kind)(), getattr(every_epoch, kind)()[[1, 3]], err_msg=kind)
    np.testing.assert_array_equal(every_second.softmax(), every_epoch.softmax())  # epoch 3: record 1 of 2, record 3 of 4


def test_record_every_must_divide_the_epochs(digits, tmp_path):
    ds = digits[0]
    model = build_model("tiny_cnn", ds.num_classes, ds.in_channels, seed=0)
    with pytest.raises(ScorecastError, match="must divide"):
        train(model, ds, np.arange(50), Recipe(epochs=3), seed=0, device="cpu", record=RecordSpec("train", (), every=2), record_dir=tmp_path)
    with pytest.raises(ScorecastError, match="record.every"):
        RecordSpec("train", (), every=0)


@pytest.mark.parametrize("source, attack", [("train", PGD(steps=1)), ("eval", None), ("eval", PGD(steps=1))])
def test_records_copied_per_epoch_equal_records_copied_per_batch(digits, tmp_path, source, attack):
    """Both views, both record sources: buffering a whole epoch before the host copy (the CUDA
    default) writes the arrays that per-batch copies (the CPU default) write, bit for bit."""
    ds = digits[0]
    runs = []
    for flush in ("batch", "epoch"):
        model = build_model("tiny_cnn", ds.num_classes, ds.in_channels, seed=0)
        runs.append(train(model, ds, np.arange(150), Recipe(epochs=2, batch_size=64), 0, RecordSpec(source, (0,)),
                          tmp_path / flush, attack=attack, device="cpu", record_flush=flush))
    assert runs[0].views == runs[1].views == (["clean", "adv"] if attack else ["clean"])
    for view in runs[0].views:
        for kind in ("true_prob", "correct", "loss", "softmax"):
            np.testing.assert_array_equal(getattr(runs[0], kind)(view), getattr(runs[1], kind)(view), err_msg=f"{view} {kind}")


def test_unknown_record_flush_is_refused(digits, tmp_path):
    ds = digits[0]
    with pytest.raises(ScorecastError, match="record_flush"):
        train(build_model("tiny_cnn", 10, 1, seed=0), ds, np.arange(20), Recipe(epochs=1), 0, RecordSpec(), tmp_path, device="cpu", record_flush="step")

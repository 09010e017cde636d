"""scorecast.robust: AutoAttack robust accuracy (ART's APGD-CE, APGD-T, Square) checked against what
must hold: no attack flips a constant network, a tiny radius leaves clean accuracy, AutoAttack finds at
least what PGD finds, and bad radii are refused."""

import numpy as np
import pytest
import torch
from torch import nn

from scorecast.data import load_dataset
from scorecast.models import build_model
from scorecast.robust import autoattack_accuracy
from scorecast.train import PGD, Recipe, predict, train
from scorecast.validation import ScorecastError

SAMPLES = 40


@pytest.fixture(scope="module")
def digits_model():
    """(tiny_cnn trained 5 epochs on digits, the digits test split)."""
    train_set, test_set = load_dataset("digits", "train"), load_dataset("digits", "test")
    model = build_model("tiny_cnn", 10, 1, seed=0)
    train(model, train_set, np.arange(len(train_set)), Recipe(epochs=5, batch_size=64), seed=0, device="cpu")
    return model.eval(), test_set


class _Constant(nn.Module):
    """Predicts class 3 for every input (logits that do not depend on the image)."""

    def forward(self, x):
        logits = 5 * torch.nn.functional.one_hot(torch.full((len(x),), 3), 10).float()  # not a probability vector (ART checks)
        return logits + 0 * x.sum(dim=(1, 2, 3))[:, None]


def test_no_attack_flips_a_constant_network(digits_model):
    _, test_set = digits_model
    expected = float((test_set.labels[:SAMPLES] == 3).float().mean())
    assert autoattack_accuracy(_Constant(), test_set, SAMPLES) == pytest.approx(expected)


def test_tiny_radius_keeps_clean_accuracy_and_autoattack_beats_pgd(digits_model):
    model, test_set = digits_model
    labels = test_set.labels[:SAMPLES].numpy()
    clean, adversarial = predict(model, test_set, device="cpu", attack=PGD(eps=0.1, step=0.025, steps=10), seed=0)
    clean_top1 = float((clean.numpy()[:SAMPLES].argmax(1) == labels).mean())
    pgd_top1 = float((adversarial.numpy()[:SAMPLES].argmax(1) == labels).mean())
    assert autoattack_accuracy(model, test_set, SAMPLES, eps=1e-4) == pytest.approx(clean_top1)
    strong = autoattack_accuracy(model, test_set, SAMPLES, eps=0.1)
    assert strong <= pgd_top1 < clean_top1  # measured: AutoAttack 0.0, PGD-10 below clean on this undefended net


@pytest.mark.parametrize("eps", [0, -0.1, 0.6])
def test_bad_radius_is_refused(digits_model, eps):
    model, test_set = digits_model
    with pytest.raises(ScorecastError, match="AutoAttack eps"):
        autoattack_accuracy(model, test_set, 4, eps=eps)

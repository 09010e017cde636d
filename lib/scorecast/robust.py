"""Robust accuracy under AutoAttack (Croce & Hein, ICML 2020), the field's standard evaluation of
adversarially trained models, with the attacks of the Adversarial Robustness Toolbox (ART).

The standard version's l_inf attacks as ART provides them, each run on the test samples that every
earlier attack left correctly classified (a sample counts as robust only if no attack flips it):

1. APGD-CE: untargeted, cross-entropy loss, 100 iterations, 1 restart;
2. APGD-T: targeted, DLR loss, 100 iterations, each of the 9 (C - 1 on C classes) most likely other
   classes as target in turn;
3. Square: untargeted black-box, 5,000 queries, p_init 0.8.

FAB-T, the fourth attack of the standard version, is not in ART and is left out; Croce & Hein report
that it rarely changes the robust accuracy APGD-T leaves. Inputs are test-transformed images in
pixel space [0, 1]; the network sees them normalised with the dataset's statistics, as in training.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data import ImageDataset, batches
from .validation import ScorecastError, check_positive_int

TARGETS = 9  # APGD-T's target classes in the standard version


class _Normalised(nn.Module):
    """``model`` applied to pixel-space inputs (B, C, H, W) in [0, 1], normalised with ``dataset``'s statistics."""

    def __init__(self, model: nn.Module, dataset: ImageDataset):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(dataset.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(dataset.std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def pixel_inputs(dataset: ImageDataset, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(test-transformed images (m, C, crop, crop) float32 in [0, 1], labels (m,) int64) of ``indices``."""
    xs, ys = [], []
    mean = torch.tensor(dataset.mean).view(1, -1, 1, 1)
    std = torch.tensor(dataset.std).view(1, -1, 1, 1)
    for x, y, _ in batches(dataset, indices, 1024, train=False, shuffle=False):
        xs.append((x * std + mean).clamp(0, 1))
        ys.append(y)
    return torch.cat(xs).numpy().astype(np.float32), torch.cat(ys).numpy()


def autoattack_accuracy(model: nn.Module, dataset: ImageDataset, samples: int | None = None, eps: float = 8 / 255,
                        batch_size: int = 256, seed: int = 0) -> float:
    """Share of the first ``samples`` test samples (all when None) that the model classifies correctly
    under every attack of the module docstring at l_inf radius ``eps`` (pixel scale). CPU, eval mode."""
    from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack
    from art.estimators.classification import PyTorchClassifier

    if not 0 < eps <= 0.5:
        raise ScorecastError(f"AutoAttack eps={eps!r} must lie in (0, 0.5] (pixel scale; 8/255 = 0.0314 is standard)")
    n = len(dataset) if samples is None else min(check_positive_int("autoattack samples", samples), len(dataset))
    x, y = pixel_inputs(dataset, np.arange(n))
    classes = dataset.num_classes
    network = _Normalised(model.cpu().eval(), dataset).eval()
    classifier = PyTorchClassifier(network, loss=nn.CrossEntropyLoss(), input_shape=x.shape[1:], nb_classes=classes,
                                   clip_values=(0.0, 1.0), device_type="cpu")
    np.random.seed(seed)  # ART draws its random starts and Square's proposals from numpy's global state
    torch.manual_seed(seed)
    logits = classifier.predict(x, batch_size=batch_size)
    robust = logits.argmax(1) == y
    ranked = np.argsort(-logits, axis=1)  # most likely classes first, for APGD-T's targets
    onehot = lambda labels: np.eye(classes, dtype=np.float32)[labels]  # noqa: E731

    def attack(make, targets=None) -> None:
        idx = np.flatnonzero(robust)
        if len(idx):
            goal = y[idx] if targets is None else targets[idx]
            adversarial = make().generate(x[idx], y=onehot(goal))
            robust[idx] &= classifier.predict(adversarial, batch_size=batch_size).argmax(1) == y[idx]

    apgd = dict(estimator=classifier, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=100, nb_random_init=1, batch_size=batch_size, verbose=False)
    attack(lambda: AutoProjectedGradientDescent(**apgd, targeted=False, loss_type="cross_entropy"))
    other = np.array([[c for c in row if c != label] for row, label in zip(ranked, y)])  # (n, C - 1) other classes, most likely first
    for k in range(min(TARGETS, classes - 1)):
        attack(lambda: AutoProjectedGradientDescent(**apgd, targeted=True, loss_type="difference_logits_ratio"), other[:, k])
    attack(lambda: SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=5000, p_init=0.8, nb_restarts=1, batch_size=batch_size, verbose=False))
    return float(robust.mean())

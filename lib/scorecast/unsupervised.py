"""The unsupervised paradigm: frozen label-free encoders and TURTLE clustering with recorded dynamics.

Labels are never read here: every encoder sees only ``dataset.images``, and :func:`turtle` takes
no labels at all. The paper runs TURTLE (Gadetsky et al. 2024) on frozen DINOv2 ViT-g/14 features
and computes Dynamic Uncertainty on ``q_t(x) = tau_t(x)[argmax tau_final(x)]``
(:attr:`TurtleResult.true_prob`). Offline alternatives for CPU runs: normalised pixels, their PCA,
and a small SimCLR encoder trained by the kit on the unlabelled training images.

TURTLE choices (the authors' ``run_turtle.py`` exposes both inner-loop modes):
- ``warm_start=True`` (default here): one inner linear classifier and its Adam state persist
  across outer steps; each step trains it ``inner_steps`` more steps on the detached task labels.
  ``warm_start=False`` re-initialises it every outer step (``run_turtle.py``'s default, tuned
  there for 6000 steps); at the paper's 400 epochs it converges far more slowly (digits pixels,
  400 epochs: cluster accuracy about 0.40 cold vs 0.76 warm).
- ``normalize="none"`` (default): raw features, as in the authors' code. ``"standard"`` z-scores
  each dimension over all n samples; ``"l2"`` scales each sample to unit norm. Measured on digits
  (400 epochs, 3 seeds, cluster accuracy): pixels none 0.76 / standard 0.79; PCA-50 none 0.79 /
  standard 0.63 (it inflates low-variance components); L2 was worse on both (about 0.45-0.6; its
  small logits learn slowly at lr 1e-3). The normalisation is part of the returned
  :class:`TaskEncoder`, which therefore maps raw features to cluster logits.
- Batches: each epoch visits all n samples once in a seeded random order (``run_turtle.py``
  draws an independent random batch per step instead).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import IMAGENET_MEAN, IMAGENET_STD, ImageDataset, batches
from .models import Classifier, build_model
from .train import embed, progress
from .validation import ScorecastError, as_finite_matrix, check_choice, check_positive_int, resolve_device

NORMALIZATIONS = ("none", "standard", "l2")
LABEL_KEYS = ("labels", "use_labels", "label_features")  # config keys that would feed labels in
_MAX_IN_MEMORY_BYTES = 2**31  # larger trajectories need record_dir


def _check_positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0:
        raise ScorecastError(f"{name} must be a positive number, got {value!r}")
    return float(value)


# ============================================================================ frozen encoders


def _pixels(dataset: ImageDataset, seed: int, device: str, batch_size: int = 4096) -> np.ndarray:
    """Test-transformed (centre-cropped, normalised) pixels, flattened: (n, C * crop * crop)."""
    rows = [x.flatten(1).cpu() for x, _, _ in batches(dataset, np.arange(len(dataset)), batch_size, train=False, device=resolve_device(device))]
    return torch.cat(rows).numpy()


def _pca(dataset: ImageDataset, seed: int, device: str, n_components: int = 50) -> np.ndarray:
    """PCA of the normalised pixels (seeded solver): (n, n_components)."""
    from sklearn.decomposition import PCA

    pixels = _pixels(dataset, seed, device)
    n_components = check_positive_int("n_components", n_components)
    if n_components > min(pixels.shape):
        raise ScorecastError(f"n_components={n_components} exceeds min(n_samples, n_pixels) = {min(pixels.shape)}")
    return PCA(n_components=n_components, random_state=seed).fit_transform(pixels).astype(np.float32)


def _simclr(dataset: ImageDataset, seed: int, device: str, model: Classifier | None = None, **train_options) -> np.ndarray:
    """Backbone features (n, d) of a SimCLR encoder: ``model`` (e.g. cached) or one trained now."""
    if model is not None and train_options:
        raise ScorecastError(f"encoder 'simclr': training options {sorted(train_options)} have no effect with a trained model; pass one or the other")
    if model is None:
        model = train_simclr(dataset, seed=seed, device=device, **train_options)
    return embed(model, dataset, device=device)


class DinoStandIn(nn.Module):
    """A tiny randomly initialised STAND-IN for DINOv2, for the paper tier's dry run only
    (:mod:`scorecast.dryrun` sets ``stand_in: true``): DINOv2's interface, (B, 3, 224, 224)
    ImageNet-normalised images -> (B, dim) features (14 x 14 patch embedding, mean over the 16 x 16
    patches). Its features carry no meaning; it exists so that every cell after the encoder runs."""

    def __init__(self, dim: int = 64, patch: int = 14):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch(x).flatten(2).mean(-1)


def _dinov2(dataset: ImageDataset, seed: int, device: str, arch: str = "dinov2_vitg14", batch_size: int = 64, amp: bool = True,
            stand_in: bool = False) -> np.ndarray:
    """DINOv2 CLS features (n, d) from torch.hub: images resized to 224 (bicubic), ImageNet-normalised.

    ``amp``: bfloat16 autocast on CUDA (ignored on CPU). ``stand_in``: use :class:`DinoStandIn`
    (seeded random weights, no download) instead of DINOv2; set only by the paper tier's dry run.
    """
    if stand_in is True:
        warnings.warn(f"encoder 'dinov2' ({arch}): using a tiny randomly initialised STAND-IN, not DINOv2 "
                      "(stand_in: true, set by the paper tier's dry run); its features are meaningless", stacklevel=2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = DinoStandIn()
    elif stand_in is not False:
        raise ScorecastError(f"encoder 'dinov2': stand_in must be true or false, got {stand_in!r}")
    else:
        try:
            model = torch.hub.load("facebookresearch/dinov2", arch, trust_repo=True)
        except (OSError, RuntimeError, ImportError, ValueError) as err:
            raise ScorecastError(
                f"encoder 'dinov2' ({arch}) could not be loaded from torch.hub ({err}). It needs internet access "
                "once, to populate ~/.cache/torch/hub (or $TORCH_HOME); afterwards it runs offline. "
                "Offline alternatives: encoder 'pixels', 'pca' or 'simclr'."
            ) from err
    dev = resolve_device(device)
    model.to(dev).eval()
    mean = torch.tensor(IMAGENET_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=dev).view(1, 3, 1, 1)
    rows = []
    for start in progress(range(0, len(dataset), batch_size), "dinov2"):
        x = dataset.images[start : start + batch_size].to(dev).float() / 255.0
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False, antialias=x.shape[-1] > 224).clamp(0, 1)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
            rows.append(model((x - mean) / std).float().cpu())
    return torch.cat(rows).numpy()


ENCODERS = {"pixels": _pixels, "pca": _pca, "simclr": _simclr, "dinov2": _dinov2}


def _option_names(*functions) -> set[str]:
    fixed = {"dataset", "seed", "device", "train_options"}
    return {p for fn in functions for p in inspect.signature(fn).parameters} - fixed


def encode(dataset: ImageDataset, encoder: str = "pixels", seed: int = 0, device: str = "auto", **options) -> np.ndarray:
    """Label-free frozen features (n, d) float32 of every sample of ``dataset``, in canonical order.

    encoder and its options:
      "pixels": test-transformed pixels, flattened (``batch_size``).
      "pca": PCA of those pixels (``n_components``, default 50; ``seed`` drives the solver).
      "simclr": :func:`train_simclr`'s backbone embedding of the test-transformed images; pass a
        trained ``model`` to skip training, else any :func:`train_simclr` option (``epochs``, ...).
      "dinov2": torch.hub DINOv2 CLS features (``arch``, default "dinov2_vitg14" as in the paper;
        ``batch_size``; ``amp``). Needs internet once to fill the torch.hub cache. ``stand_in: true``
        swaps in :class:`DinoStandIn` (random weights; the dry run only).
    """
    check_choice("encoder", encoder, ENCODERS)
    function = ENCODERS[encoder]
    allowed = _option_names(function, train_simclr) if encoder == "simclr" else _option_names(function)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ScorecastError(f"encoder {encoder!r} does not take option(s) {unknown}; allowed: {sorted(allowed)}")
    return as_finite_matrix(f"{encoder} features", function(dataset, seed, device, **options))


# ============================================================================ SimCLR


def simclr_views(dataset: ImageDataset, images: torch.Tensor, generator: torch.Generator, min_scale: float = 0.2) -> torch.Tensor:
    """One random SimCLR view per image, made with tensor ops on the whole batch.

    images: (B, C, H, W) uint8 -> (B, C, crop, crop) float32, normalised with the dataset's mean/std.
    Random resized crop (area fraction in [min_scale, 1], aspect ratio in [3/4, 4/3], bilinear),
    horizontal flip when the dataset's augmentation flips, colour jitter with p = 0.8 (brightness,
    contrast, saturation, each strength 0.4; no hue), random grayscale with p = 0.2. Saturation and
    grayscale only apply to 3-channel images. ``generator`` (CPU) drives every random draw.
    """
    batch, channels, dev = images.shape[0], images.shape[1], images.device
    crop = dataset.augmentation.crop

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return (low + (high - low) * torch.rand(batch, *shape, generator=generator)).to(dev)

    area, log_ratio = uniform(min_scale, 1.0), uniform(np.log(3 / 4), np.log(4 / 3))
    width = (area * log_ratio.exp()).sqrt().clamp(max=1.0)  # fractions of the image side
    height = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    flip = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0) if dataset.augmentation.flip else torch.ones(batch, device=dev)
    theta = torch.zeros(batch, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1] = width * flip, height
    theta[:, 0, 2], theta[:, 1, 2] = (1 - width) * uniform(-1, 1), (1 - height) * uniform(-1, 1)
    grid = F.affine_grid(theta, [batch, channels, crop, crop], align_corners=False)
    x = F.grid_sample(images.float() / 255.0, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def gray(t: torch.Tensor) -> torch.Tensor:  # (B, 1, h, w) luma
        return t.mean(1, keepdim=True) if channels == 1 else (t * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)

    jitter = (uniform(0, 1) < 0.8).view(-1, 1, 1, 1)
    brightness, contrast, saturation = (uniform(0.6, 1.4).view(-1, 1, 1, 1) for _ in range(3))
    jittered = x * brightness
    mean_gray = gray(jittered).mean((2, 3), keepdim=True)
    jittered = (jittered - mean_gray) * contrast + mean_gray
    if channels == 3:
        luma = gray(jittered)
        jittered = (jittered - luma) * saturation + luma
    x = torch.where(jitter, jittered.clamp(0, 1), x)
    if channels == 3:
        x = torch.where((uniform(0, 1) < 0.2).view(-1, 1, 1, 1), gray(x).expand_as(x), x)
    mean = torch.tensor(dataset.mean, device=dev).view(1, -1, 1, 1)
    std = torch.tensor(dataset.std, device=dev).view(1, -1, 1, 1)
    return (x - mean) / std


def nt_xent(z: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent loss. z: (2B, p) projections, rows i and i + B are two views of one image."""
    half = z.shape[0] // 2
    z = F.normalize(z, dim=1)
    similarity = (z @ z.T / temperature).masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(half, 2 * half), torch.arange(half)]).to(z.device)
    return F.cross_entropy(similarity, positives)


def train_simclr(
    dataset: ImageDataset,
    epochs: int = 20,
    seed: int = 0,
    arch: str = "tiny_cnn",
    batch_size: int = 256,
    lr: float = 1e-3,
    temperature: float = 0.5,
    projection_dim: int = 64,
    min_scale: float = 0.2,
    indices: np.ndarray | None = None,
    device: str = "auto",
) -> Classifier:
    """Train a SimCLR encoder on the unlabelled images ``dataset.images[indices]`` (default: all).

    The backbone is ``build_model(arch)``'s feature extractor; its head is replaced by SimCLR's
    projection MLP (d -> d -> ``projection_dim``). Two :func:`simclr_views` per image, NT-Xent
    loss at ``temperature``, Adam at ``lr``. Returns the model (eval mode) on ``device``: its
    ``embed`` gives the backbone features used downstream, ``forward`` the projections.
    """
    epochs, batch_size = check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size)
    temperature, lr = _check_positive_float("temperature", temperature), _check_positive_float("lr", lr)
    if not 0 < min_scale <= 1:
        raise ScorecastError(f"min_scale={min_scale!r} must lie in (0, 1] (smallest crop area fraction)")
    indices = torch.arange(len(dataset)) if indices is None else torch.as_tensor(np.asarray(indices, dtype=np.int64))
    dev = resolve_device(device)
    model = build_model(arch, check_positive_int("projection_dim", projection_dim), dataset.in_channels, seed=seed)
    dim = model.embedding_dim
    model.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, projection_dim))
    model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in progress(range(epochs), "simclr"):
        order = indices[torch.randperm(len(indices), generator=generator)]
        for start in range(0, len(order), batch_size):
            images = dataset.images[order[start : start + batch_size]].to(dev)
            views = torch.cat([simclr_views(dataset, images, generator, min_scale) for _ in range(2)])
            loss = nt_xent(model(views), temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


# ============================================================================ TURTLE


class TaskEncoder(nn.Module):
    """TURTLE's task encoder: the fixed feature normalisation, then a weight-normalised linear d -> C.

    forward: raw features (B, d) -> cluster logits (B, C); tau = softmax of those logits.
    """

    def __init__(self, dim: int, num_clusters: int, normalize: str, shift: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.normalize = normalize
        self.register_buffer("shift", shift)  # (d,) subtracted ("standard"; zeros otherwise)
        self.register_buffer("scale", scale)  # (d,) divided by ("standard"; ones otherwise)
        self.linear = nn.utils.parametrizations.weight_norm(nn.Linear(dim, num_clusters))

    def prepare(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised features (B, d), the space TURTLE's linear maps live in."""
        z = (z - self.shift) / self.scale
        return F.normalize(z, dim=1) if self.normalize == "l2" else z

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(self.prepare(z))


@dataclass
class TurtleResult:
    """TURTLE's recorded dynamics, in canonical sample order.

    final_softmax: (n, C) float32, tau(x) after the last epoch.
    pseudo_labels: (n,) int64, its argmax.
    true_prob: (E, n) float32, q_t(x) = tau_t(x)[pseudo_labels[x]], the input to Dynamic Uncertainty
      (a read-only memmap with record_dir).
    task_encoder: the trained :class:`TaskEncoder` (CPU, eval mode), raw features -> logits.

    The whole trajectory tau_t (E, n, C) is never stored (400 x 1.28M x 1000 float32 would be 2 TB):
    the task encoder's linear map after every epoch is (E, C, d + 1), and q_t is recomputed from it
    once the final pseudo-labels are known, with the same operations as the per-epoch pass, so the
    values equal a stored trajectory's bit for bit.
    """

    final_softmax: np.ndarray
    pseudo_labels: np.ndarray
    true_prob: np.ndarray
    task_encoder: TaskEncoder


def _trajectory(directory: Path | None, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed float32 array of ``shape``: in memory, or a memmap ``directory/name``."""
    if directory is None:
        if np.prod(shape) * 4 > _MAX_IN_MEMORY_BYTES:
            raise ScorecastError(f"a TURTLE trajectory of shape {shape} is too large to hold in memory; pass record_dir")
        return np.zeros(shape, dtype=np.float32)
    return np.lib.format.open_memmap(directory / name, mode="w+", dtype=np.float32, shape=shape)


def turtle(
    Z,
    num_clusters: int,
    epochs: int = 400,
    inner_steps: int = 10,
    gamma: float = 10.0,
    lr: float = 1e-3,
    inner_lr: float = 1e-3,
    batch_size: int = 10000,
    warm_start: bool = True,
    normalize: str = "none",
    seed: int = 0,
    device: str = "auto",
    record_dir: str | Path | None = None,
) -> TurtleResult:
    """TURTLE (Gadetsky et al. 2024) on frozen features Z (n, d); no labels are involved.

    Per outer step on a batch z: tau = softmax(task_encoder(z)); an inner linear classifier is
    trained ``inner_steps`` Adam steps (``inner_lr``) on CE(inner(z), tau.detach()); then the task
    encoder takes one Adam step (``lr``) on CE(inner(z).detach(), tau) - gamma * H(mean_batch tau).
    ``warm_start`` and ``normalize``: see the module docstring. After every epoch the task
    encoder's linear map is kept; at the end q_t over all n samples is computed from those maps
    (see :class:`TurtleResult`) into ``record_dir`` (true_prob.npy (E, n), pseudo_labels.npy and
    softmax.npy, the final epoch's tau (n, C); the maps' temporary file is removed) or in memory
    when ``record_dir`` is None. Deterministic for a seed on CPU.
    """
    Z = as_finite_matrix("Z", Z)
    n, dim = Z.shape
    num_clusters = check_positive_int("num_clusters", num_clusters)
    if not 2 <= num_clusters <= n:
        raise ScorecastError(f"num_clusters={num_clusters} must lie in [2, n_samples={n}]")
    epochs, inner_steps = check_positive_int("epochs", epochs), check_positive_int("inner_steps", inner_steps)
    batch_size = min(check_positive_int("batch_size", batch_size), n)
    lr, inner_lr = _check_positive_float("lr", lr), _check_positive_float("inner_lr", inner_lr)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating)) or gamma < 0:
        raise ScorecastError(f"gamma must be a non-negative number (entropy weight; paper: 10), got {gamma!r}")
    check_choice("normalize", normalize, NORMALIZATIONS)

    dev = resolve_device(device)
    features = torch.from_numpy(Z).to(dev)
    shift, scale = torch.zeros(dim), torch.ones(dim)
    if normalize == "standard":
        shift, scale = features.mean(0).cpu(), features.std(0).clamp_min(1e-6).cpu()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    encoder = TaskEncoder(dim, num_clusters, normalize, shift, scale).to(dev)
    features = encoder.prepare(features)
    optimizer = torch.optim.Adam(encoder.linear.parameters(), lr=lr)

    def new_inner() -> tuple[nn.Linear, torch.optim.Optimizer]:
        inner = nn.Linear(dim, num_clusters).to(dev)
        return inner, torch.optim.Adam(inner.parameters(), lr=inner_lr)

    inner, inner_opt = new_inner()
    directory = None if record_dir is None else Path(record_dir)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    maps = _trajectory(directory, "task_encoder_trajectory.npy", (epochs, num_clusters, dim + 1))  # [weight | bias] per epoch

    for epoch in progress(range(epochs), "turtle"):
        order = torch.randperm(n, generator=generator).to(dev)
        for start in range(0, n, batch_size):
            z = features[order[start : start + batch_size]]
            tau = encoder.linear(z).softmax(1)
            if not warm_start:
                inner, inner_opt = new_inner()
            for _ in range(inner_steps):
                inner_opt.zero_grad(set_to_none=True)
                F.cross_entropy(inner(z), tau.detach()).backward()
                inner_opt.step()
            loss = F.cross_entropy(inner(z).detach(), tau) - gamma * torch.special.entr(tau.mean(0)).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            maps[epoch, :, :dim] = encoder.linear.weight.cpu().numpy()
            maps[epoch, :, dim] = encoder.linear.bias.cpu().numpy()

    def tau(epoch: int, rows: slice) -> torch.Tensor:
        """tau_epoch of samples ``rows``, (b, C): the operations of encoder.linear, with that epoch's map."""
        weight, bias = (torch.from_numpy(np.array(part)).to(dev) for part in (maps[epoch, :, :dim], maps[epoch, :, dim]))
        return F.linear(features[rows], weight, bias).softmax(1)

    final_softmax = np.empty((n, num_clusters), dtype=np.float32)
    true_prob = _trajectory(directory, "true_prob.npy", (epochs, n))
    with torch.no_grad():
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size)
            final_softmax[rows] = tau(epochs - 1, rows).cpu().numpy()
        pseudo_labels = final_softmax.argmax(1).astype(np.int64)
        for start in progress(range(0, n, batch_size), "turtle q_t"):
            rows = slice(start, start + batch_size)
            labels = torch.from_numpy(pseudo_labels[rows]).to(dev)[:, None]
            for epoch in range(epochs):
                true_prob[epoch, rows] = tau(epoch, rows).gather(1, labels)[:, 0].cpu().numpy()
    if directory is not None:
        np.save(directory / "pseudo_labels.npy", pseudo_labels)
        np.save(directory / "softmax.npy", final_softmax)
        true_prob.flush()
        del maps
        (directory / "task_encoder_trajectory.npy").unlink()
        true_prob = np.load(directory / "true_prob.npy", mmap_mode="r")
    return TurtleResult(final_softmax, pseudo_labels, true_prob, encoder.cpu().eval())


def check_label_free(config: Mapping, where: str = "config") -> None:
    """Raise ScorecastError when an unsupervised ``config`` (nested mappings/lists) would use labels.

    Any key in :data:`LABEL_KEYS` (at any depth, e.g. ``extrapolator.labels`` or
    ``use_labels``) with a value other than None/False is refused: the unsupervised paradigm
    sees no labels anywhere, only TURTLE's pseudo-labels.
    """
    items = config.items() if isinstance(config, Mapping) else enumerate(config) if isinstance(config, (list, tuple)) else ()
    for key, value in items:
        path = f"{where}.{key}"
        if key in LABEL_KEYS and value is not None and value is not False:
            raise ScorecastError(
                f"{path}={value!r}: the unsupervised paradigm is label-free; remove {key!r} "
                "(extrapolators and scores use frozen features and TURTLE pseudo-labels only)"
            )
        check_label_free(value, path)

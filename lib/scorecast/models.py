"""Models: each maps (B, C, H, W) images to (B, num_classes) logits and exposes its penultimate
global-average-pooled features through ``embed`` ((B, embedding_dim)), which is what the
extrapolators see.

Paper models: CIFAR-style ResNet-18/50 (3x3 stride-1 stem, no max-pool; also used for 64-px
ImageNet), ResNet-50 with a 7x7 stem and no max-pool (64-px Places-365), WideResNet-28-10
(adversarial). CPU models: ``tiny_cnn`` (3 conv layers of 16/32/64 channels, 64-d embedding) and the CIFAR ResNet-20/32 of He et al.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from .validation import ScorecastError, check_choice


class Classifier(nn.Module):
    """A feature extractor (B, C, H, W) -> (B, d) followed by a linear head d -> num_classes."""

    def __init__(self, features: nn.Module, embedding_dim: int, num_classes: int):
        super().__init__()
        self.features = features
        self.embedding_dim = embedding_dim
        self.head = nn.Linear(embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, embedding_dim)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes)."""
        return self.head(self.features(x))


def _torchvision_resnet(arch: str, in_channels: int, stem: str) -> tuple[nn.Module, int]:
    net = getattr(torchvision.models, arch)(weights=None)
    if stem == "3x3":
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    else:  # 7x7 stride-2 stem as in torchvision, input channels adapted
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


class _BasicBlock(nn.Module):
    """Pre-activation-free basic block (He et al. CIFAR ResNets); ``width`` scales channels."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float = 0.0, preact: bool = False):
        super().__init__()
        self.preact = preact
        self.bn1 = nn.BatchNorm2d(c_in if preact else c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, bias=False)
        self.shortcut_bn = nn.Identity() if preact or isinstance(self.shortcut, nn.Identity) else nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:  # WideResNet ordering: BN-ReLU-conv
            out = torch.relu(self.bn1(x))
            skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(out)
            out = self.conv1(out)
            out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
            return out + skip
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(self.dropout(out)))
        return torch.relu(out + self.shortcut_bn(self.shortcut(x)))


def _stacked(in_channels: int, widths: list[int], blocks_per_stage: int, preact: bool) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)]
    if not preact:
        layers += [nn.BatchNorm2d(16), nn.ReLU()]
    c_in = 16
    for stage, width in enumerate(widths):
        for block in range(blocks_per_stage):
            layers.append(_BasicBlock(c_in, width, 2 if stage and not block else 1, preact=preact))
            c_in = width
    if preact:
        layers += [nn.BatchNorm2d(c_in), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c_in


def _plain_cnn(in_channels: int, widths: list[int], convs_per_stage: int) -> tuple[nn.Module, int]:
    """Conv-BN-ReLU stages of the given widths (``convs_per_stage`` 3x3 convs each), 2x2 max-pool
    between stages, global average pool: small and fast on a CPU."""
    layers: list[nn.Module] = []
    c_in = in_channels
    for stage, width in enumerate(widths):
        if stage:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        for _ in range(convs_per_stage):
            layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c_in = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), c_in


MODELS = {
    "tiny_cnn": lambda c: _plain_cnn(c, [16, 32, 64], 1),  # 24k parameters
    "cnn_bn": lambda c: _plain_cnn(c, [32, 64, 128], 2),  # 0.29M parameters: the cpu regime candidate
    "resnet20": lambda c: _stacked(c, [16, 32, 64], 3, preact=False),
    "resnet32": lambda c: _stacked(c, [16, 32, 64], 5, preact=False),
    "resnet18": lambda c: _torchvision_resnet("resnet18", c, "3x3"),
    "resnet50": lambda c: _torchvision_resnet("resnet50", c, "3x3"),
    "resnet50_7x7": lambda c: _torchvision_resnet("resnet50", c, "7x7"),
    "wrn16_4": lambda c: _stacked(c, [64, 128, 256], 2, preact=True),
    "wrn28_10": lambda c: _stacked(c, [160, 320, 640], 4, preact=True),
}


def build_model(name: str, num_classes: int, in_channels: int = 3, seed: int | None = None) -> Classifier:
    """Build model ``name`` (a key of :data:`MODELS`); ``seed`` fixes the initial weights."""
    check_choice("model", name, MODELS)
    if num_classes < 1 or in_channels < 1:
        raise ScorecastError(f"model {name!r} needs num_classes >= 1 and in_channels >= 1, got {num_classes}, {in_channels}")
    if seed is not None:
        torch.manual_seed(seed)
    features, dim = MODELS[name](in_channels)
    return Classifier(features, dim, num_classes)

"""scorecast.models: every registered model maps images to logits and embeddings of the documented
shapes; a seed fixes the initial weights; bad names and sizes are rejected."""

import pytest
import torch

from scorecast.models import MODELS, Classifier, build_model
from scorecast.validation import ScorecastError

EMBEDDING_DIM = {
    "tiny_cnn": 64,
    "cnn_bn": 128,
    "resnet20": 64,
    "resnet32": 64,
    "resnet18": 512,
    "resnet50": 2048,
    "resnet50_7x7": 2048,
    "wrn16_4": 256,
    "wrn28_10": 640,
}


def test_every_model_is_covered():
    assert set(MODELS) == set(EMBEDDING_DIM)


@pytest.mark.parametrize("name", sorted(EMBEDDING_DIM))
def test_logits_and_embedding_shapes(name):
    # tiny inputs keep even WRN-28-10 and ResNet-50 cheap: two 3x16x16 images (one 1-channel)
    model = build_model(name, num_classes=7, in_channels=3, seed=0).eval()
    assert isinstance(model, Classifier) and model.embedding_dim == EMBEDDING_DIM[name]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        logits, z = model(x), model.embed(x)
    assert tuple(logits.shape) == (2, 7) and tuple(z.shape) == (2, EMBEDDING_DIM[name])
    assert torch.isfinite(logits).all() and torch.isfinite(z).all()
    # logits are the linear head applied to the embedding
    assert torch.allclose(logits, model.head(z), atol=1e-5)


@pytest.mark.parametrize("name", ["tiny_cnn", "resnet20", "resnet18", "wrn16_4"])
def test_grayscale_and_training_mode(name):
    model = build_model(name, num_classes=10, in_channels=1, seed=0).train()
    logits = model(torch.randn(4, 1, 8, 8))
    assert tuple(logits.shape) == (4, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_seed_fixes_weights():
    a = build_model("resnet20", 10, 3, seed=5).state_dict()
    b = build_model("resnet20", 10, 3, seed=5).state_dict()
    c = build_model("resnet20", 10, 3, seed=6).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_bad_arguments():
    with pytest.raises(ScorecastError, match="tiny_cnn"):
        build_model("vgg16", 10)
    with pytest.raises(ScorecastError, match="num_classes"):
        build_model("tiny_cnn", 0)
    with pytest.raises(ScorecastError, match="in_channels"):
        build_model("tiny_cnn", 10, in_channels=0)

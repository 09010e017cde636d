"""What the pipeline's stages hand each other: finished runs, score vectors with their costs, and the
cache identity helpers.

Stage versions are part of every cache key: bump one when its stage's output or key changes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import ImageDataset, load_dataset
from .models import build_model
from .train import Dynamics

# extrapolate 2: one cache key for both paradigms (the unsupervised key gained the chosen k);
# retrain 2: the key holds the test split's content fingerprint (a relabelled test set is re-evaluated)
STAGE_VERSIONS = {"train": "1", "embed": "1", "extrapolate": "3", "retrain": "2", "proxy": "1", "encode": "1", "turtle": "1"}
PHASES = ("scoring", "embedding", "proxy_inference", "crossfit", "extrapolation")  # cost phases before final training


@functools.lru_cache(maxsize=8)
def _load(spec_json: str, split: str) -> ImageDataset:
    spec = json.loads(spec_json)
    name = spec.pop("name")
    return load_dataset(name, split, **spec)


def load_split(data: dict, split: str) -> ImageDataset:
    """The ``split`` ("train" or "test") of the dataset ``data`` ({"name": ..., options}), loaded once per process."""
    return _load(json.dumps(data, sort_keys=True), split)


def digest(array: np.ndarray) -> str:
    """Short content hash of ``array`` (e.g. the sample indices a stage ran on), for cache keys."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


@dataclass
class Run:
    """A finished scoring run: model trained on ``indices`` ((m,) sorted dataset positions)."""

    indices: np.ndarray
    dynamics: Dynamics
    path: Path
    seconds: float
    model_name: str
    num_classes: int
    in_channels: int

    searched: tuple[int, ...] = ()  # multiples of the full run's epochs a phase search tried, in order (pipeline.phase_matched_run)

    @property
    def costs(self) -> dict:
        """Seconds per phase that produced the run."""
        return {"scoring": self.seconds}

    @property
    def epochs(self) -> int:
        """Epochs the run trained (its recipe's, as cached)."""
        return int(json.loads((self.path / "manifest.json").read_text())["config"]["recipe"]["epochs"])

    def model(self):
        model = build_model(self.model_name, self.num_classes, self.in_channels)
        model.load_state_dict(torch.load(self.path / "model.pt", map_location="cpu"))
        return model.eval()


@dataclass
class TurtleRun:
    """A finished TURTLE run on ``indices`` ((m,) sorted positions): q_t trajectory (E, m),
    the run's task encoder's cluster assignment of ALL n samples (n,), and its costs."""

    indices: np.ndarray
    true_prob: np.ndarray
    assigned_all: np.ndarray
    seconds: float
    path: Path
    encode_seconds: float

    @property
    def costs(self) -> dict:
        """Seconds per phase that produced the run: the frozen encoder and TURTLE."""
        return {"encoding": self.encode_seconds, "scoring": self.seconds}

    @property
    def dynamics(self) -> "TurtleDynamics":
        return TurtleDynamics(self.indices, self.true_prob)


@dataclass
class TurtleDynamics:
    """A TURTLE run's trajectory in the shape scorers read: ``true_prob(view)`` is q_t (E, m), the
    probability of each sample's final pseudo-label per epoch (there is no attacked view)."""

    indices: np.ndarray
    q: np.ndarray

    def true_prob(self, view: str = "clean") -> np.ndarray:
        return self.q


@dataclass
class ScoreResult:
    """Scores (n,) for every training sample plus how they were made.

    subset_idx: (m,) positions with computed scores (all n for full scoring, none for direct
    methods); seconds: wall time per phase ("scoring", "embedding", "extrapolation", ...).
    """

    scores: np.ndarray
    subset_idx: np.ndarray
    seconds: dict = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))

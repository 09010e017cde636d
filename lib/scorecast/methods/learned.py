"""Trained extrapolators: the GCN over the kNN graph and the MLP on the embeddings."""

from __future__ import annotations

from typing import ClassVar

from .. import extrapolate as ex
from ..specs import PARADIGMS, Extrapolator, default_of, option, register, spec
from ..stages import ScoreResult
from ..validation import ScorecastError


@spec
class Learned(Extrapolator):
    """Options of the trained extrapolators (:func:`scorecast.extrapolate.gnn` / ``mlp``, the class's
    ``function``, whose signatures hold the defaults): ``labels`` feeds one-hot class labels in, ``seed``
    (default: the run's seed) seeds the split and the weights. They hold out ``val_fraction`` of the
    subset for the best epoch."""

    validates: ClassVar[bool] = True
    labels: bool = option(False)
    seed: int | None = option(None, low=0)
    dropout: float = option(default_of(ex.gnn, "dropout"), low=0.0, high=1.0, high_open=True)
    lr: float = option(default_of(ex.gnn, "lr"), low=0.0, low_open=True)
    val_fraction: float = option(default_of(ex.gnn, "val_fraction"), low=0.0, high=1.0, low_open=True, high_open=True)
    standardize: bool = option(default_of(ex.gnn, "standardize"))

    def run(self, pipe, scorer, seed: int, fraction) -> ScoreResult:
        """``function`` with every option of the spec except those shared by all methods, ``labels``
        as the class labels (or None), the run's seed unless the spec sets one, and the experiment's device."""
        self.check_subset(pipe, fraction)

        def options(Z, run, computed) -> dict:
            values = {k: v for k, v in self.cache_key().items() if k != "name"}
            return {**values, "labels": pipe.labels if self.labels else None, "seed": seed if self.seed is None else self.seed, "device": pipe.device}

        return pipe.extrapolate(self, scorer, seed, fraction, type(self).function, options)


@register
@spec
class GNN(Learned):
    """GCN over a kNN graph of all samples (:func:`scorecast.extrapolate.gnn`); ``batch_size`` (default:
    full batch) trains on neighbour-sampled mini-batches (``fanout`` neighbours per node and layer);
    ``backend`` builds the kNN graph (``ivf``/``hnsw``: approximate, for millions of samples on a CPU)."""

    name: ClassVar[str] = "gnn"
    paradigms: ClassVar[tuple[str, ...]] = PARADIGMS
    display: ClassVar[str] = "GNN"
    style: ClassVar[tuple[str, str]] = ("#e69f00", "^")
    function = staticmethod(ex.gnn)
    k: int = option(default_of(ex.gnn, "k"), low=1)
    hidden: tuple[int, ...] = option(default_of(ex.gnn, "hidden"), low=1)
    epochs: int = option(default_of(ex.gnn, "epochs"), low=1)
    metric: str = option(default_of(ex.gnn, "metric"), choices=ex.METRICS)
    batch_size: int | None = option(default_of(ex.gnn, "batch_size"), low=1)
    fanout: int = option(default_of(ex.gnn, "fanout"), low=1)
    backend: str = option(default_of(ex.gnn, "backend"), choices=ex.BACKENDS)

    def check_size(self, m: int, n: int, where: str, subset: str) -> None:
        """The graph links every node to k of the other n - 1 samples."""
        if self.k > n - 1:
            raise ScorecastError(f"{where}.k={self.k} exceeds the {n - 1} other samples each node of the kNN graph can link to; use k <= {n - 1}")


@register
@spec
class MLP(Learned):
    """MLP on the embeddings, no graph (:func:`scorecast.extrapolate.mlp`)."""

    name: ClassVar[str] = "mlp"
    display: ClassVar[str] = "MLP"
    style: ClassVar[tuple[str, str]] = ("#009e73", "D")
    function = staticmethod(ex.mlp)
    hidden: tuple[int, ...] = option(default_of(ex.mlp, "hidden"), low=1)
    epochs: int = option(default_of(ex.mlp, "epochs"), low=1)

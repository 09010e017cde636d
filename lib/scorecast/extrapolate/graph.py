"""Trained extrapolators: a GCN over the kNN graph of all samples (full batch, or neighbour-sampled
mini-batches for large graphs) and an MLP on the embeddings alone."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..metrics import pearson
from ..validation import ScorecastError, check_choice, check_positive_int, resolve_device
from .common import K, _assemble, _check_inputs, _check_labels, _complement
from .search import METRIC, METRICS, nearest_neighbours

# Training defaults of both the GCN and the MLP (their method specs read every default from these signatures)
DROPOUT = 0.5
LR = 1e-3
VAL_FRACTION = 0.1  # share of the subset held out to pick the best epoch
STANDARDIZE = True  # fit targets standardised by the training part's mean and std; predictions mapped back


@dataclass(frozen=True, eq=False)
class KnnGraph:
    """Directed kNN graph over all n samples: row i lists i's k nearest other samples.

    distances, indices: (n, k) ascending. A graph built with k serves any k' <= k (first k'
    columns), so one search covers a whole grid of k.
    """

    distances: np.ndarray
    indices: np.ndarray
    metric: str

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def adjacency(self, k: int) -> torch.Tensor:
        """(n, n) sparse ``adj_t`` with adj_t[i, j] = exp(-d_ij / 2) for i's first k neighbours j.

        Row = target node, column = source: messages flow neighbour j -> node i (PyG's ``adj_t``
        convention); sparse matmul avoids materialising one message per edge.
        """
        k = check_positive_int("k", k)
        if k > self.k:
            raise ScorecastError(f"the graph has k={self.k} neighbours per node; cannot use k={k}")
        n = self.indices.shape[0]
        columns = torch.from_numpy(np.ascontiguousarray(self.indices[:, :k]).ravel())
        weights = torch.from_numpy(np.exp(-self.distances[:, :k].astype(np.float32).ravel() / 2.0))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                torch.arange(0, n * k + 1, k), columns, weights, (n, n), check_invariants=False
            )


def knn_graph(Z, k: int = K, metric: str = METRIC, backend: str = "auto", device: str = "auto") -> KnnGraph:
    """kNN graph of the rows of Z (n, d), no self loops; pass it to :func:`gnn` as ``graph=``.

    Exact unless ``backend`` is "ivf" or "hnsw" (see :func:`nearest_neighbours`, which also
    explains ``device``; a GPU when present)."""
    d, i = nearest_neighbours(Z, Z, k, metric=metric, exclude_self=True, backend=backend, device=device)
    return KnnGraph(d, i, metric)


class _SparseMatmul(torch.autograd.Function):
    """adj_t @ x whose backward uses a precomputed adj (the transpose) instead of re-sorting adj_t."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, adj_t: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return adj_t @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.adj @ grad, None, None


def _gcn_conv(in_channels: int, out_channels: int) -> nn.Module:
    """torch_geometric GCNConv (cached normalisation) whose sparse aggregation caches the transpose too.

    Plain GCNConv re-sorts the transposed sparse adjacency in every backward pass (~20 % of an
    epoch at 20k nodes); outputs and gradients are identical. Defined here so that importing this
    module does not import torch_geometric.
    """
    with warnings.catch_warnings():  # PyG 2.8 scripts helpers at import; torch 2.14 deprecates torch.jit.script
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        from torch_geometric.nn import GCNConv

    class CachedGCNConv(GCNConv):
        def message_and_aggregate(self, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            if getattr(self, "_cached_adj", None) is None:
                self._cached_adj = adj_t.t().to_sparse_csr()
            return _SparseMatmul.apply(x, adj_t, self._cached_adj)

    return CachedGCNConv(in_channels, out_channels, cached=True)


class _Stack(nn.Module):
    """layer(in, h1) - ReLU - Dropout - ... - layer(h_last, 1); forward(x, *graph) -> (n,)."""

    def __init__(self, dims: Sequence[int], dropout: float, layer: Callable[[int, int], nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layer(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, *graph: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = nn.functional.dropout(torch.relu(layer(x, *graph)), self.dropout, self.training)
        return self.layers[-1](x, *graph).squeeze(-1)


class _Linear(nn.Linear):
    """nn.Linear that ignores graph arguments, so MLP and GCN share :class:`_Stack`."""

    def forward(self, x: torch.Tensor, *graph: torch.Tensor) -> torch.Tensor:
        return super().forward(x)


def _features(Z: np.ndarray, labels) -> np.ndarray:
    """(n, c + d) [one-hot(labels) || Z] when labels are given, else Z (n, d)."""
    if labels is None:
        return Z
    labels = _check_labels(labels, Z.shape[0])
    return np.hstack([np.eye(labels.max() + 1, dtype=np.float32)[labels], Z])


def _split(idx: np.ndarray, scores: np.ndarray, seed: int, val_fraction: float, standardize: bool):
    """Seeded train/validation split of the subset: train, val positions into ``idx`` (int64),
    (mean, std) of the train scores (0, 1 without ``standardize``) and the standardised scores (m,)."""
    if not 0.0 < val_fraction < 1.0:
        raise ScorecastError(f"val_fraction={val_fraction!r} must lie strictly between 0 and 1")
    n_val = int(round(val_fraction * idx.size))
    if n_val < 2 or n_val >= idx.size:
        raise ScorecastError(
            f"subset of {idx.size} with val_fraction={val_fraction} leaves {n_val} validation samples; "
            "need at least 2 and at least one for training"
        )
    order = np.random.default_rng(seed).permutation(idx.size)
    val, train = order[:n_val], order[n_val:]
    mean, std = (scores[train].mean(), scores[train].std() or 1.0) if standardize else (0.0, 1.0)
    return train, val, (mean, std), (scores - mean) / std


@dataclass(frozen=True)
class Training:
    """How :func:`_fit_predict` trains a score regressor: ``epochs`` of Adam(``lr``) on a seeded split
    of the subset holding out ``val_fraction`` for the best-epoch choice, targets z-scored with the
    train part's mean/std when ``standardize``, on ``device``."""

    seed: int
    epochs: int
    lr: float
    val_fraction: float
    standardize: bool
    device: torch.device


Steps = Callable[[nn.Module, np.ndarray, torch.Tensor], Iterator[torch.Tensor]]


def _fit_predict(build: Callable[[], nn.Module], steps: Steps, predict: Callable[[nn.Module], torch.Tensor],
                 idx: np.ndarray, scores: np.ndarray, training: Training) -> np.ndarray:
    """Train ``build()`` on a seeded train/validation split of the subset ``idx`` (m,) with scores (m,).

    Each epoch, ``steps(model, train, target)`` yields one MSE loss per Adam step (``train``:
    positions into ``idx``; ``target`` (m,): the standardised scores), then ``predict(model)`` in
    eval mode gives all n nodes; the prediction of the epoch with the best validation Pearson is
    returned, (n,) float64 mapped back to the score scale (subset positions not yet overwritten).
    Seeds a forked RNG, so the global torch RNG is left as it was.
    """
    epochs = check_positive_int("epochs", training.epochs)
    train, val, (mean, std), standardised = _split(idx, scores, training.seed, training.val_fraction, training.standardize)
    target = torch.from_numpy(standardised).float().to(training.device)
    with torch.random.fork_rng(devices=[training.device] if training.device.type == "cuda" else []):
        torch.manual_seed(training.seed)
        model = build().to(training.device)
        optimiser = torch.optim.Adam(model.parameters(), lr=training.lr)
        best, best_pred = -np.inf, None
        for _ in range(epochs):
            model.train()
            for loss in steps(model, train, target):
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            model.eval()
            with torch.no_grad():
                predicted = predict(model).double().cpu().numpy()
            quality = pearson(predicted[idx[val]], scores[val]) if np.isfinite(predicted).all() else -np.inf
            if quality > best or best_pred is None:
                best, best_pred = quality, predicted
    return best_pred * std + mean


def _full_batch(idx: np.ndarray, *inputs: torch.Tensor) -> Steps:
    """Steps of full-batch training: one per epoch, ``model(*inputs)`` predicting all n nodes at once."""

    def steps(model: nn.Module, train: np.ndarray, target: torch.Tensor) -> Iterator[torch.Tensor]:
        nodes = torch.from_numpy(idx[train]).to(target.device)
        yield nn.functional.mse_loss(model(*inputs)[nodes], target[train])

    return steps


# ----------------------------------------------------------------------------- mini-batch GCN


def _normalised_edges(graph: KnnGraph, k: int) -> tuple[np.ndarray, np.ndarray]:
    """GCNConv's normalised adjacency with self loops, one row per node.

    Returns sources (n, k + 1) int64 (column 0 the node itself, then its first k neighbours) and
    weights (n, k + 1) float32: w_ij / sqrt(deg_i deg_j), w_ij = exp(-d_ij / 2), self loop
    w_ii = 1, deg_i = 1 + sum_j w_ij (as GCNConv normalises :meth:`KnnGraph.adjacency`).
    """
    if k > graph.k:
        raise ScorecastError(f"the graph has k={graph.k} neighbours per node; cannot use k={k}")
    n = graph.indices.shape[0]
    neighbours = graph.indices[:, :k]
    w = np.exp(-graph.distances[:, :k].astype(np.float32) / 2.0)
    inv_sqrt = (1.0 + w.sum(1)) ** -0.5
    weights = np.hstack([(inv_sqrt**2)[:, None], w * inv_sqrt[:, None] * inv_sqrt[neighbours]]).astype(np.float32)
    return np.hstack([np.arange(n)[:, None], neighbours]), weights


def _aggregate(h: torch.Tensor, sources: torch.Tensor, weights: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """(t, c) weighted sums out[i] = sum_f weights[i, f] h[sources[i, f]]; h (s, c), sources and
    weights (t, f). Chunked over rows so the (chunk, f, c) gather stays small."""
    out = h.new_empty((sources.shape[0], h.shape[1]))
    for start in range(0, sources.shape[0], chunk):
        rows = slice(start, start + chunk)
        out[rows] = (h[sources[rows]] * weights[rows, :, None]).sum(1)
    return out


class _SampledGCNLayer(nn.Module):
    """GCNConv's computation A (x W) + b over an explicit aggregation (sources, weights) per target
    row, so it runs on sampled blocks and, in row chunks, on the whole graph. Glorot-initialised
    weight, zero bias, like GCNConv. Aggregates before the linear map when that is narrower."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        nn.init.xavier_uniform_(self.lin.weight)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, sources: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x (s, in) source rows; sources, weights (t, f) -> (t, out)."""
        if self.lin.in_features < self.lin.out_features:  # bias added in place: no second (t, out) array
            return self.lin(_aggregate(x, sources, weights)).add_(self.bias)
        return _aggregate(self.lin(x), sources, weights).add_(self.bias)


class _BlockStack(_Stack):
    """:class:`_Stack` of :class:`_SampledGCNLayer` whose layer l aggregates over ``blocks[l]``
    ((sources, weights), sources indexing the previous layer's rows); a single block (the whole
    graph) serves every layer."""

    def forward(self, x: torch.Tensor, blocks: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        for depth, layer in enumerate(self.layers):
            x = layer(x, *blocks[min(depth, len(blocks) - 1)])
            if depth < len(self.layers) - 1:  # in place: one (n, hidden) array, not two, in the whole-graph pass
                x = nn.functional.dropout(x.relu_(), self.dropout, self.training)
        return x.squeeze(-1)


def _sample_blocks(targets: np.ndarray, sources: np.ndarray, weights: np.ndarray, fanout: int, layers: int, rng: np.random.Generator):
    """Neighbour-sampled blocks for computing ``targets`` (b,) with a ``layers``-layer GCN.

    Per layer each node keeps its self loop and ``fanout`` of its k neighbours drawn without
    replacement (all when fanout >= k), neighbour weights scaled by k / fanout so the sum is
    unbiased. sources, weights: (n, k + 1) from :func:`_normalised_edges`. Returns the input node
    ids (s,) and the blocks, first layer first, as (positions (t, f + 1) into the previous layer's
    rows, weights (t, f + 1)) tensors; the last block's rows are ``targets`` in order.
    """
    k, blocks, nodes = sources.shape[1] - 1, [], targets
    for _ in range(layers):
        src, w = sources[nodes], weights[nodes]
        if fanout < k:
            keep = np.hstack([np.zeros((len(nodes), 1), dtype=np.int64), 1 + np.argsort(rng.random((len(nodes), k)), axis=1)[:, :fanout]])
            src, w = np.take_along_axis(src, keep, 1), np.take_along_axis(w, keep, 1) * np.r_[1.0, [k / fanout] * fanout].astype(np.float32)
        nodes, positions = np.unique(src, return_inverse=True)
        blocks.append((torch.from_numpy(positions.reshape(src.shape)), torch.from_numpy(np.ascontiguousarray(w))))
    return nodes, blocks[::-1]


def gnn(
    Z,
    subset_idx,
    subset_scores,
    labels=None,
    k: int = K,
    seed: int = 0,
    hidden: Sequence[int] = (512, 256),
    dropout: float = DROPOUT,
    epochs: int = 50,
    lr: float = LR,
    val_fraction: float = VAL_FRACTION,
    metric: str = METRIC,
    standardize: bool = STANDARDIZE,
    graph: KnnGraph | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    fanout: int = 5,
    backend: str = "auto",
) -> np.ndarray:
    """GCN extrapolation over a directed kNN graph of all n samples (transductive).

    Graph: each node i receives edges from its k nearest other samples j, weight exp(-d_ij / 2)
    (``graph`` reuses a :func:`knn_graph` built once, with at least k neighbours per node;
    otherwise it is built here with ``backend``, see :func:`nearest_neighbours`).
    Features: [one-hot(labels) || Z] when ``labels`` (n,) are given, else Z. Model:
    GCNConv(in, 512)-ReLU-Dropout-GCNConv(512, 256)-ReLU-Dropout-GCNConv(256, 1) (``hidden``).
    Training: MSE on 90 % of the subset, Adam(lr), one full-batch step per epoch, keep the epoch
    with the best Pearson on the other 10 % (seeded split). With ``standardize`` (default) the
    targets are z-scored with the train part's mean/std and predictions mapped back, so the
    output is on the score scale; the ranking is what matters. Note full-batch means one
    optimiser step per epoch (the authors' mini-batches took many), so ``epochs`` may need raising.

    Deterministic for a seed on CPU; the global torch RNG is not changed. ``device``: "auto"
    (CUDA when present), "cpu" or "cuda".

    Mini-batch mode, for graphs whose full-batch activations do not fit (about 6 x n x
    sum(hidden) floats; 1M nodes with (512, 256) need ~18 GB): ``batch_size`` training nodes per
    Adam step on neighbour-sampled blocks (``fanout`` of each node's k neighbours per layer,
    seeded), same model maths, split, targets and best-epoch choice, with validation and the
    result from the exact whole-graph forward in row chunks (memory ~ n x max(hidden) floats
    twice). An epoch is then a full pass over the training nodes, many steps.

    Returns:
        (n,) float64; subset positions hold ``subset_scores`` exactly.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    k = check_positive_int("k", k)
    check_choice("metric", metric, METRICS)
    if graph is None:
        graph = knn_graph(Z, k, metric=metric, backend=backend, device=device)
    elif graph.indices.shape[0] != Z.shape[0] or graph.metric != metric:
        raise ScorecastError(
            f"graph was built on {graph.indices.shape[0]} samples with metric={graph.metric!r}; "
            f"Z has {Z.shape[0]} and metric={metric!r}"
        )
    device = resolve_device(device)
    x = torch.from_numpy(_features(Z, labels)).to(device)
    dims = [x.shape[1], *hidden, 1]
    training = Training(seed, epochs, lr, val_fraction, standardize, device)
    if batch_size is None:
        adjacency = graph.adjacency(k).to(device)
        with torch.sparse.check_sparse_tensor_invariants(False):  # explicit opt-out silences PyG-internal warnings
            predicted = _fit_predict(lambda: _Stack(dims, dropout, _gcn_conv), _full_batch(idx, x, adjacency),
                                     lambda model: model(x, adjacency), idx, scores, training)
    else:
        sources, weights = _normalised_edges(graph, k)
        whole = [(torch.from_numpy(sources).to(device), torch.from_numpy(weights).to(device))]
        batch_size, fanout, rng = check_positive_int("batch_size", batch_size), check_positive_int("fanout", fanout), np.random.default_rng(seed)

        def sampled(model: nn.Module, train: np.ndarray, target: torch.Tensor) -> Iterator[torch.Tensor]:
            order = rng.permutation(train)
            for start in range(0, order.size, batch_size):
                batch = order[start : start + batch_size]
                inputs, blocks = _sample_blocks(idx[batch], sources, weights, fanout, len(dims) - 1, rng)
                blocks = [(positions.to(device), w.to(device)) for positions, w in blocks]
                yield nn.functional.mse_loss(model(x[torch.from_numpy(inputs).to(device)], blocks), target[batch])

        predicted = _fit_predict(lambda: _BlockStack(dims, dropout, _SampledGCNLayer), sampled, lambda model: model(x, whole), idx, scores, training)
    rest = _complement(Z.shape[0], idx)
    return _assemble(Z.shape[0], idx, scores, rest, predicted[rest])


def mlp(
    Z,
    subset_idx,
    subset_scores,
    labels=None,
    seed: int = 0,
    hidden: Sequence[int] = (256, 64),
    dropout: float = DROPOUT,
    epochs: int = 200,
    lr: float = LR,
    val_fraction: float = VAL_FRACTION,
    standardize: bool = STANDARDIZE,
    device: str = "auto",
) -> np.ndarray:
    """MLP baseline: Linear(in, 256)-ReLU-Dropout-Linear(256, 64)-ReLU-Dropout-Linear(64, 1).

    Features [one-hot(labels) || Z] (Z alone without labels); trained exactly like :func:`gnn`
    (same split, full batch, best validation Pearson, standardised targets), only without a graph.

    Returns:
        (n,) float64; subset positions hold ``subset_scores`` exactly.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    device = resolve_device(device)
    x = torch.from_numpy(_features(Z, labels)).to(device)
    dims = [x.shape[1], *hidden, 1]
    predicted = _fit_predict(lambda: _Stack(dims, dropout, _Linear), _full_batch(idx, x), lambda model: model(x), idx, scores,
                             Training(seed, epochs, lr, val_fraction, standardize, device))
    rest = _complement(Z.shape[0], idx)
    return _assemble(Z.shape[0], idx, scores, rest, predicted[rest])

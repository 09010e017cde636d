"""Score extrapolators: predict pruning scores of unscored samples from a scored subset.

Pure functions: arrays in, arrays out, no files, no global state. The embedding step happens
elsewhere and arrives here as ``Z`` (n, d). Every extrapolator has the call shape::

    f(Z, subset_idx, subset_scores, ...) -> (n,) float64

with ``out[subset_idx] == subset_scores`` exactly (subset samples keep their own scores) and the
other n - m entries predicted. Also here: nearest-neighbour search (exact: faiss or chunked torch,
on a GPU when present; approximate for millions of points on a CPU: faiss IVF or HNSW), the kNN
graph the GNN trains on (full batch, or neighbour-sampled mini-batches for large graphs), choosing hyper-parameters by cross-validation on the subset (or
by the paper's oracle), and rank calibration against oversmoothing.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .metrics import pearson, spearman
from .validation import (
    ScorecastError,
    as_finite_matrix,
    as_finite_vector,
    as_index_vector,
    check_choice,
    check_positive_int,
    resolve_device,
)

METRICS = ("euclidean", "cosine")
WEIGHTINGS = ("uniform", "exp")
BACKENDS = ("auto", "faiss", "torch", "ivf", "hnsw")
IVF_PROBES, HNSW_LINKS = 32, 32  # approximate backends: IVF lists scanned per query; HNSW links per node

Extrapolator = Callable[..., np.ndarray]


# ----------------------------------------------------------------------------- shared checks


def _check_inputs(Z, subset_idx, subset_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the common triple: Z (n, d) float32, subset_idx (m,) int64, subset_scores (m,) float64."""
    Z = as_finite_matrix("Z", Z)
    idx = as_index_vector("subset_idx", subset_idx, Z.shape[0])
    if idx.size == 0:
        raise ScorecastError("subset_idx is empty; extrapolation needs at least one scored sample")
    scores = as_finite_vector("subset_scores", subset_scores, length=idx.shape[0])
    return Z, idx, scores


def _check_labels(labels, n: int) -> np.ndarray:
    """Class labels (n,) as non-negative int64."""
    arr = np.asarray(labels)
    if arr.shape != (n,) or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ScorecastError(
            f"labels must be a 1-D integer array with one entry per sample ({n}), got {arr.dtype} {arr.shape}"
        )
    if arr.size and arr.min() < 0:
        raise ScorecastError(f"labels must be non-negative class ids, got minimum {arr.min()}")
    return arr.astype(np.int64)


def _complement(n: int, idx: np.ndarray) -> np.ndarray:
    """Sorted indices in [0, n) not in ``idx``."""
    mask = np.ones(n, dtype=bool)
    mask[idx] = False
    return np.flatnonzero(mask)


def _assemble(n: int, idx: np.ndarray, scores: np.ndarray, rest: np.ndarray, predicted) -> np.ndarray:
    """(n,) float64: subset positions get their own scores, ``rest`` gets ``predicted``."""
    out = np.empty(n, dtype=np.float64)
    out[rest] = predicted
    out[idx] = scores
    return out


# ----------------------------------------------------------------------------- neighbour search


def _faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero, i.e. cosine distance 1 to everything)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, np.finfo(np.float32).tiny), dtype=np.float32)


def _faiss_index(base: np.ndarray, inner_product: bool, kind: str, k: int):
    """A faiss index over base (b, d): exact ("faiss"), IVF-Flat ("ivf": about 4 sqrt(b) k-means
    lists trained on a seeded sample, IVF_PROBES scanned per query) or HNSW-Flat ("hnsw")."""
    import faiss

    dim, metric = base.shape[1], (faiss.METRIC_INNER_PRODUCT if inner_product else faiss.METRIC_L2)
    if kind == "faiss":
        index = (faiss.IndexFlatIP if inner_product else faiss.IndexFlatL2)(dim)
    elif kind == "ivf":
        lists = max(1, min(int(4 * math.sqrt(base.shape[0])), base.shape[0] // 39))  # faiss wants >= 39 training points per list
        index = faiss.IndexIVFFlat((faiss.IndexFlatIP if inner_product else faiss.IndexFlatL2)(dim), dim, lists, metric)
        sample = np.random.default_rng(0).choice(base.shape[0], min(base.shape[0], 64 * lists), replace=False)
        index.train(base[np.sort(sample)])
        index.nprobe = min(lists, IVF_PROBES)
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_LINKS, metric)
        index.hnsw.efConstruction, index.hnsw.efSearch = 64, max(64, 2 * k)
    index.add(base)
    return index


def _faiss_searcher(base: np.ndarray, k: int, inner_product: bool, kind: str = "faiss"):
    """Closure: query chunk (c, d) -> (raw distances, indices), both (c, k), ascending.

    Raw distance is the squared L2 distance, or 1 - <q, b> for ``inner_product`` (unit vectors).
    ``kind`` picks the index (see :func:`_faiss_index`).
    """
    index = _faiss_index(base, inner_product, kind, k)

    def search(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d, i = index.search(q, k)
        if (i < 0).any():
            raise ScorecastError(f"backend={kind!r} found fewer than {k} neighbours for some queries; use an exact backend (faiss or torch)")
        return (1.0 - d if inner_product else d), i

    return search


def _torch_searcher(base: np.ndarray, k: int, inner_product: bool, base_chunk: int, device: torch.device):
    """Closure like :func:`_faiss_searcher`, by matmul over base chunks with a running top-k.

    Blocks rank by ||b||^2 - 2 q.b (one fused addmm; the query's ||q||^2 is added to the k
    survivors only) or by q.b for ``inner_product``. Memory per call is one (c, base_chunk) block
    plus (c, 2k) candidates, whatever the base size.
    """
    b = torch.from_numpy(base).to(device)
    b_sq = b.square().sum(1)

    def search(q_np: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = torch.from_numpy(q_np).to(device)
        best = torch.empty((q.shape[0], 0), device=device)
        best_i = torch.empty((q.shape[0], 0), dtype=torch.int64, device=device)
        for start in range(0, b.shape[0], base_chunk):
            stop = min(start + base_chunk, b.shape[0])
            block = q @ b[start:stop].T if inner_product else torch.addmm(b_sq[start:stop], q, b[start:stop].T, alpha=-2.0)
            block_v, block_i = torch.topk(block, min(k, stop - start), dim=1, largest=inner_product, sorted=False)
            cand = torch.cat([best, block_v], 1)
            cand_i = torch.cat([best_i, block_i + start], 1)
            best, pos = torch.topk(cand, min(k, cand.shape[1]), dim=1, largest=inner_product, sorted=True)
            best_i = cand_i.gather(1, pos)
        distances = 1.0 - best if inner_product else best + q.square().sum(1, keepdim=True)
        return distances.cpu().numpy(), best_i.cpu().numpy()

    return search


def _drop_self(d: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own index from its (q, k+1) neighbour row, giving (q, k).

    Row r is query r. When exact duplicates push r out of its own list, the farthest is dropped.
    """
    is_self = i == np.arange(i.shape[0])[:, None]
    is_self[~is_self.any(1), -1] = True
    keep = ~is_self
    return d[keep].reshape(i.shape[0], -1), i[keep].reshape(i.shape[0], -1)


def nearest_neighbours(
    queries,
    base,
    k: int,
    metric: str = "euclidean",
    exclude_self: bool = False,
    backend: str = "auto",
    query_chunk: int = 4096,
    base_chunk: int = 16384,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each query row among the base rows.

    Args:
        queries: (q, d) array; base: (b, d) array.
        k: neighbours per query, at most b (b - 1 with ``exclude_self``).
        metric: "euclidean" (true, not squared, distance) or "cosine" (1 - cosine similarity).
        exclude_self: ``queries`` is ``base`` (same rows, same order); drop row i from its own list.
        backend: "faiss" (IndexFlatL2, or IndexFlatIP on unit vectors for cosine), "torch"
            (matmul ||q||^2 - 2 q.b + ||b||^2 over (query_chunk, base_chunk) blocks keeping a
            running top-k, so memory stays bounded for any q and b) or "auto" (torch when
            ``device`` resolves to CUDA, else faiss when installed, else torch). Approximate,
            for millions of points on a CPU (recall against exact in BENCHMARKS.md): "ivf"
            (faiss IVF-Flat) or "hnsw" (faiss HNSW-Flat); rows may then miss a true neighbour.
        query_chunk, base_chunk: block sizes; faiss tiles the base itself and uses only query_chunk.
        device: torch backend (and the "auto" choice): "cpu", "cuda" or "auto".

    Returns:
        distances (q, k) float32 sorted ascending per row, indices (q, k) int64 into ``base``.
    """
    queries = as_finite_matrix("queries", queries)
    base = as_finite_matrix("base", base)
    check_choice("metric", metric, METRICS)
    check_choice("backend", backend, BACKENDS)
    k = check_positive_int("k", k)
    query_chunk = check_positive_int("query_chunk", query_chunk)
    base_chunk = check_positive_int("base_chunk", base_chunk)
    if queries.shape[1] != base.shape[1]:
        raise ScorecastError(f"queries have {queries.shape[1]} features but base has {base.shape[1]}")
    if exclude_self and queries.shape != base.shape:
        raise ScorecastError("exclude_self=True needs queries to be the base itself (same rows)")
    available = base.shape[0] - int(exclude_self)
    if k > available:
        raise ScorecastError(f"k={k} exceeds the {available} base samples available as neighbours")
    device = resolve_device(device)
    if backend == "auto":
        backend = "torch" if device.type == "cuda" or not _faiss_available() else "faiss"

    cosine = metric == "cosine"
    if cosine:
        prepare = _normalise
    else:  # centring shrinks the norms, and with them float32 cancellation in ||q||^2 - 2 q.b + ||b||^2
        centre = base.mean(0, dtype=np.float64).astype(np.float32)

        def prepare(x: np.ndarray) -> np.ndarray:
            return x - centre

    k_search = k + int(exclude_self)
    if backend == "torch":
        search = _torch_searcher(prepare(base), k_search, cosine, base_chunk, device)
    else:
        search = _faiss_searcher(prepare(base), k_search, cosine, backend)

    distances = np.empty((queries.shape[0], k_search), dtype=np.float32)
    indices = np.empty((queries.shape[0], k_search), dtype=np.int64)
    for start in range(0, queries.shape[0], query_chunk):
        rows = slice(start, start + query_chunk)
        distances[rows], indices[rows] = search(prepare(queries[rows]))
    np.maximum(distances, 0.0, out=distances)
    if not cosine:
        np.sqrt(distances, out=distances)
    return _drop_self(distances, indices) if exclude_self else (distances, indices)


# ----------------------------------------------------------------------------- kNN


def _neighbour_average(distances: np.ndarray, neighbour_scores: np.ndarray, weighting: str) -> np.ndarray:
    """(q,) prediction from (q, k) distances and neighbour scores.

    "uniform": mean. "exp": weights exp(-d) / sum exp(-d), computed as softmax(-d) (shifted by
    the row minimum) so it stays finite for any distance.
    """
    if weighting == "uniform":
        return neighbour_scores.mean(1)
    d = distances.astype(np.float64)
    w = np.exp(d.min(1, keepdims=True) - d)
    return (w * neighbour_scores).sum(1) / w.sum(1)


def knn(
    Z,
    subset_idx,
    subset_scores,
    k: int = 10,
    weighting: str = "uniform",
    metric: str = "euclidean",
    backend: str = "auto",
    device: str = "auto",
) -> np.ndarray:
    """kNN extrapolation: each unscored sample gets the (weighted) mean of its k nearest subset scores.

    Args:
        Z: (n, d) embeddings of all samples.
        subset_idx: (m,) distinct indices of the scored subset; subset_scores: (m,) their scores.
        k: neighbours, 1 <= k <= m.
        weighting: "uniform" (paper's "avg") or "exp" (paper's "weighted": softmax(-distance)).
        metric: "euclidean" or "cosine"; backend, device: see :func:`nearest_neighbours` (by
            default a GPU when present, else faiss).

    Returns:
        (n,) float64; subset positions hold ``subset_scores`` exactly.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    check_choice("weighting", weighting, WEIGHTINGS)
    k = check_positive_int("k", k)
    if k > idx.size:
        raise ScorecastError(f"k={k} exceeds the subset size {idx.size}; choose k <= {idx.size}")
    rest = _complement(Z.shape[0], idx)
    predicted = np.empty(0)
    if rest.size:
        d, i = nearest_neighbours(Z[rest], Z[idx], k, metric=metric, backend=backend, device=device)
        predicted = _neighbour_average(d, scores[i], weighting)
    return _assemble(Z.shape[0], idx, scores, rest, predicted)


# ----------------------------------------------------------------------------- GNN and MLP


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


def knn_graph(Z, k: int = 10, metric: str = "euclidean", backend: str = "auto", device: str = "auto") -> KnnGraph:
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


def _fit_predict(
    build: Callable[[], nn.Module],
    inputs: tuple[torch.Tensor, ...],
    idx: np.ndarray,
    scores: np.ndarray,
    seed: int,
    epochs: int,
    lr: float,
    val_fraction: float,
    standardize: bool,
    device: torch.device,
) -> np.ndarray:
    """Train ``build()`` full-batch on a seeded 90/10 train/validation split of the subset.

    ``model(*inputs)`` predicts all n nodes at once; MSE on train nodes, Adam, one step per epoch;
    the parameters of the epoch with the best validation Pearson predict everything. Targets are
    z-scored with the train part's mean/std when ``standardize`` and predictions mapped back.
    Returns (n,) float64 predictions (subset positions not yet overwritten). Seeds a forked RNG,
    so the global torch RNG is left as it was.
    """
    epochs = check_positive_int("epochs", epochs)
    train, val, (mean, std), standardised = _split(idx, scores, seed, val_fraction, standardize)
    target = torch.from_numpy(standardised).float().to(device)
    train_nodes, val_nodes = (torch.from_numpy(idx[part]).to(device) for part in (train, val))
    inputs = tuple(t.to(device) for t in inputs)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = build().to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        best, best_state = -np.inf, None
        for _ in range(epochs):
            model.train()
            optimiser.zero_grad()
            loss = nn.functional.mse_loss(model(*inputs)[train_nodes], target[train])
            loss.backward()
            optimiser.step()
            model.eval()
            with torch.no_grad():
                val_pred = model(*inputs)[val_nodes].double().cpu().numpy()
            quality = pearson(val_pred, scores[val]) if np.isfinite(val_pred).all() else -np.inf
            if quality > best or best_state is None:
                best, best_state = quality, copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)
        with torch.no_grad():
            predicted = model(*inputs).double().cpu().numpy()
    return predicted * std + mean


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


def _fit_predict_sampled(
    x: torch.Tensor,
    edges: tuple[np.ndarray, np.ndarray],
    dims: Sequence[int],
    dropout: float,
    idx: np.ndarray,
    scores: np.ndarray,
    seed: int,
    epochs: int,
    lr: float,
    val_fraction: float,
    standardize: bool,
    batch_size: int,
    fanout: int,
    device: torch.device,
) -> np.ndarray:
    """Mini-batch counterpart of :func:`_fit_predict` for graphs too large for one full-batch step.

    Same seeded train/validation split, targets, Adam and best-epoch choice; an epoch is a pass
    over the training nodes in shuffled batches of ``batch_size``, each a step on
    neighbour-sampled blocks (:func:`_sample_blocks`). Validation and the returned (n,) float64
    predictions use the exact whole-graph forward, layer by layer in row chunks. Seeded numpy
    and (forked) torch RNGs make it deterministic on CPU.
    """
    epochs = check_positive_int("epochs", epochs)
    train, val, (mean, std), standardised = _split(idx, scores, seed, val_fraction, standardize)
    target = torch.from_numpy(standardised).float().to(device)
    sources, weights = edges
    x = x.to(device)
    whole = [(torch.from_numpy(sources).to(device), torch.from_numpy(weights).to(device))]
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = _BlockStack(dims, dropout, _SampledGCNLayer).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        best, best_pred = -np.inf, None
        for _ in range(epochs):
            model.train()
            order = rng.permutation(train)
            for start in range(0, order.size, batch_size):
                batch = order[start : start + batch_size]
                inputs, blocks = _sample_blocks(idx[batch], sources, weights, fanout, len(dims) - 1, rng)
                blocks = [(positions.to(device), w.to(device)) for positions, w in blocks]
                optimiser.zero_grad()
                nn.functional.mse_loss(model(x[torch.from_numpy(inputs).to(device)], blocks), target[batch]).backward()
                optimiser.step()
            model.eval()
            with torch.no_grad():
                predicted = model(x, whole).double().cpu().numpy()
            quality = pearson(predicted[idx[val]], scores[val]) if np.isfinite(predicted).all() else -np.inf
            if quality > best or best_pred is None:
                best, best_pred = quality, predicted
    return best_pred * std + mean


def gnn(
    Z,
    subset_idx,
    subset_scores,
    labels=None,
    k: int = 10,
    seed: int = 0,
    hidden: Sequence[int] = (512, 256),
    dropout: float = 0.5,
    epochs: int = 50,
    lr: float = 1e-3,
    val_fraction: float = 0.1,
    metric: str = "euclidean",
    standardize: bool = True,
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
    x = torch.from_numpy(_features(Z, labels))
    dims = [x.shape[1], *hidden, 1]
    if batch_size is not None:
        predicted = _fit_predict_sampled(
            x, _normalised_edges(graph, k), dims, dropout, idx, scores, seed, epochs, lr, val_fraction, standardize,
            check_positive_int("batch_size", batch_size), check_positive_int("fanout", fanout), resolve_device(device),
        )
    else:
        with torch.sparse.check_sparse_tensor_invariants(False):  # explicit opt-out silences PyG-internal warnings
            predicted = _fit_predict(
                lambda: _Stack(dims, dropout, _gcn_conv),
                (x, graph.adjacency(k)),
                idx, scores, seed, epochs, lr, val_fraction, standardize, resolve_device(device),
            )
    rest = _complement(Z.shape[0], idx)
    return _assemble(Z.shape[0], idx, scores, rest, predicted[rest])


def mlp(
    Z,
    subset_idx,
    subset_scores,
    labels=None,
    seed: int = 0,
    hidden: Sequence[int] = (256, 64),
    dropout: float = 0.5,
    epochs: int = 200,
    lr: float = 1e-3,
    val_fraction: float = 0.1,
    standardize: bool = True,
    device: str = "auto",
) -> np.ndarray:
    """MLP baseline: Linear(in, 256)-ReLU-Dropout-Linear(256, 64)-ReLU-Dropout-Linear(64, 1).

    Features [one-hot(labels) || Z] (Z alone without labels); trained exactly like :func:`gnn`
    (same split, full batch, best validation Pearson, standardised targets), only without a graph.

    Returns:
        (n,) float64; subset positions hold ``subset_scores`` exactly.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    x = torch.from_numpy(_features(Z, labels))
    dims = [x.shape[1], *hidden, 1]
    predicted = _fit_predict(
        lambda: _Stack(dims, dropout, _Linear),
        (x,),
        idx, scores, seed, epochs, lr, val_fraction, standardize, resolve_device(device),
    )
    rest = _complement(Z.shape[0], idx)
    return _assemble(Z.shape[0], idx, scores, rest, predicted[rest])


def score_sampling(Z, subset_idx, subset_scores, seed: int = 0) -> np.ndarray:
    """Baseline: each unscored sample draws a score (with replacement) from the subset's scores.

    Ignores Z beyond its length. Returns (n,) float64; subset positions hold ``subset_scores``.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    rest = _complement(Z.shape[0], idx)
    return _assemble(Z.shape[0], idx, scores, rest, np.random.default_rng(seed).choice(scores, rest.size))


def subset_plus_random(Z, subset_idx, subset_scores, seed: int = 0) -> np.ndarray:
    """Baseline: subset keeps its scores, the rest draw uniformly in [min, max] of the subset scores.

    Unscored samples therefore interleave at random with the subset's ranking (neither all above
    nor all below it). Returns (n,) float64.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    rest = _complement(Z.shape[0], idx)
    drawn = np.random.default_rng(seed).uniform(scores.min(), scores.max(), rest.size)
    return _assemble(Z.shape[0], idx, scores, rest, drawn)


# ----------------------------------------------------------------------------- choosing k


def _grid_table(grid: Mapping[str, Sequence], evaluate: Callable[[dict], list[float]]) -> pd.DataFrame:
    """One row per grid combination: its parameters, mean and std of ``evaluate(params)``."""
    if not grid or any(len(values) == 0 for values in grid.values()):
        raise ScorecastError(f"grid={dict(grid)!r} needs at least one parameter with at least one value")
    rows = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        results = np.asarray(evaluate(params), dtype=np.float64)
        rows.append({**params, "mean": results.mean(), "std": results.std(), "folds": results.size})
    return pd.DataFrame(rows)


def best_params(table: pd.DataFrame) -> dict:
    """Parameters of the row with the highest mean (first such row on ties)."""
    row = table.loc[table["mean"].idxmax()]
    return {name: row[name] for name in table.columns if name not in ("mean", "std", "folds")}


def cross_validate(
    extrapolator: Extrapolator,
    Z,
    subset_idx,
    subset_scores,
    grid: Mapping[str, Sequence],
    folds: int = 5,
    seed: int = 0,
    score: Callable[[np.ndarray, np.ndarray], float] = spearman,
    **fixed,
) -> pd.DataFrame:
    """Non-oracle tuning: K-fold cross-validation over the scored subset only.

    For every combination of ``grid`` (name -> values) and every fold, ``extrapolator(Z,
    subset_idx[train], subset_scores[train], **fixed, **params)`` predicts all n samples and
    ``score(prediction[held], subset_scores[held])`` rates the held-out fold. Folds come from a
    seeded permutation of the subset. Works for any extrapolator (e.g. :func:`gnn` with
    ``graph=knn_graph(Z, max_k)`` in ``fixed`` and ``grid={"k": [...]}``).

    Returns:
        DataFrame, one row per combination: the grid parameters, ``mean`` and ``std`` over folds,
        ``folds``. :func:`best_params` picks the winner.
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    folds = _check_folds(folds, idx.size)
    parts = np.array_split(np.random.default_rng(seed).permutation(idx.size), folds)
    trains = [np.setdiff1d(np.arange(idx.size), held) for held in parts]

    def evaluate(params: dict) -> list[float]:
        return [
            score(extrapolator(Z, idx[train], scores[train], **fixed, **params)[idx[held]], scores[held])
            for held, train in zip(parts, trains)
        ]

    return _grid_table(grid, evaluate)


def oracle_validate(
    extrapolator: Extrapolator,
    Z,
    subset_idx,
    subset_scores,
    full_scores,
    grid: Mapping[str, Sequence],
    score: Callable[[np.ndarray, np.ndarray], float] = spearman,
    **fixed,
) -> pd.DataFrame:
    """The paper's oracle tuning: rate each grid combination by ``score`` against the full-data
    scores (n,) on the samples OUTSIDE the subset. Same table as :func:`cross_validate` (folds=1)."""
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    full = as_finite_vector("full_scores", full_scores, length=Z.shape[0])
    rest = _complement(Z.shape[0], idx)
    if rest.size < 2:
        raise ScorecastError("oracle validation needs at least 2 samples outside the subset")

    def evaluate(params: dict) -> list[float]:
        return [score(extrapolator(Z, idx, scores, **fixed, **params)[rest], full[rest])]

    return _grid_table(grid, evaluate)


def _check_folds(folds: int, m: int) -> int:
    folds = check_positive_int("folds", folds)
    if not 2 <= folds <= m:
        raise ScorecastError(f"folds={folds} must lie in [2, subset size {m}]")
    return folds


def _check_ks(ks: Sequence[int], limit: int, why: str) -> list[int]:
    ks = [check_positive_int("ks", k) for k in ks]
    if not ks or max(ks) > limit:
        raise ScorecastError(f"ks={ks} must be non-empty with every k <= {limit} ({why})")
    return ks


def select_k_cv(
    Z,
    subset_idx,
    subset_scores,
    ks: Sequence[int] = (1, 5, 10, 20, 50, 100),
    folds: int = 5,
    seed: int = 0,
    weighting: str = "uniform",
    metric: str = "euclidean",
    score: Callable[[np.ndarray, np.ndarray], float] = spearman,
    backend: str = "auto",
) -> tuple[int, pd.DataFrame]:
    """Choose kNN's k without an oracle: K-fold CV on the subset (see :func:`cross_validate`).

    Uses only the subset's embeddings (kNN predictions for held-out subset samples do not depend
    on unscored samples). Returns (best k, table with per-k mean/std of ``score``).
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    smallest_train = idx.size - math.ceil(idx.size / _check_folds(folds, idx.size))
    ks = _check_ks(ks, smallest_train, f"the smallest training fold of {folds}-fold CV has {smallest_train} samples")
    table = cross_validate(
        knn, Z[idx], np.arange(idx.size), scores, {"k": ks}, folds=folds, seed=seed, score=score,
        weighting=weighting, metric=metric, backend=backend,
    )
    return int(best_params(table)["k"]), table


def select_k_oracle(
    Z,
    subset_idx,
    subset_scores,
    full_scores,
    ks: Sequence[int] = (1, 5, 10, 20, 50, 100),
    weighting: str = "uniform",
    metric: str = "euclidean",
    score: Callable[[np.ndarray, np.ndarray], float] = spearman,
    backend: str = "auto",
) -> tuple[int, pd.DataFrame]:
    """Choose kNN's k as the paper did, by ``score`` against full-data scores outside the subset.

    An oracle (needs the full-data run it is meant to save); for comparison with
    :func:`select_k_cv`. Returns (best k, table with per-k score in ``mean``).
    """
    Z, idx, scores = _check_inputs(Z, subset_idx, subset_scores)
    ks = _check_ks(ks, idx.size, f"the subset has {idx.size} samples")
    table = oracle_validate(
        knn, Z, idx, scores, full_scores, {"k": ks}, score=score,
        weighting=weighting, metric=metric, backend=backend,
    )
    return int(best_params(table)["k"]), table


# ----------------------------------------------------------------------------- calibration


def calibrate_to_subset(scores, subset_idx) -> np.ndarray:
    """Rank calibration against oversmoothing: quantile-match the extrapolated part to the subset.

    The n - m non-subset entries of ``scores`` (n,) keep their order but take the values of the
    subset's empirical score distribution at their rank quantiles (rank - 0.5) / (n - m) (ties
    share a value); subset entries are unchanged. Returns (n,) float64.
    """
    from scipy.stats import rankdata

    scores = as_finite_vector("scores", scores)
    idx = as_index_vector("subset_idx", subset_idx, scores.size)
    if idx.size == 0:
        raise ScorecastError("subset_idx is empty; calibration needs the subset's scores")
    rest = _complement(scores.size, idx)
    out = scores.copy()
    if rest.size:
        out[rest] = np.quantile(scores[idx], (rankdata(scores[rest]) - 0.5) / rest.size)
    return out

"""Nearest-neighbour search: exact (faiss, or chunked torch matmul on a GPU when present) or approximate
for millions of points on a CPU (faiss IVF or HNSW)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import torch

from ..validation import ScorecastError, as_finite_matrix, check_choice, check_positive_int, resolve_device

METRICS = ("euclidean", "cosine")
METRIC = "euclidean"  # the distance every search and extrapolator uses by default (the paper's)
BACKENDS = ("auto", "faiss", "torch", "ivf", "hnsw")
IVF_PROBES, HNSW_LINKS = 32, 32  # approximate backends: IVF lists scanned per query; HNSW links per node


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
    metric: str = METRIC,
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

"""Score extrapolators: predict pruning scores of unscored samples from a scored subset.

Pure functions: arrays in, arrays out, no files, no global state. The embedding step happens
elsewhere and arrives here as ``Z`` (n, d). Every extrapolator has the call shape::

    f(Z, subset_idx, subset_scores, ...) -> (n,) float64

with ``out[subset_idx] == subset_scores`` exactly (subset samples keep their own scores) and the
other n - m entries predicted. By concern:

- :mod:`.search`: nearest-neighbour search (exact: faiss or chunked torch, on a GPU when present;
  approximate for millions of points on a CPU: faiss IVF or HNSW);
- :mod:`.neighbours`: kNN, the sampling baselines and rank calibration against oversmoothing;
- :mod:`.graph`: the GCN over the kNN graph (full batch, or neighbour-sampled mini-batches for large
  graphs) and the MLP;
- :mod:`.selection`: hyper-parameters by cross-validation on the subset, or by the paper's oracle.

Their public functions are all importable from here (``scorecast.extrapolate.knn``, ...).
"""

from .common import K, Extrapolator
from .graph import KnnGraph, gnn, knn_graph, mlp
from .neighbours import WEIGHTINGS, calibrate_to_subset, knn, score_sampling, subset_plus_random
from .search import BACKENDS, METRICS, nearest_neighbours
from .selection import KS, best_params, cross_validate, oracle_validate, select_k_cv, select_k_oracle

__all__ = ["BACKENDS", "K", "KS", "METRICS", "WEIGHTINGS", "Extrapolator", "KnnGraph", "best_params", "calibrate_to_subset",
           "cross_validate", "gnn", "knn", "knn_graph", "mlp", "nearest_neighbours", "oracle_validate", "score_sampling",
           "select_k_cv", "select_k_oracle", "subset_plus_random"]

"""GNN extrapolation benchmark: graph build and training time at n = 50,000, k = 10, d = 512.

Run: PYTHONPATH=lib python benchmarks/bench_gnn.py [--threads 2] [--n 50000] [--epochs 2 6]

Times knn_graph() once, then gnn() (labels given, paper architecture, full batch) on the
prebuilt graph for two epoch counts; per-epoch time = difference / difference in epochs, which
removes the fixed cost (features, sparse normalisation, final prediction). An epoch is one
training step plus one validation forward. Peak RSS from /proc/self/status (VmHWM).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from scorecast import extrapolate as E

from bench_knn import clustered, peak_rss_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--epochs", type=int, nargs=2, default=[2, 6])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)

    rng = np.random.default_rng(1)
    Z = clustered(args.n)
    idx = rng.choice(args.n, args.n // 5, replace=False)
    scores, labels = rng.random(args.n // 5), rng.integers(10, size=args.n)

    start = time.perf_counter()
    graph = E.knn_graph(Z, args.k)
    build = time.perf_counter() - start
    totals = {}
    for epochs in args.epochs:
        start = time.perf_counter()
        E.gnn(Z, idx, scores, labels=labels, k=args.k, epochs=epochs, graph=graph, device="cpu")
        totals[epochs] = time.perf_counter() - start
    (e0, t0), (e1, t1) = totals.items()
    per_epoch = (t1 - t0) / (e1 - e0)

    print(f"threads: torch {torch.get_num_threads()}, faiss {faiss.omp_get_max_threads()}\n")
    print(f"## GNN n={args.n:,} d=512 k={args.k} m={args.n // 5:,}, 10 classes, hidden (512, 256), CPU full batch\n")
    print("| stage | seconds |\n|---|---|")
    print(f"| knn_graph (exact, faiss) | {build:.1f} |")
    for epochs, seconds in totals.items():
        print(f"| gnn, {epochs} epochs (incl. fixed cost) | {seconds:.1f} |")
    print(f"| per epoch (train step + validation forward) | {per_epoch:.2f} |")
    print(f"| fixed cost per gnn call | {t0 - e0 * per_epoch:.1f} |")
    print(f"| projected gnn call, 50 epochs (paper), graph prebuilt | {t0 + (50 - e0) * per_epoch:.0f} |")
    print(f"\npeak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()

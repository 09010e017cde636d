"""kNN extrapolation benchmark: scorecast.extrapolate.knn vs bare faiss vs scikit-learn, and scaling.

Run: PYTHONPATH=lib python benchmarks/bench_knn.py [--threads 2] [--repeats 3] [--sizes 10000 50000 200000]
(``--sizes`` with no value skips the scaling part)

Part 1 (one process, side by side): n = 50,000 clustered float32 embeddings of d = 512, subset
m = 10,000, k = 10, exp weighting. Times our knn() on each backend, a bare faiss IndexFlatL2
add + search of the same neighbours (no weighting, no checks), and sklearn's brute-force
KNeighborsRegressor fit + predict with the same softmax(-d) weights. Best of ``--repeats``.
Methods run round-robin, so background load falls on all of them alike.
Part 2: one subprocess per n (m = n / 5); peak RSS is VmHWM from /proc/self/status (which sees
torch and faiss allocations), reset just before the knn() call, so "peak - before" is the call's
own working memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch

from scorecast import extrapolate as E


def clustered(n: int, d: int = 512, clusters: int = 100, seed: int = 0) -> np.ndarray:
    """(n, d) float32 Gaussian mixture: unit-variance clusters around centres of norm ~ 3 * sqrt(d)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(clusters, d)).astype(np.float32)
    return centres[rng.integers(clusters, size=n)] + rng.standard_normal((n, d), dtype=np.float32)


def problem(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    return clustered(n, seed=seed), rng.choice(n, n // 5, replace=False), rng.random(n // 5)


def interleaved_best(runs: dict, repeats: int) -> dict:
    """name -> (best seconds, last result); methods run round-robin so background load hits all alike."""
    times, results = {name: [] for name in runs}, {}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (min(times[name]), results[name]) for name in runs}


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux: writing 5 to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def side_by_side(repeats: int) -> None:
    import faiss
    from sklearn.neighbors import KNeighborsRegressor

    Z, idx, scores = problem(50_000)
    rest = np.setdiff1d(np.arange(len(Z)), idx)

    def bare_faiss():
        index = faiss.IndexFlatL2(Z.shape[1])
        index.add(Z[idx])
        return index.search(Z[rest], 10)

    def softmax_weights(d: np.ndarray) -> np.ndarray:
        return np.exp(d.min(1, keepdims=True) - d)

    def sklearn_knn():
        model = KNeighborsRegressor(n_neighbors=10, weights=softmax_weights, algorithm="brute")
        return model.fit(Z[idx], scores).predict(Z[rest])

    runs = {
        "scorecast knn (faiss backend)": lambda: E.knn(Z, idx, scores, k=10, weighting="exp", backend="faiss"),
        "scorecast knn (torch backend)": lambda: E.knn(Z, idx, scores, k=10, weighting="exp", backend="torch"),
        "bare faiss IndexFlatL2 add+search": bare_faiss,
        "sklearn KNeighborsRegressor fit+predict": sklearn_knn,
    }
    results = interleaved_best(runs, repeats)
    reference = results["bare faiss IndexFlatL2 add+search"][0]
    print(f"## n=50,000 d=512 m=10,000 k=10 exp weighting, best of {repeats}\n")
    print("| method | seconds | / bare faiss |\n|---|---|---|")
    for name, (seconds, _) in results.items():
        print(f"| {name} | {seconds:.2f} | {seconds / reference:.2f}x |")
    ours = results["scorecast knn (faiss backend)"][1][rest]
    gap = np.abs(ours - results["sklearn KNeighborsRegressor fit+predict"][1])
    print(f"\n|ours - sklearn| on unscored samples: median {np.median(gap):.1e}, max {gap.max():.1e}, "
          f"share > 1e-4: {(gap > 1e-4).mean():.3%} (float32 distances; near-ties at the k-th neighbour)")
    same = (results["bare faiss IndexFlatL2 add+search"][1][1] == E.nearest_neighbours(Z[rest], Z[idx], 10)[1]).mean()
    print(f"neighbour entries identical to bare faiss: {same:.3%}\n")


def one_size(n: int, backend: str) -> dict:
    """Runs in its own process: time and peak memory of one knn() call at size n."""
    Z, idx, scores = problem(n)
    reset_peak_rss()
    before = peak_rss_mib()
    start = time.perf_counter()
    E.knn(Z, idx, scores, k=10, weighting="exp", backend=backend)
    return {"n": n, "backend": backend, "seconds": time.perf_counter() - start,
            "rss_before_mib": before, "peak_mib": peak_rss_mib()}


def scaling(sizes: list[int], threads: int) -> None:
    print("## scaling, m = n/5, k=10, exp weighting (one subprocess per row)\n")
    print("| n | m | backend | seconds | RSS before MiB | peak RSS MiB | call's extra MiB | Z MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for backend in ("faiss", "torch"):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--backend", backend, "--threads", str(threads)],
                check=True, capture_output=True, text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"| {n:,} | {n // 5:,} | {backend} | {r['seconds']:.2f} | {r['rss_before_mib']:.0f} | "
                  f"{r['peak_mib']:.0f} | {r['peak_mib'] - r['rss_before_mib']:.0f} | {n * 512 * 4 / 2**20:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 50_000, 200_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="faiss", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    if args.one:
        print(json.dumps(one_size(args.one, args.backend)))
        return
    print(f"threads: torch {torch.get_num_threads()}, faiss {faiss.omp_get_max_threads()}\n")
    side_by_side(args.repeats)
    if args.sizes:
        scaling(args.sizes, args.threads)


if __name__ == "__main__":
    main()

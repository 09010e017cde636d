"""Scale benchmark: a dataset larger than RAM, kNN graphs and the GCN at up to 1M nodes, on CPU.

Run (from the repository root, PYTHONPATH=lib):
  python benchmarks/bench_scale.py data --n 1280000 --folder /tmp/scale   # ImageNet-64-sized set
  python benchmarks/bench_scale.py knn --sizes 25000 50000 100000 --big 1000000 --d 64
  python benchmarks/bench_scale.py gnn --n 1000000 --d 64

data: writes n random images in the imagenet64 npz format (10 train batch files), converts
them with ``load_dataset(..., mmap=folder)`` (streaming, one file at a time), then, each in a
fresh process, maps the converted file, hashes it (fingerprint), draws 20 shuffled training
batches of 256, and makes one test-transform pass over every sample (a per-sample mean: an
embedding pass without a model).
knn: exact kNN graph (faiss and chunked torch) at ``--sizes``, the approximate ivf and hnsw
backends with their recall@k against exact, and ivf at ``--big`` with recall measured on 2,000
random query rows against an exact torch search of those rows.
gnn: kNN graph (ivf, or with --random-graph random neighbours: same cost) of n clustered points,
then mini-batch ``gnn`` (paper architecture, 100 classes, m = n/5) for one epoch, and at
``--full-n`` one full-batch and one mini-batch epoch.

Peak memory: VmHWM (resident set, including pages of a mapped file, which the kernel can drop
at any time) and the peak of RssAnon (private memory, what must fit in RAM), sampled every
50 ms; both reset (clear_refs) at the start of each measured phase.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from scorecast import data as D
from scorecast import extrapolate as E

from bench_knn import clustered


class Peak:
    """Context manager: seconds, peak VmHWM and peak RssAnon (MiB) of this process over the block."""

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self.anon, self.running = self._status("RssAnon"), True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.running = False
        self.thread.join()
        self.hwm = self._status("VmHWM")
        return False

    def _sample(self):
        while self.running:
            self.anon = max(self.anon, self._status("RssAnon"))
            time.sleep(0.05)

    @staticmethod
    def _status(field: str) -> float:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024

    def row(self, label: str) -> str:
        return f"| {label} | {self.seconds:.1f} | {self.hwm:,.0f} | {self.anon:,.0f} |"


def data(args) -> None:
    folder = Path(args.folder)
    raw, mapped = folder / "imagenet64", folder / "mmap"
    if not args.phases_only:
        raw.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        per_file = args.n // 10
        start = time.perf_counter()
        for i in range(1, 11):
            np.savez(raw / f"train_data_batch_{i}.npz", data=rng.integers(0, 256, (per_file, 12288), dtype=np.uint8),
                     labels=rng.integers(1, 1001, per_file))
        print(f"generated {10 * per_file:,} images ({10 * per_file * 12288 / 1e9:.1f} GB) in {time.perf_counter() - start:.0f} s")
        print("| phase | seconds | peak VmHWM MiB | peak RssAnon MiB |\n|---|---|---|---|")
        with Peak() as p:
            D.load_dataset("imagenet64", "train", raw, mmap=mapped)
        print(p.row("convert (first load with mmap)"), flush=True)
        shutil.rmtree(raw)
    for phase in ("map", "fingerprint", "batches", "pass"):  # each in a fresh process: its VmHWM is its own
        subprocess.run([sys.executable, __file__, "data-phase", phase, "--folder", args.folder, "--threads", str(args.threads)], check=True)


def data_phase(args) -> None:
    folder = Path(args.folder)
    with Peak() as p:
        dataset = D.load_dataset("imagenet64", "train", folder / "imagenet64", mmap=folder / "mmap")
    if args.phase == "map":
        print(p.row("map (later loads)"))
        return
    with Peak() as p:
        if args.phase == "fingerprint":
            dataset.fingerprint()
        elif args.phase == "batches":
            for _ in zip(range(20), D.batches(dataset, np.arange(len(dataset)), 256, train=True, generator=torch.Generator().manual_seed(0))):
                pass
        else:
            torch.cat([x.mean((1, 2, 3)) for x, _, _ in D.batches(dataset, np.arange(len(dataset)), 1024, train=False)])
    label = {"fingerprint": "fingerprint (sequential read of every row)", "batches": "20 shuffled training batches of 256",
             "pass": f"test-transform pass over all {len(dataset):,} samples (per-sample mean)"}[args.phase]
    print(p.row(label), flush=True)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Share of the exact neighbours (rows of ``exact``) present in the same rows of ``found``."""
    return float(np.mean([np.isin(e, f).mean() for f, e in zip(found, exact)]))


def knn(args) -> None:
    print("| n | d | backend | seconds | peak VmHWM MiB | peak RssAnon MiB | recall@10 |\n|---|---|---|---|---|---|---|")
    for n in args.sizes:
        Z = clustered(n, args.d)
        graphs = {}
        for backend in ("faiss", "torch", "ivf", "hnsw"):
            with Peak() as p:
                graphs[backend] = E.knn_graph(Z, 10, backend=backend, device="cpu").indices
            print(f"| {n:,} | {args.d} | {backend} | {p.seconds:.1f} | {p.hwm:,.0f} | {p.anon:,.0f} | {recall(graphs[backend], graphs['faiss']):.4f} |", flush=True)
    if args.big:
        Z = clustered(args.big, args.d)
        with Peak() as p:
            graph = E.knn_graph(Z, 10, backend="ivf", device="cpu")
        rows = np.sort(np.random.default_rng(0).choice(args.big, 2000, replace=False))
        _, exact = E.nearest_neighbours(Z[rows], Z, 11, backend="torch", device="cpu")
        exact = np.array([e[e != r][:10] for e, r in zip(exact, rows)])
        print(f"| {args.big:,} | {args.d} | ivf | {p.seconds:.1f} | {p.hwm:,.0f} | {p.anon:,.0f} | {recall(graph.indices[rows], exact):.4f} (2,000 rows) |", flush=True)
        np.savez(Path(args.folder) / f"graph-{args.big}-{args.d}.npz", distances=graph.distances, indices=graph.indices)


def gnn(args) -> None:
    print("| n | mode | epochs | seconds | peak VmHWM MiB | peak RssAnon MiB |\n|---|---|---|---|---|---|")
    for n, modes in ((args.full_n, ("full batch", "mini-batch")), (args.n, ("mini-batch",))):
        if not n:
            continue
        Z = clustered(n, args.d)
        rng = np.random.default_rng(1)
        idx, labels = rng.choice(n, n // 5, replace=False), rng.integers(100, size=n)
        scores = Z[idx, 0] + rng.normal(size=n // 5)
        cached = Path(args.folder) / f"graph-{n}-{args.d}.npz"
        if args.random_graph:  # time and memory of the GCN depend on n and k, not on which neighbours
            distances = np.sort(rng.random((n, 10), dtype=np.float32) * 10, axis=1)
            graph = E.KnnGraph(distances, (np.arange(n)[:, None] + rng.integers(1, n, (n, 10))) % n, "euclidean")
        elif cached.is_file():
            with np.load(cached) as arrays:
                graph = E.KnnGraph(arrays["distances"], arrays["indices"], "euclidean")
        else:
            graph = E.knn_graph(Z, 10, backend="ivf", device="cpu")
        for mode in modes:
            options = {"batch_size": args.batch_size, "fanout": args.fanout} if mode == "mini-batch" else {}
            with Peak() as p:
                E.gnn(Z, idx, scores, labels=labels, graph=graph, epochs=1, device="cpu", **options)
            print(f"| {n:,} | {mode} | 1 | {p.seconds:.1f} | {p.hwm:,.0f} | {p.anon:,.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("data", "data-phase", "knn", "gnn"))
    parser.add_argument("phase", nargs="?", choices=("map", "fingerprint", "batches", "pass"), help="data-phase only")
    parser.add_argument("--phases-only", action="store_true", help="data: measure an existing conversion under --folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--folder", default="/tmp/scorecast-scale")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--full-n", type=int, default=100_000, help="gnn: size for full batch vs mini-batch (0: skip)")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="*", default=[25_000, 50_000, 100_000])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--random-graph", action="store_true", help="gnn: random 10-neighbour graph instead of an ivf kNN graph")
    parser.add_argument("--fanout", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    Path(args.folder).mkdir(parents=True, exist_ok=True)
    {"data": data, "data-phase": data_phase, "knn": knn, "gnn": gnn}[args.what](args)


if __name__ == "__main__":
    main()

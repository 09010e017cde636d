"""The prepared GPU check (under 10 minutes on one GPU): run it whenever a GPU is available and
record its output in BENCHMARKS.md.

1. One paper-tier CIFAR-10 training epoch (50,000 images, ResNet-18 with the 3x3 stem, batch 256,
   Adam, full recording: true_prob, correct and loss of every sample plus its full softmax) with
   each speed option off and on: bf16 autocast, channels_last, records copied once per epoch,
   all three (the CUDA default), all three plus torch.compile. Each variant trains two epochs; the
   first (cuDNN autotuning, compilation) is reported apart from the second, the timed one. Host
   syncs in the timed epoch are counted with ``torch.cuda.set_sync_debug_mode("warn")``.
2. Fig. 2's total on this GPU from the measured epochs: the current grid's work, counted from
   params/paper/fig2_accuracy_vs_pruning_rate.yaml by ``bench_gpu_options.fig2_work`` (images
   through training steps, forward passes, training runs), times the timed epoch's seconds per
   image with every option on, plus a fixed cost per training run (the first epoch's extra time:
   cuDNN autotuning, allocator warm-up). Forward passes are costed at the counted FLOP ratio of a
   forward pass to a training step (an assumption, labelled as such).
3. kNN extrapolation's search at the paper's largest scale: 1,000,000 x 512 float32 queries
   against 200,000 base points, k = 10: exact torch search on the GPU in float32 and with TF32
   matmuls (recall against float32), faiss IVF on the CPU (recall), and exact faiss on the CPU timed
   on a slice of the queries and scaled up (labelled as such).

    PYTHONPATH=lib python benchmarks/gpu_check.py [--root DIR_WITH_cifar-10-batches-py] [--out FILE]
    PYTHONPATH=lib python benchmarks/gpu_check.py --cpu-smoke   # tiny sizes on the CPU, proves it runs

Without --root the images are random CIFAR-shaped uint8 (the timing does not depend on content).
Without a GPU it stops at once unless --cpu-smoke is given.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import scorecast.train as train_module  # noqa: E402
from bench_gpu_options import cifar_shaped, fig2_work, train_flops_per_image  # noqa: E402
from scorecast.data import load_dataset  # noqa: E402
from scorecast.extrapolate import nearest_neighbours  # noqa: E402
from scorecast.models import build_model  # noqa: E402
from scorecast.train import Recipe, RecordSpec, train  # noqa: E402

OFF = {"amp": False, "channels_last": False, "compile": False}
# name: (recipe options, record_flush)
VARIANTS = {
    "all off (fp32, contiguous, per-batch copies)": (OFF, "batch"),
    "bf16 autocast": ({**OFF, "amp": True}, "batch"),
    "channels_last": ({**OFF, "channels_last": True}, "batch"),
    "per-epoch record copies": (OFF, "epoch"),
    "all on (CUDA default)": ({**OFF, "amp": True, "channels_last": True}, "epoch"),
    "all on + torch.compile": ({"amp": True, "channels_last": True, "compile": True}, "epoch"),
}
FULL = {"model": "resnet18", "n": 50_000, "batch_size": 256, "knn_queries": 1_000_000, "knn_base": 200_000, "knn_dim": 512, "faiss_slice": 25_000}
SMOKE = {"model": "tiny_cnn", "n": 256, "batch_size": 64, "knn_queries": 3_000, "knn_base": 600, "knn_dim": 16, "faiss_slice": 500}


class EpochClock:
    """Replaces scorecast.train's progress loop while active: wall seconds of each epoch (the device
    synchronised at both ends) and, on CUDA, the host syncs counted in each epoch."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self.syncs = device, [], []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _epochs(self, iterable, desc, total=None, disable=False):
        for epoch in iterable:
            self._sync()
            seen, start = len(self.log), time.perf_counter()
            if self.device.type == "cuda":
                torch.cuda.set_sync_debug_mode("warn")
            yield epoch
            if self.device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
            self._sync()
            self.seconds.append(time.perf_counter() - start)
            self.syncs.append(sum("synchronizing" in str(w.message) for w in self.log[seen:]) if self.device.type == "cuda" else None)

    def __enter__(self):
        self._catch = warnings.catch_warnings(record=True)
        self.log = self._catch.__enter__()
        warnings.simplefilter("always")
        self._progress, train_module.progress = train_module.progress, self._epochs
        return self

    def __exit__(self, *exc):
        train_module.progress = self._progress
        self._catch.__exit__(*exc)


def training_epochs(dataset, sizes: dict, device: str, variants: dict) -> list[tuple[str, float, float, int | None]]:
    """[(variant, first epoch s, timed epoch s, host syncs in the timed epoch)]: two recorded epochs each."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for i, (name, (options, flush)) in enumerate(variants.items()):
            model = build_model(sizes["model"], dataset.num_classes, dataset.in_channels, seed=0)
            recipe = Recipe(epochs=2, batch_size=sizes["batch_size"], **options)
            with EpochClock(torch.device(device)) as clock:
                train(model, dataset, np.arange(len(dataset)), recipe, 0, RecordSpec("train", (0, 1)), Path(scratch) / str(i),
                      device=device, record_flush=flush)
            rows.append((name, clock.seconds[0], clock.seconds[1], clock.syncs[1]))
            print(f"  {name}: first epoch {clock.seconds[0]:.2f} s, timed epoch {clock.seconds[1]:.2f} s, host syncs {clock.syncs[1]}", flush=True)
    return rows


def fig2_total(epochs: list[tuple[str, float, float, int | None]], n: int, model: str) -> list[str]:
    """Markdown lines: Fig. 2's total seconds from the measured ``epochs`` rows (variant, first s,
    timed s, syncs) of an ``n``-image epoch, per variant, for the current paper grid."""
    work = fig2_work()
    train_flops, forward_flops = train_flops_per_image(model)
    runs = work["scoring_runs"] + work["retrain_runs"]
    lines = ["", f"Fig. 2 (paper tier, current grid): {work['train_images'] / 1e6:.1f} M images through training steps, "
             f"{work['forward_images'] / 1e6:.2f} M through forward passes, {runs} training runs "
             f"({work['scoring_runs']} scoring, {work['retrain_runs']} retraining); forward passes ASSUMED to cost "
             f"{forward_flops / train_flops:.2f} of a training step (counted FLOPs)", "",
             "| variant | s per training image | fixed s per run (first - timed epoch) | Fig. 2 total (GPU-hours) |", "|---|---|---|---|"]
    for name, first, timed, _ in epochs:
        per_image = timed / n
        fixed = max(first - timed, 0.0)
        seconds = work["train_images"] * per_image + work["forward_images"] * per_image * forward_flops / train_flops + runs * fixed
        lines.append(f"| {name} | {per_image * 1e6:.1f} us | {fixed:.2f} | {seconds / 3600:.2f} |")
    return lines


@contextlib.contextmanager
def tf32(enabled: bool):
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row's exact neighbours (q, k) that ``found`` (q, k) contains."""
    hits = sum((found[start : start + 65536, :, None] == exact[start : start + 65536, None, :]).any(2).sum() for start in range(0, len(exact), 65536))
    return float(hits / exact.size)


def knn_rows(sizes: dict, gpu: bool) -> list[tuple[str, float, str]]:
    """[(search, seconds, note)] for the kNN search of knn_queries x knn_dim against knn_base, k = 10."""
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((sizes["knn_queries"], sizes["knn_dim"]), dtype=np.float32)
    base = rng.standard_normal((sizes["knn_base"], sizes["knn_dim"]), dtype=np.float32)
    rows, exact = [], None

    def timed(name, note_of, **kwargs):
        start = time.perf_counter()
        found = nearest_neighbours(kwargs.pop("q", queries), base, 10, **kwargs)[1]
        seconds = time.perf_counter() - start
        rows.append((name, seconds, note_of(found)))
        print(f"  {name}: {seconds:.2f} s, {rows[-1][2]}", flush=True)
        return found

    device = "cuda" if gpu else "cpu"
    with tf32(False):
        exact = timed(f"torch exact, float32, {device}", lambda f: "reference", backend="torch", device=device)
    if gpu:
        with tf32(True):
            timed("torch exact, TF32 matmul, cuda", lambda f: f"recall@10 vs float32 {recall(f, exact):.4f}", backend="torch", device="cuda")
    timed("faiss IVF (approximate), cpu", lambda f: f"recall@10 {recall(f, exact):.4f}", backend="ivf", device="cpu")
    part = sizes["faiss_slice"]
    start = time.perf_counter()
    nearest_neighbours(queries[:part], base, 10, backend="faiss", device="cpu")
    scaled = (time.perf_counter() - start) * len(queries) / part
    rows.append(("faiss exact, cpu", scaled, f"SCALED from {part:,} queries (x{len(queries) / part:g})"))
    print(f"  faiss exact, cpu: {scaled:.1f} s, {rows[-1][2]}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (no compile variant): proves the script runs")
    parser.add_argument("--root", default=None, help="folder holding cifar-10-batches-py/ (default: random CIFAR-shaped images)")
    parser.add_argument("--out", default=None, help="also write the Markdown tables to this file")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    if not gpu and not args.cpu_smoke:
        print("gpu_check.py needs a CUDA GPU (torch.cuda.is_available() is False here). Run it on a GPU machine, "
              "or pass --cpu-smoke for a tiny CPU run that only proves the script works.", file=sys.stderr)
        return 2
    sizes, device = (SMOKE, "cpu") if args.cpu_smoke else (FULL, "cuda")
    variants = {k: v for k, v in VARIANTS.items() if not (args.cpu_smoke and v[0]["compile"])}
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU smoke run ({torch.get_num_threads()} threads)"
    lines = [f"gpu_check on {where}, torch {torch.__version__}"]
    print(lines[0], flush=True)
    start = time.perf_counter()

    if args.root:
        dataset = load_dataset("cifar10", root=args.root)
    else:
        dataset = cifar_shaped(sizes["n"])
    print(f"1. training epochs: {sizes['model']}, {len(dataset):,} images, batch {sizes['batch_size']}, full recording", flush=True)
    epochs = training_epochs(dataset, sizes, device, variants)
    base = epochs[0][2]
    lines += ["", f"Training epoch: {sizes['model']}, {len(dataset):,} {'CIFAR-10' if args.root else 'random CIFAR-shaped'} images, "
              f"batch {sizes['batch_size']}, full recording", "",
              "| variant | first epoch (s) | timed epoch (s) | vs all off | host syncs in the timed epoch |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {first:.2f} | {timed:.2f} | {timed / base:.2f}x | {'n/a (CPU)' if syncs is None else syncs} |"
              for name, first, timed, syncs in epochs]

    lines += fig2_total(epochs, len(dataset), sizes["model"])

    print(f"3. kNN search: {sizes['knn_queries']:,} x {sizes['knn_dim']} against {sizes['knn_base']:,}, k = 10", flush=True)
    knn = knn_rows(sizes, gpu and not args.cpu_smoke)
    lines += ["", f"kNN search: {sizes['knn_queries']:,} x {sizes['knn_dim']} queries against {sizes['knn_base']:,}, k = 10", "",
              "| search | seconds | note |", "|---|---|---|"]
    lines += [f"| {name} | {seconds:.2f} | {note} |" for name, seconds, note in knn]
    lines += ["", f"total wall time {time.perf_counter() - start:.0f} s"]
    report = "\n".join(lines)
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

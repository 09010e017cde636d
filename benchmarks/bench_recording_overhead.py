"""Cost of recording training dynamics: the same model on the same data trained plain
(``record=None``) and with recording (``RecordSpec`` source "train" and source "eval", full softmax
kept for every epoch), measured side by side in one process with interleaved repeats.

Default: real CIFAR-10 (the JPEG copy in ../shared/data), a seeded 5,000-image subset, 2 epochs,
tiny_cnn and resnet20, 3 repeats of each variant, median wall time, 2 torch threads.

    tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp/cifar     # once
    PYTHONPATH=lib python benchmarks/bench_recording_overhead.py --root /tmp/cifar/cifar10-jpeg

Without --root (or SCORECAST_DATA_ROOT) it falls back to scikit-learn's digits (a smoke run;
the absolute numbers then say little about CIFAR-scale overhead).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from scorecast.data import load_dataset, random_subset  # noqa: E402
from scorecast.models import build_model  # noqa: E402
import scorecast.train as train_module  # noqa: E402
from scorecast.train import Recipe, RecordSpec, train  # noqa: E402

VARIANTS = ("plain", "record-train", "record-eval")


class Accounting:
    """Wall and CPU seconds spent inside the recording machinery during one train() call:
    _Recorder (memmap setup, per-batch record, flush) and, for source "eval", the extra
    eval pass (_eval_pass). Measured inside the same run as the total, so machine-wide contention hits
    both alike: on a busy shared machine this ratio is far more stable than a difference of
    two noisy totals."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        self._saved = []

    def _wrap(self, owner, name):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - w
                self.cpu += time.process_time() - c

        self._saved.append((owner, name, original))
        setattr(owner, name, timed)

    def __enter__(self):
        for name in ("__init__", "record", "close"):
            self._wrap(train_module._Recorder, name)
        self._wrap(train_module, "_eval_pass")  # the eval source's extra pass
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)


def one_run(model_name, dataset, indices, recipe, variant, seed, scratch: Path) -> tuple[float, float, float, float]:
    """(wall s, process CPU s, wall s inside recording, CPU s inside recording) of one train()
    call (model built outside the timing)."""
    model = build_model(model_name, dataset.num_classes, dataset.in_channels, seed=seed)
    record, folder = None, None
    if variant != "plain":
        record = RecordSpec("train" if variant == "record-train" else "eval", tuple(range(recipe.epochs)))
        folder = Path(tempfile.mkdtemp(dir=scratch))
    with Accounting() as inside:
        start, cpu = time.perf_counter(), time.process_time()
        train(model, dataset, indices, recipe, seed=seed, record=record, record_dir=folder, device="cpu")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if folder is not None:
        shutil.rmtree(folder)
    return seconds, cpu, inside.wall, inside.cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("SCORECAST_DATA_ROOT"), help="cifar10-jpeg folder (imagefolder layout)")
    parser.add_argument("--models", nargs="+", default=["tiny_cnn", "resnet20"])
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    os.environ.setdefault("SCORECAST_QUIET", "1")
    start = time.perf_counter()
    if args.root:
        dataset = load_dataset("imagefolder", "train", root=args.root)
    else:
        print("no --root: using digits (smoke run)")
        dataset = load_dataset("digits", "train")
    print(f"loaded {dataset.name} train ({len(dataset)} images {tuple(dataset.images.shape[1:])}) in {time.perf_counter() - start:.1f} s")
    indices = random_subset(len(dataset), min(args.subset, len(dataset)), seed=0)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size)
    print(f"subset {len(indices)}, {args.epochs} epochs, batch {args.batch_size}, torch threads {torch.get_num_threads()}, "
          f"{args.repeats} interleaved repeats per variant, median reported")

    scratch = Path(tempfile.mkdtemp(prefix="bench-record-"))
    try:
        for model_name in args.models:
            one_run(model_name, dataset, indices[:256], Recipe(epochs=1, batch_size=args.batch_size), "record-train", 0, scratch)  # warm-up
            wall = {v: [] for v in VARIANTS}
            cpu = {v: [] for v in VARIANTS}
            inside = {v: [] for v in VARIANTS}  # (wall, cpu) overhead fractions measured in-run
            for repeat in range(args.repeats):
                order = VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]  # alternate to cancel drift
                for variant in order:
                    w, c, iw, ic = one_run(model_name, dataset, indices, recipe, variant, 0, scratch)
                    wall[variant].append(w)
                    cpu[variant].append(c)
                    inside[variant].append((iw / (w - iw), ic / (c - ic)))
            print(f"\n{model_name}")
            for variant in VARIANTS[1:]:
                fw = statistics.median(f[0] for f in inside[variant])
                fc = statistics.median(f[1] for f in inside[variant])
                print(f"  in-run accounting {variant:13s}: recording work / rest of the run = {100 * fw:.1f}% wall, {100 * fc:.1f}% cpu (median)")
            for label, times in (("wall", wall), ("cpu", cpu)):
                med = {v: statistics.median(t) for v, t in times.items()}
                low = {v: min(t) for v, t in times.items()}
                for variant in VARIANTS:
                    raw = " ".join(f"{t:.2f}" for t in times[variant])
                    print(f"  {label:4s} {variant:13s} median {med[variant]:7.2f} s ratio {med[variant] / med['plain']:.3f} "
                          f"({100 * (med[variant] / med['plain'] - 1):+.1f}%) | min {low[variant]:7.2f} s ratio "
                          f"{low[variant] / low['plain']:.3f} ({100 * (low[variant] / low['plain'] - 1):+.1f}%) | runs {raw}")
                spread = max(max(t) / min(t) for t in times.values())
                print(f"  {label:4s} largest max/min spread within one variant: {spread:.3f} (noise floor)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

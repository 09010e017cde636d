"""Speed options on the CPU, side by side, and a PROJECTED GPU cost of the paper's Fig. 2.

Part 1 (measured): the same recorded training run (dynamics from the training pass, full softmax
in the last epoch) with each option of :class:`scorecast.train.Recipe` on and off: bf16 autocast,
channels_last, both, and records copied to the host once per epoch instead of once per batch.
Variants are interleaved over ``--repeats`` rounds in one process; the table gives the median
seconds per optimizer step. It also counts the device-to-host copies per epoch (``Tensor.cpu``
calls during the run): on a GPU each is a host sync that stalls the queue of kernels.

Part 2 (PROJECTED, not measured): GPU hours of Fig. 2 on the paper tier, from the work in its
parameter files (params/paper/fig2_accuracy_vs_pruning_rate.yaml and experiment.yaml: every
training and inference pass, in images) times the FLOPs per image of the paper's model (counted
here with torch.utils.flop_counter), divided by an ASSUMED sustained GPU throughput (options
--peak-tflops and --utilisation, printed). Replace the assumption with a measurement by passing
--epoch-seconds from benchmarks/gpu_check.py (seconds per CIFAR-10 training epoch).

    PYTHONPATH=lib OMP_NUM_THREADS=1 python benchmarks/bench_gpu_options.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from scorecast.data import CIFAR_MEAN, CIFAR_STD, Augmentation, ImageDataset  # noqa: E402
from scorecast.models import build_model  # noqa: E402
from scorecast.paramfiles import read_params  # noqa: E402
from scorecast.train import Recipe, RecordSpec, train  # noqa: E402

# name: (recipe options, record_flush)
VARIANTS = {
    "baseline (fp32, contiguous, per-batch copies)": ({"amp": False, "channels_last": False}, "batch"),
    "bf16 autocast": ({"amp": True, "channels_last": False}, "batch"),
    "channels_last": ({"amp": False, "channels_last": True}, "batch"),
    "bf16 + channels_last": ({"amp": True, "channels_last": True}, "batch"),
    "per-epoch record copies": ({"amp": False, "channels_last": False}, "epoch"),
}


def cifar_shaped(n: int, seed: int = 0) -> ImageDataset:
    """n random 3x32x32 uint8 images with 10 balanced labels and CIFAR-10's transform (pad 4, crop 32, flip)."""
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8))
    labels = torch.from_numpy(np.arange(n) % 10)
    return ImageDataset("random-cifar", images, labels, [str(c) for c in range(10)], CIFAR_MEAN, CIFAR_STD, Augmentation(crop=32, pad=4))


class HostCopies:
    """Counts ``Tensor.cpu`` calls while active (the recorder's device-to-host copies)."""

    def __enter__(self):
        self.count, self._cpu = 0, torch.Tensor.cpu
        counter = self

        def cpu(tensor, *args, **kwargs):
            counter.count += 1
            return counter._cpu(tensor, *args, **kwargs)

        torch.Tensor.cpu = cpu
        return self

    def __exit__(self, *exc):
        torch.Tensor.cpu = self._cpu


def measure(model_name: str, n: int, batch_size: int, epochs: int, repeats: int) -> dict:
    """{variant: (median seconds per step, host copies in one run)}, variants interleaved per repeat."""
    dataset, steps = cifar_shaped(n), epochs * -(-n // batch_size)
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    copies: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats):
            for name, (options, flush) in VARIANTS.items():
                model = build_model(model_name, 10, 3, seed=0)
                recipe = Recipe(epochs=epochs, batch_size=batch_size, **options)
                with HostCopies() as counted:
                    start = time.perf_counter()
                    train(model, dataset, np.arange(n), recipe, 0, RecordSpec("train", (epochs - 1,)), Path(scratch) / f"{repeat}-{len(copies)}-{name[:4]}",
                          device="cpu", record_flush=flush)
                    seconds[name].append((time.perf_counter() - start) / steps)
                copies[name] = counted.count
    return {name: (statistics.median(seconds[name]), copies[name]) for name in VARIANTS}


def train_flops_per_image(model_name: str, num_classes: int = 10) -> tuple[float, float]:
    """(FLOPs of one training step per 3x32x32 image (forward + backward), FLOPs of one forward pass per image)."""
    model, x = build_model(model_name, num_classes, 3, seed=0), torch.randn(2, 3, 32, 32)
    with FlopCounterMode(display=False) as train_count:
        model(x).sum().backward()
    with FlopCounterMode(display=False) as forward_count, torch.no_grad():
        model(x)
    return train_count.get_total_flops() / 2, forward_count.get_total_flops() / 2


def fig2_work(path: str = "params/paper/fig2_accuracy_vs_pruning_rate.yaml", n: int = 50_000, n_test: int = 10_000) -> dict:
    """Fig. 2's paper-tier work, read from its parameter file and experiment: images through training
    steps and forward-only passes, and training runs, counted as the cache runs them. Per seed: a full
    and a ``fraction`` scoring run (subset_length: epochs); one retraining per (method, rate) of
    ``methods`` and ``balanced_methods``, except that rate 0 keeps every sample, so all methods share
    one run; one embedding per subset run; the proxy's views once per (subset run, augmentations)."""
    notebook = read_params(ROOT / path)  # the paper tier's values over params/base/
    experiment = yaml.safe_load((ROOT / notebook["experiment"]).read_text())
    seeds, rates, fractions = len(notebook["seeds"]), notebook["rates"], notebook["fractions"]
    scoring, retrain = experiment["scoring"]["epochs"], experiment["retrain"]["epochs"]
    methods = notebook["methods"] + notebook.get("balanced_methods", [])
    views = {m["augmentations"] for m in methods if m["name"] in ("proxy", "hybrid")}
    kept = [round((1 - r) * n) for r in rates if r > 0]
    scoring_train = scoring * n + sum(scoring * round(f * n) for f in fractions)
    retrain_runs = len(methods) * len(kept) + (0.0 in rates)
    retrain_train = retrain * (len(methods) * sum(kept) + (n if 0.0 in rates else 0))
    forward = len(fractions) * (n + sum(views) * n) + retrain_runs * n_test  # embeddings, proxy views, test passes
    return {"train_images": seeds * (scoring_train + retrain_train), "forward_images": seeds * forward, "seeds": seeds,
            "scoring_runs": seeds * (1 + len(fractions)), "retrain_runs": seeds * retrain_runs, "scoring_epochs": scoring, "retrain_epochs": retrain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20", help="CPU-sized model for part 1 (default resnet20)")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paper-model", default="resnet18")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="ASSUMED dense bf16 peak (H100/H200 SXM: 989)")
    parser.add_argument("--utilisation", type=float, default=0.05, help="ASSUMED sustained share of the peak with every option on")
    parser.add_argument("--fp32-slowdown", type=float, default=2.0, help="ASSUMED time factor with every option off (TF32 convolutions)")
    parser.add_argument("--epoch-seconds", type=float, default=None, help="MEASURED seconds per 50k-image training epoch (gpu_check.py), replaces the FLOP model")
    args = parser.parse_args()
    torch.manual_seed(0)

    print(f"Part 1 (measured, CPU, {torch.get_num_threads()} thread(s)): {args.model}, {args.n} random CIFAR-shaped images, batch {args.batch_size}, "
          f"{args.epochs} recorded epochs, median of {args.repeats} interleaved repeats")
    results = measure(args.model, args.n, args.batch_size, args.epochs, args.repeats)
    base = results[next(iter(VARIANTS))][0]
    steps_per_epoch = -(-args.n // args.batch_size)
    print(f"| variant | s / step | vs baseline | host copies in the run ({args.epochs} epochs x {steps_per_epoch} steps) |")
    print("|---|---|---|---|")
    for name, (sec, copies) in results.items():
        print(f"| {name} | {sec:.3f} | {sec / base:.2f}x | {copies:g} |")

    train_flops, forward_flops = train_flops_per_image(args.paper_model)
    work = fig2_work()
    print(f"\nPart 2 (PROJECTED, not measured): Fig. 2 on the paper tier, {args.paper_model} on CIFAR-10, {work['seeds']} seeds, "
          f"{work['retrain_runs']} retraining runs of {work['retrain_epochs']} epochs, scoring runs of {work['scoring_epochs']} epochs")
    print(f"work: {work['train_images'] / 1e6:.1f} M images through training steps, {work['forward_images'] / 1e6:.2f} M through forward passes")
    print(f"counted FLOPs per image: {train_flops / 1e9:.2f} G per training step, {forward_flops / 1e9:.2f} G per forward pass")
    total = work["train_images"] * train_flops + work["forward_images"] * forward_flops
    if args.epoch_seconds is None:
        sustained = args.peak_tflops * args.utilisation * 1e12
        options_on = total / sustained
        basis = (f"ASSUMED {args.utilisation:.0%} of a {args.peak_tflops:g} TFLOPS bf16 peak = {sustained / 1e12:.0f} TFLOPS sustained with the "
                 f"options on, {args.fp32_slowdown:g}x slower with them off")
    else:
        options_on = total / (50_000 * train_flops / args.epoch_seconds)
        basis = f"MEASURED {args.epoch_seconds:g} s per 50k-image epoch with the options on; off: ASSUMED {args.fp32_slowdown:g}x slower"
    print(f"basis: {basis}; host syncs and data loading assumed hidden behind compute; implied {options_on / total * 50_000 * train_flops:.1f} s "
          f"per 50k-image ResNet-18 training epoch (compare benchmarks/gpu_check.py)")
    print(f"PROJECTED GPU time of Fig. 2: {options_on / 3600:.1f} GPU-hours with bf16 + channels_last, "
          f"{options_on * args.fp32_slowdown / 3600:.1f} GPU-hours without (one GPU)")


if __name__ == "__main__":
    main()

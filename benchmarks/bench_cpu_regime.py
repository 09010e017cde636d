"""Which model and recipe give the cpu tier a regime where the paper's claims can be tested?

Trains each candidate (model, recipe) once on the cpu tier's training set (the class-stratified
20,000-image CIFAR-10 sample of params/cpu/experiment.yaml, flip + 4-pixel translate augmentation)
and reports test top-1 on the 10,000 test images beside the CPU cost, measured side by side in one
run on this machine (torch threads as set by OMP_NUM_THREADS).

    OMP_NUM_THREADS=2 python benchmarks/bench_cpu_regime.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SCORECAST_ROOT", str(ROOT))
os.environ.setdefault("SCORECAST_QUIET", "1")

from scorecast.data import load_dataset  # noqa: E402
from scorecast.models import build_model  # noqa: E402
from scorecast.prune import retrain_and_evaluate  # noqa: E402
from scorecast.train import Recipe  # noqa: E402

SGD = {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "onecycle", "label_smoothing": 0.1}
CANDIDATES = {
    # name: (model, recipe)
    "tiny_cnn adam const 15 (current scoring)": ("tiny_cnn", {"epochs": 15, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "schedule": "constant"}),
    "tiny_cnn adam onecycle 6 (current retrain)": ("tiny_cnn", {"epochs": 6, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-3, "schedule": "onecycle"}),
    "tiny_cnn sgd-nesterov onecycle ls0.1 15": ("tiny_cnn", {"epochs": 15, "batch_size": 128, "lr": 0.1, **SGD}),
    "cnn_bn sgd-nesterov onecycle ls0.1 15": ("cnn_bn", {"epochs": 15, "batch_size": 128, "lr": 0.1, **SGD}),
    "resnet20 sgd-nesterov onecycle ls0.1 15": ("resnet20", {"epochs": 15, "batch_size": 128, "lr": 0.1, **SGD}),
    "cnn_bn sgd-nesterov onecycle ls0.1 30": ("cnn_bn", {"epochs": 30, "batch_size": 128, "lr": 0.1, **SGD}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="substrings of candidate names to run")
    parser.add_argument("--root", default=str(ROOT / "data" / "cifar10-jpeg"))
    args = parser.parse_args()
    train_set = load_dataset("imagefolder", "train", root=args.root, limit=20000)
    test_set = load_dataset("imagefolder", "test", root=args.root)
    print(f"{len(train_set)} training / {len(test_set)} test images, {torch.get_num_threads()} torch threads", flush=True)
    print(f"{'candidate':45s} {'params':>8s} {'top1':>6s} {'minutes':>8s} {'img/s':>6s}")
    for name, (model, recipe) in CANDIDATES.items():
        if args.only and not any(part in name for part in args.only):
            continue
        params = sum(p.numel() for p in build_model(model, 10, 3).parameters())
        start = time.perf_counter()
        out = retrain_and_evaluate(model, train_set, test_set, np.arange(len(train_set)), Recipe(**recipe), seed=0, device="cpu")
        seconds = time.perf_counter() - start
        print(f"{name:45s} {params:8d} {out['top1']:6.3f} {seconds / 60:8.1f} {recipe['epochs'] * len(train_set) / out['train_seconds']:6.0f}", flush=True)


if __name__ == "__main__":
    main()

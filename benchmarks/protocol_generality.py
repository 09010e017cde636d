"""Does the scoring protocol give a positive ceiling and positive extrapolation fidelity on real
datasets the kit was never tuned on?

For each dataset, the cpu tier's experiment (params/cpu/experiment.yaml) with only ``data``
changed and ``subset_length`` set to each protocol: DU scores of a full run and of a 20 % subset
run (seeds 0 and 1); the subset-vs-full agreement on the subset samples ("ceiling" Spearman), kNN
and GNN Spearman on the samples outside the subset, and the health warnings of the runs.

    python benchmarks/protocol_generality.py [--limit 10000] [--seeds 0 1] [--protocols steps] [--datasets fashion-mnist]

Datasets: Fashion-MNIST (Debian's dataset-fashion-mnist, a 10k class-stratified sample of its
training split) and a held-out CIFAR-10 sample (the 10,000 test images, never a training image of
the cpu tier), read as an image folder from data/cifar10-heldout (made from data/cifar10-jpeg).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SCORECAST_ROOT", str(ROOT))
os.environ.setdefault("SCORECAST_QUIET", "1")

from scorecast import health  # noqa: E402
from scorecast.pipeline import Pipeline  # noqa: E402


def heldout_cifar() -> str:
    """data/cifar10-heldout with train/ = CIFAR-10's test images (symlinks to data/cifar10-jpeg/test)."""
    source, target = ROOT / "data" / "cifar10-jpeg" / "test", ROOT / "data" / "cifar10-heldout"
    if not source.is_dir():
        sys.exit("unpack ../shared/data/cifar10-jpeg.tar.gz into data/ first (./run_all.sh --tier cpu does)")
    target.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        if not (target / split).exists():
            (target / split).symlink_to(source)
    return str(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=10000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--protocols", nargs="+", choices=["epochs", "steps", "phase"], default=["epochs", "steps", "phase"])
    parser.add_argument("--datasets", nargs="+", choices=["fashion-mnist", "cifar10-heldout"], default=["fashion-mnist", "cifar10-heldout"])
    args = parser.parse_args()
    base = yaml.safe_load((ROOT / "params" / "cpu" / "experiment.yaml").read_text())
    datasets = {"fashion-mnist": lambda: {"name": "fashion-mnist", "limit": args.limit},
                "cifar10-heldout": lambda: {"name": "imagefolder", "root": heldout_cifar()}}
    methods = [{"name": "knn", "k": 10}, {"name": "gnn", "k": 10, "labels": True}]
    rows, warnings = [], []
    for dataset in args.datasets:
        data = datasets[dataset]()
        for protocol in args.protocols:
            start = time.time()
            pipe = Pipeline({**base, "data": data, "subset_length": protocol}, os.environ.get("SCORECAST_CACHE"))
            table = pipe.fidelity_table([{"name": "du", "window": 10}], methods, [0.2], args.seeds)
            curves = health.run_curves(pipe, [{"name": "du"}], args.seeds, [0.2])
            found = health.run_warnings(curves) + health.agreement_warnings(table)
            warnings += [f"{dataset} / {protocol}: {w}" for w in found]
            finals = curves.groupby(["run", "seed"]).mean_true_prob.last().groupby("run").mean()
            for method, part in table.groupby("method", sort=False):
                rows.append({"dataset": dataset, "protocol": protocol, "method": method,
                             "ceiling_spearman": part.ceiling_spearman.mean(), "spearman": part.spearman.mean(),
                             "spearman_std": part.spearman.std(), "final_true_prob_full": finals["full"],
                             "final_true_prob_subset": finals["subset 0.2"], "warnings": len(found), "minutes": (time.time() - start) / 60})
            print(pd.DataFrame(rows).round(3).to_string(index=False), flush=True)
    print("\nwarnings:\n" + "\n".join(warnings))


if __name__ == "__main__":
    main()

"""Phase matching without paying for the search (issue 21): the phase search from the predicted multiple
round(sqrt(n / m)) (the library's ``subset_length: phase``) beside the earlier search from 1x, per training-set
size, seed and subset fraction, on the cpu tier's recipe (params/cpu/experiment.yaml).

For each setting it reports the full run's final fit (the target), the multiples each search tries, the
one it keeps, the subset run's cost as a share of the full run's (wall seconds of every tried run, as the
cache recorded them when computed; and nominal, in training sample-epochs, which no machine load moves),
and the agreement (Spearman of the kept run's DU with the full run's, on the subset samples).

Both searches share one cache (SCORECAST_CACHE, e.g. the scale study's): runs the new search tried are
reused, so this trains only what the earlier search tried beyond them (the 1x runs).

    SCORECAST_DATA_ROOT=data/cifar10-jpeg OMP_NUM_THREADS=2 python benchmarks/bench_phase_search.py --sizes 5000 10000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SCORECAST_ROOT", str(ROOT))
os.environ.setdefault("SCORECAST_QUIET", "1")

from scorecast import analysis, metrics  # noqa: E402
from scorecast.params import validate_experiment  # noqa: E402
from scorecast.pipeline import PHASE_TOLERANCE, final_fit  # noqa: E402

DU = {"name": "du", "window": 10}


def search_from_one(pipe, seed: int, indices: np.ndarray, target: float) -> list:
    """The earlier rule: every = 1, 2, ... until a run ends within the tolerance of the target or above it."""
    tried = []
    for every in range(1, max(1, round(len(pipe.train_set) / len(indices))) + 1):
        tried.append(pipe._run(seed, indices, None, every, None))
        if final_fit(tried[-1]) >= target - PHASE_TOLERANCE:
            break
    return tried


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="params/cpu/experiment.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.2, 0.1])
    args = parser.parse_args()
    rows = []
    experiment = dataclasses.replace(validate_experiment(args.experiment), subset_length="phase")
    for n, pipe in analysis.scale_pipelines(experiment, args.sizes).items():
        for seed in args.seeds:
            full = pipe.run(seed)
            target, truth = final_fit(full), pipe.subset_scores(full, DU)
            for fraction in args.fractions:
                predicted = pipe.run(seed, fraction)  # the library's search (cached)
                earlier = search_from_one(pipe, seed, predicted.indices, target)
                searches = {"from 1x (earlier)": (min(earlier, key=lambda r: abs(final_fit(r) - target)), earlier),
                            "predicted start": (predicted, [pipe._run(seed, predicted.indices, None, e, None) for e in predicted.searched])}
                for search, (kept, tried) in searches.items():
                    multiples = [run.epochs // full.epochs for run in tried]
                    rows.append({"n": n, "seed": seed, "fraction": fraction, "search": search, "target_fit": target,
                                 "tried": " ".join(map(str, multiples)), "kept": kept.epochs // full.epochs, "kept_fit": final_fit(kept),
                                 "nominal_share": sum(multiples) * len(kept.indices) / n,  # training sample-epochs over the full run's
                                 "wall_share": sum(run.seconds for run in tried) / full.seconds,
                                 "agreement": metrics.spearman(truth[kept.indices], pipe.subset_scores(kept, DU))})
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.round(3).to_string(index=False))
    print()
    summary = table.groupby(["n", "fraction", "search"], sort=False)[["nominal_share", "wall_share", "agreement"]].agg(["mean", "std"])
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()

"""Would GNN restarts make the smoke tier's GNN-pruned numbers the same on another CPU?

Issue 23: under ``ATEN_CPU_CAPABILITY=avx2`` the quickstart's GNN-pruned top-1 (one seed) moved from 0.486 to
0.733. ``run`` computes, under the current process's CPU settings, per seed of the smoke experiment: the subset
run's DU scores (20 % of digits), one GNN fit (k = 10, labels) and the mean of 5 fits with different weight and
split seeds, and saves them; ``compare`` prints, for two such files, the Spearman between the two CPUs' scores
(subset run, one fit, mean of 5 fits) and the images each keeps per class after pruning half the data.

    ATEN_CPU_CAPABILITY=avx2 python benchmarks/smoke_gnn_restarts.py run /tmp/avx2.npz /tmp/cache-avx2
    python benchmarks/smoke_gnn_restarts.py run /tmp/native.npz /tmp/cache-native
    python benchmarks/smoke_gnn_restarts.py compare /tmp/native.npz /tmp/avx2.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from scorecast import extrapolate, prune  # noqa: E402
from scorecast.pipeline import Pipeline  # noqa: E402

SEEDS, RESTARTS, FRACTION, RATE = range(5), 5, 0.2, 0.5
SCORER = {"name": "du", "window": 10}


def run(out: str, cache: str) -> None:
    torch.set_num_threads(1)  # as the tests run the smoke notebooks
    pipe = Pipeline(ROOT / "params" / "smoke" / "experiment.yaml", cache)
    spec = pipe.scorer_spec(SCORER)
    found = {"labels": pipe.labels}
    for seed in SEEDS:
        run_ = pipe.scoring_run(spec, seed, FRACTION)
        subset = pipe.subset_scores(run_, spec)
        Z, _ = pipe.extrapolation_features(run_)
        fits = [extrapolate.gnn(Z, run_.indices, subset, labels=pipe.labels, k=10, seed=seed * 1000 + r, device="cpu")
                for r in range(RESTARTS)]
        found.update({f"subset{seed}": subset, f"one{seed}": fits[0], f"mean{seed}": np.mean(fits, axis=0)})
    np.savez(out, **found)


def compare(first: str, second: str) -> None:
    a, b = np.load(first), np.load(second)
    labels = a["labels"]
    kept = lambda scores: np.bincount(labels[prune.select(scores, RATE)], minlength=labels.max() + 1).tolist()
    print(f"Spearman between the two files' scores; images kept per class at rate {RATE} (first file / second file)")
    print("| seed | subset run | one GNN fit | mean of 5 fits | kept, one fit | kept, mean of 5 fits |")
    print("|---|---|---|---|---|---|")
    for seed in SEEDS:
        rho = [spearmanr(a[f"{name}{seed}"], b[f"{name}{seed}"])[0] for name in ("subset", "one", "mean")]
        print(f"| {seed} | " + " | ".join(f"{r:.3f}" for r in rho)
              + f" | {kept(a[f'one{seed}'])} / {kept(b[f'one{seed}'])} | {kept(a[f'mean{seed}'])} / {kept(b[f'mean{seed}'])} |")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("run", "compare"):
        sys.exit(__doc__)
    (run if sys.argv[1] == "run" else compare)(sys.argv[2], sys.argv[3])

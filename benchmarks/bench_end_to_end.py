"""Honest end-to-end cost of score extrapolation vs full scoring, measured side by side in one run.

    python benchmarks/bench_end_to_end.py --root data/cifar10-jpeg --limit 5000 --epochs 15 --retrain-epochs 6

Phases, each timed here in the same process (no cache, so nothing is reported from an earlier run):
full scoring run on all n; subset scoring run on a fraction; embedding all n with the subset model;
kNN and GNN extrapolation; the proxy's own uncertainty (``--augmentations`` inference passes over all
n, then proxy aug_std, and the kNN + proxy rank average "hybrid", whose extra cost is embedding + kNN);
final training on round((1 - rate) * n) samples for each rate. Prints the cost table and the implied
speed-up
    (full scoring + final training) / (subset scoring + embedding or inference + extrapolation + final training)
per rate. Final-training time depends on the number of kept samples only, so it is measured once
per rate on a random kept set and shared by both routes.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
import torch

from scorecast import extrapolate, proxy, scores
from scorecast.data import load_dataset, random_subset
from scorecast.models import build_model
from scorecast.train import Recipe, RecordSpec, embed, train, view_softmax


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="imagefolder")
    parser.add_argument("--root", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--model", default="tiny_cnn")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--retrain-epochs", type=int, default=6)
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--augmentations", type=int, default=8, help="proxy inference passes (view 0 clean)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    options = {} if args.limit is None else {"limit": args.limit}
    data = load_dataset(args.dataset, "train", root=args.root, **options)
    n = len(data)
    recipe = Recipe(epochs=args.epochs, batch_size=128)
    retrain = Recipe(epochs=args.retrain_epochs, batch_size=128, weight_decay=1e-3, schedule="onecycle")
    record = RecordSpec("train", tuple(range(max(0, args.epochs - 10), args.epochs)))

    def scoring_run(indices: np.ndarray, folder: str):
        model = build_model(args.model, data.num_classes, data.in_channels, seed=0)
        dynamics = train(model, data, indices, recipe, seed=0, record=record, record_dir=folder)
        return model, scores.dynamic_uncertainty(dynamics.true_prob(), min(10, args.epochs))

    with tempfile.TemporaryDirectory() as tmp:
        (_, full_du), t_full = timed(scoring_run, np.arange(n), f"{tmp}/full")
        subset = random_subset(n, args.fraction, seed=0)
        (proxy_model, subset_du), t_subset = timed(scoring_run, subset, f"{tmp}/subset")
    Z, t_embed = timed(embed, proxy_model, data)
    knn_scores, t_knn = timed(extrapolate.knn, Z, subset, subset_du, k=10)
    _, t_gnn = timed(extrapolate.gnn, Z, subset, subset_du, labels=data.labels.numpy(), k=10, seed=0)
    probs, t_inference = timed(view_softmax, proxy_model, data, args.augmentations)
    proxy_scores, t_proxy = timed(proxy.proxy_uncertainty, probs, subset, subset_du, data.labels.numpy(), "aug_std")
    _, t_rank = timed(proxy.rank_average, knn_scores, proxy_scores, subset)
    # (route name, cost between the subset run and final training)
    routes = (("knn", t_embed + t_knn), ("gnn", t_embed + t_gnn), ("proxy_aug_std", t_inference + t_proxy),
              ("hybrid", t_embed + t_knn + t_inference + t_proxy + t_rank))

    rows = []
    for rate in args.rates:
        kept = random_subset(n, int(round((1 - rate) * n)), seed=1)
        model = build_model(args.model, data.num_classes, data.in_channels, seed=0)
        _, t_final = timed(train, model, data, kept, retrain, 0)
        full_route = t_full + t_final
        for name, t_between in routes:
            route = t_subset + t_between + t_final
            rows.append({"rate": rate, "extrapolator": name, "full_scoring_s": t_full, "subset_scoring_s": t_subset,
                         "embed_extrapolate_s": t_between, "final_training_s": t_final,
                         "full_route_s": full_route, "extrapolation_route_s": route, "speedup": full_route / route})
    table = pd.DataFrame(rows)
    print(f"data {args.dataset} n={n}, model {args.model}, scoring {args.epochs} epochs, retraining {args.retrain_epochs} epochs, "
          f"subset {args.fraction:.0%}, {args.threads} threads")
    print(f"phases (s): embedding {t_embed:.2f}, knn {t_knn:.2f}, gnn {t_gnn:.2f}, proxy inference ({args.augmentations} passes) {t_inference:.2f}, "
          f"proxy scoring {t_proxy:.2f}, rank average {t_rank:.2f}")
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()

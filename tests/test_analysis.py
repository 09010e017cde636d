"""Analyses moved out of notebooks (scorecast.analysis), on small synthetic arrays and a stand-in pipeline
that serves the same stage methods as scorecast.pipeline.Pipeline."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from scorecast import analysis, extrapolate, metrics


def test_shape_stats_match_scipy_and_flag_two_modes():
    rng = np.random.default_rng(0)
    one = rng.normal(size=400)
    two = np.concatenate([rng.normal(-3, 0.3, 200), rng.normal(3, 0.3, 200)])
    s = analysis.shape_stats(one, truth=one * 2 + 1)
    assert s["n"] == 400 and s["std"] == pytest.approx(one.std(ddof=1))
    assert s["skew"] == pytest.approx(stats.skew(one, bias=False))
    assert s["spearman_vs_true"] == pytest.approx(1.0)
    assert analysis.shape_stats(two)["bimodality"] > 5 / 9 > s["bimodality"]
    assert np.isnan(analysis.shape_stats(two)["spearman_vs_true"])


def test_misranked_finds_the_swapped_samples_first():
    truth = np.arange(10.0)
    estimate = truth.copy()
    estimate[[0, 9]] = estimate[[9, 0]]
    worst = analysis.misranked(truth, estimate, 2)
    assert sorted(worst["position"]) == [0, 9]
    assert worst["true_quantile"].tolist() in ([0.1, 1.0], [1.0, 0.1])


def test_neighbourhood_statistics_on_two_separated_clusters():
    Z = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.3]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 1, 1])
    found = analysis.neighbourhood_statistics(Z, labels, [2])
    assert found["same@2"].tolist() == [1, 1, 0, 2, 2, 2]
    np.testing.assert_allclose(found["other_distance"], [0.2, 0.1, 0.1, 4.9, 5.0, 5.2], atol=1e-5)


def _fake_pipe(n=120, seed=0):
    """Deterministic stand-in: embeddings on a line with noise, scores a smooth function of position."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 3)).astype(np.float32)
    labels = (Z[:, 0] > 0).astype(int)

    def truth(s):
        return Z[:, 0] ** 2 + 0.1 * np.random.default_rng(s).normal(size=n)

    def run(s, fraction, scoring=None):
        indices = np.arange(n) if fraction is None else np.sort(np.random.default_rng(s).choice(n, int(fraction * n), replace=False))
        return SimpleNamespace(indices=indices, seed=s)

    def extrapolated_scores(scorer, fraction, s, method):
        r = run(s, fraction)
        values = extrapolate.knn(Z, r.indices, truth(s)[r.indices], k=method["k"])
        return SimpleNamespace(scores=values, subset_idx=r.indices)

    def against_truth(scorers, methods, fractions, seeds):
        for sc in scorers:
            for s in seeds:
                for f in fractions:
                    for m in methods:
                        res = extrapolated_scores(sc, f, s, m)
                        yield SimpleNamespace(name=sc["name"]), m, f, s, truth(s), res, np.setdiff1d(np.arange(n), res.subset_idx)

    def fidelity_table(scorers, methods, fractions, seeds, rates=(0.5,)):
        return pd.DataFrame([{"scorer": sc.name, "method": f"knn(k={m['k']})", "fraction": f, "seed": s,
                              "pearson": metrics.pearson(truth_[out], res.scores[out]),
                              "spearman": metrics.spearman(truth_[out], res.scores[out])}
                             for sc, m, f, s, truth_, res, out in against_truth(scorers, methods, fractions, seeds)])

    return SimpleNamespace(
        labels=labels, run=run, embedding=lambda r: (Z, 0.0), scorer_spec=lambda scorer: scorer,
        scoring_run=lambda scorer, s, fraction: run(s, fraction),
        subset_scores=lambda r, scorer: truth(r.seed)[r.indices],
        full_scores=lambda scorer, s: SimpleNamespace(scores=truth(s)),
        extrapolated_scores=extrapolated_scores, against_truth=against_truth, fidelity_table=fidelity_table)


def test_k_sweep_counts_the_chosen_k_per_seed():
    pipe = _fake_pipe()
    table, curves, chosen = analysis.k_sweep(pipe, [{"name": "du"}], [0.3], [0, 1], [1, 5, 20])
    assert len(curves) == 6 and len(chosen) == 2
    assert table["k"].tolist() == [1, 5, 20]
    assert table["chosen_by_cv"].sum() == 2 and table["chosen_by_oracle"].sum() == 2
    assert (chosen["oracle_optimism"] >= 0).all()
    one = curves[(curves["seed"] == 1) & (curves["k"] == 5)]["oracle_spearman"].item()
    r = pipe.run(1, 0.3)
    direct = extrapolate.knn(pipe.embedding(r)[0], r.indices, pipe.subset_scores(r, None), k=5)
    out = np.setdiff1d(np.arange(120), r.indices)
    assert one == pytest.approx(metrics.spearman(pipe.full_scores(None, 1).scores[out], direct[out]))


def test_calibration_fidelity_reports_the_spread_of_extrapolated_scores():
    fidelity, shapes = analysis.calibration_fidelity(_fake_pipe(), [{"name": "du"}], [{"name": "knn", "k": 10}], [0.3], [0, 1], [0.5])
    assert fidelity.loc[0, "method"] == "knn(k=10)"
    assert 0 < fidelity.loc[0, "std_ratio_mean"] < 1  # neighbour averaging narrows the distribution
    assert list(shapes[("du", 0, 0.3)]) == ["true (full run)", "knn(k=10)"]


def test_score_distributions_only_correlates_sources_on_the_same_samples():
    table, sources, worst = analysis.score_distributions(_fake_pipe(), {"name": "du"}, 0.5, 0, [{"name": "knn", "k": 5}], 3)
    assert table["source"].tolist() == ["true (full run)", "subset run (its own samples)", "knn(k=5)"]
    assert np.isnan(table.loc[1, "spearman_vs_true"]) and table.loc[0, "spearman_vs_true"] == pytest.approx(1.0)
    assert len(worst) == 3 and set(worst.columns) == {"index", "true_quantile", "estimated_quantile"}


def test_neighbourhood_table_puts_the_paper_beside_ours():
    table, per_sample = analysis.neighbourhood_table(_fake_pipe(), [{"name": "du"}], [0], [5])
    assert table["statistic"].tolist() == ["same-label among 5 nearest", "distance to nearest other label"]
    assert table["paper"].tolist() == [-0.30, 0.29]
    assert set(per_sample[("du", 0)]) == {"score", "same@5", "other_distance"}


# ---------------------------------------------------------------- the scale study (app_scale)
def test_paired_gaps_pair_each_seed_with_random_at_the_same_size_and_rate():
    rows = [{"train_size": size, "setting": setting, "rate": rate, "seed": seed, "top1": top1}
            for size, setting, rate, seed, top1 in [
                (100, "random", 0.5, 0, 0.60), (100, "random", 0.5, 1, 0.70), (100, "full", 0.5, 0, 0.65), (100, "full", 0.5, 1, 0.66),
                (100, "full", 0.0, 0, 0.90), (100, "random", 0.0, 0, 0.90), (200, "random", 0.5, 0, 0.80), (200, "full", 0.5, 0, 0.81)]]
    gaps = analysis.paired_gaps(pd.DataFrame(rows))
    assert sorted(map(tuple, gaps[["train_size", "seed"]].to_numpy().tolist())) == [(100, 0), (100, 1), (200, 0)]  # rate 0 left out
    assert gaps.set_index(["train_size", "seed"])["gap"].round(6).to_dict() == {(100, 0): 0.05, (100, 1): -0.04, (200, 0): 0.01}


@pytest.mark.parametrize("gaps, verdict", [([0.01, 0.02, 0.001], "beats"), ([-0.01, -0.03], "loses"), ([0.01, -0.01], "ties"), ([-0.2], "ties")])
def test_gap_verdict_needs_every_seed_on_one_side(gaps, verdict):
    assert analysis.gap_verdict(gaps) == verdict


def test_scale_pipelines_set_the_limit_per_size_and_none_means_every_image(tmp_path):
    pipes = analysis.scale_pipelines({"data": {"name": "digits", "limit": 500}, "device": "cpu"}, [300, None], tmp_path)
    assert list(pipes) == [300, 1437]
    assert pipes[300].experiment.data == {"name": "digits", "limit": 300} and pipes[1437].experiment.data == {"name": "digits"}


def test_scale_table_rows_and_verdicts_on_digits(tmp_path):
    experiment = {"data": {"name": "digits"}, "model": "tiny_cnn", "device": "cpu", "scoring": {"epochs": 2, "batch_size": 128},
                  "retrain": {"epochs": 1, "batch_size": 128}, "record": {"source": "train", "trajectory": "last", "trajectory_length": 2}}
    pipes = analysis.scale_pipelines(experiment, [300, 600], tmp_path)
    table = analysis.scale_table(pipes, [{"name": "du", "window": 2}], [{"name": "knn", "k": 3}], [0.2],
                                 [{"name": "full"}, {"name": "knn", "k": 3}, {"name": "random"}], [{"name": "knn", "k": 3}], [0.0, 0.5], [0.2], [0, 1])
    per_size = table[table["train_size"] == 300]
    assert set(per_size["setting"]) == {"full", "knn(k=3) @ 0.2", "random", "knn(k=3) @ 0.2 class-balanced", "subset run @ 0.2"}
    assert per_size["top1"].notna().sum() == 2 * (3 * 2 + 1)  # seeds x (3 methods x 2 rates + class-balanced kNN at 0.5)
    assert per_size["spearman"].notna().sum() == 2 and per_size["ceiling_spearman"].notna().sum() == 2
    runs = per_size[per_size["setting"] == "subset run @ 0.2"]
    assert (runs["subset_multiple"] >= 1).all() and (runs["subset_seconds_share"] > 0).all()
    unpruned = per_size[per_size["rate"] == 0]
    assert unpruned.groupby("seed")["top1"].nunique().eq(1).all()  # rate 0 keeps every sample whatever the scores
    text = analysis.scale_verdicts(table, analysis.paired_gaps(table))
    assert "**300 images**" in text and "**600 images**" in text and text.startswith("**Global knn DU")

"""Claim checks: paired per-seed differences, their spread and sign counts, and the tier's sentence."""

import numpy as np
import pandas as pd
import pytest

from scorecast import claims
from scorecast.params import validate_experiment
from scorecast.validation import ScorecastError


def _pruning():
    """A pruning table as Pipeline.pruning_table + with_setting gives it: kNN above random at every seed at 0.5,
    seeds disagreeing at 0.7; rate 0 the unpruned model."""
    rows = []
    top1 = {("full", 0.5): [0.70, 0.72, 0.71], ("knn(k=10) @ 0.2", 0.5): [0.66, 0.69, 0.68], ("random", 0.5): [0.60, 0.61, 0.66],
            ("knn(k=10) @ 0.2 class-balanced", 0.5): [0.5, 0.5, 0.5],
            ("full", 0.7): [0.60, 0.60, 0.60], ("knn(k=10) @ 0.2", 0.7): [0.55, 0.50, 0.58], ("random", 0.7): [0.52, 0.52, 0.52],
            ("full", 0.0): [0.9] * 3, ("knn(k=10) @ 0.2", 0.0): [0.9] * 3, ("random", 0.0): [0.9] * 3}
    for (setting, rate), values in top1.items():
        fraction = 0.2 if setting.startswith("knn") else np.nan
        rows += [{"scorer": "du", "setting": setting, "fraction": fraction, "rate": rate, "seed": seed, "top1": v} for seed, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_differences_pair_each_seed_with_the_reference_at_the_same_rate():
    d = claims.paired_differences(_pruning(), [("knn", "random")], "top1")
    assert set(d["setting"]) == {"knn(k=10) @ 0.2"}  # the family name picks the global setting, not the class-balanced one
    assert 0.0 not in set(d["rate"])  # the unpruned model is left out
    at = d.set_index(["rate", "seed"])["difference"].round(6).to_dict()
    assert at == {(0.5, 0): 0.06, (0.5, 1): 0.08, (0.5, 2): 0.02, (0.7, 0): 0.03, (0.7, 1): -0.02, (0.7, 2): 0.06}
    assert d["comparison"].unique().tolist() == ["kNN (k=10) @ 20 % − random"]


def test_summary_counts_signs_and_gives_the_spread_over_seeds():
    table = claims.summary(claims.paired_differences(_pruning(), [("knn", "random"), ("knn", "full")], "top1"))
    row = table[(table["comparison"] == "kNN (k=10) @ 20 % − random") & (table["rate"] == 0.5)].iloc[0]
    assert row["n_seeds"] == 3 and row["above"] == 3 and row["below"] == 0 and row["verdict"] == "higher at every seed"
    assert row["mean"] == pytest.approx(np.mean([0.06, 0.08, 0.02])) and row["std"] == pytest.approx(np.std([0.06, 0.08, 0.02], ddof=1))
    mixed = table[(table["comparison"] == "kNN (k=10) @ 20 % − random") & (table["rate"] == 0.7)].iloc[0]
    assert (mixed["above"], mixed["below"], mixed["verdict"]) == (2, 1, "seeds disagree")
    below = table[table["comparison"] == "kNN (k=10) @ 20 % − full"]
    assert below["verdict"].tolist() == ["lower at every seed", "lower at every seed"]


def test_a_column_or_a_number_can_be_the_reference():
    fid = pd.DataFrame({"scorer": "du", "method": ["knn(k=10)"] * 2 + ["gnn(k=10, labels=True)"] * 2, "fraction": 0.2, "seed": [0, 1, 0, 1],
                        "spearman": [0.30, 0.34, 0.20, 0.40], "ceiling_spearman": [0.50, 0.52, 0.50, 0.52]})
    d = claims.paired_differences(fid, [("knn", "ceiling_spearman"), ("gnn", ("paper", 0.35))], "spearman", by="method")
    knn = d[d["method"] == "knn(k=10)"]
    assert knn["difference"].round(6).tolist() == [-0.2, -0.18] and knn["comparison"].iloc[0].startswith("kNN (k=10) − ceiling")
    gnn = d[d["method"] == "gnn(k=10, labels=True)"]
    assert gnn["difference"].round(6).tolist() == [-0.15, 0.05] and gnn["comparison"].iloc[0] == "GNN (k=10, labels) − paper (0.35)"
    own = claims.paired_differences(fid.drop(columns="method"), [("spearman", 0.0)])  # a column against zero: every row
    assert own["difference"].tolist() == fid["spearman"].tolist() and set(own["comparison"]) == {"spearman − 0"}
    per = claims.summary(claims.paired_differences(fid, [("spearman", "ceiling_spearman")], by="method"))  # one comparison per method
    assert per["comparison"].tolist() == ["kNN (k=10): spearman − ceiling (subset run vs full, on the subset)",
                                          "GNN (k=10, labels): spearman − ceiling (subset run vs full, on the subset)"]


def test_mistakes_are_named_with_the_fix():
    with pytest.raises(ScorecastError, match="matches no 'setting'.*method family"):
        claims.paired_differences(_pruning(), [("mlp", "random")], "top1")
    with pytest.raises(ScorecastError, match="seed"):
        claims.paired_differences(_pruning().drop(columns="seed"), [("knn", "random")], "top1")
    with pytest.raises(ScorecastError, match="pass value="):
        claims.paired_differences(_pruning(), [("knn", "random")])
    with pytest.raises(ScorecastError, match="name one label exactly"):
        two = pd.concat([_pruning(), _pruning().query("setting == 'knn(k=10) @ 0.2'").assign(setting="knn(k=20) @ 0.2")])
        claims.paired_differences(two, [("random", "knn(k=10) @ 0.2 class-balanced"), ("full", "knn")], "top1")
    with pytest.raises(ScorecastError, match="share no rows"):
        claims.paired_differences(_pruning().assign(seed=lambda t: np.where(t["setting"] == "random", t["seed"] + 10, t["seed"])),
                                  [("knn", "random")], "top1")


def test_gap_verdict_needs_every_seed_on_one_side():
    assert claims.gap_verdict([0.01, 0.02]) == "beats" and claims.gap_verdict([-0.01, -0.2]) == "loses"
    assert claims.gap_verdict([0.01, -0.01]) == "ties" == claims.gap_verdict([0.3])
    assert claims.gap_verdict([1, 2], ("up", "down", "both")) == "up"


def test_tier_comes_from_the_experiment_file():
    assert claims.tier_of("params/smoke/experiment.yaml") == "smoke"
    assert claims.tier_of("/home/x/scorecast/params/cpu/experiment_tiny.yaml") == "cpu"
    assert claims.tier_of("params/paper/experiment_imagenet64.yaml") == "paper"
    assert claims.tier_of({"data": {"name": "digits"}}) is None and claims.tier_of("my/experiment.yaml") is None


class _Pipe:
    experiment = validate_experiment({"data": {"name": "digits"}, "model": "tiny_cnn", "paradigm": "supervised", "subset_length": "steps",
                                      "scoring": {"optimizer": "adam", "lr": 0.003, "epochs": 20}, "retrain": {"epochs": 10}})
    train_set = range(1437)


def test_the_smoke_tier_says_no_evidence_and_other_tiers_give_verdicts():
    comparisons = [("knn", "random"), ("knn", "full")]
    smoke = claims.check(_pruning(), comparisons, "top1", experiment="params/smoke/experiment.yaml", pipe=_Pipe(), claim="Paper: kNN prunes well.")
    text = repr(smoke)
    assert "pipeline check, no evidence" in text and "higher at every seed" not in text
    assert "digits, 1,437 training images; tiny_cnn, supervised; scoring adam lr 0.003, 20 epochs" in text and "seeds 0, 1, 2." in text
    assert "| kNN (k=10) @ 20 % − random | top1 | du | 50 % | +0.053 ± 0.031 | 3 / 0 of 3 |" in text
    assert smoke._repr_markdown_() == text and text.startswith("**Claim check.** Paper: kNN prunes well.")
    cpu = repr(claims.check(_pruning(), comparisons, "top1", experiment="params/cpu/experiment.yaml", pipe=_Pipe()))
    assert "no evidence" not in cpu and "**cpu tier:**" in cpu
    assert "kNN (k=10) @ 20 % − random (top1): higher at every seed at 50 %; seeds disagree at 70 %." in cpu
    assert "| 3 / 0 of 3 | higher at every seed |" in cpu
    one_seed = repr(claims.check(_pruning()[lambda t: t["seed"] == 0], comparisons, "top1", experiment="params/cpu/experiment.yaml", pipe=_Pipe()))
    assert "one seed" in one_seed and "seed 0." in one_seed and "A single seed gives no verdict." in one_seed
    custom = repr(claims.check(_pruning(), comparisons, "top1", experiment={"data": {"name": "digits"}}, pipe=_Pipe()))
    assert "Not a tier's experiment" in custom

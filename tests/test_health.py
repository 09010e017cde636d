"""Each health warning fires on a run made to fail it, and stays quiet on a healthy one."""

import numpy as np
import pandas as pd
import pytest

from scorecast import health
from scorecast.pipeline import Pipeline

DIGITS = {"data": {"name": "digits"}, "model": "tiny_cnn", "device": "cpu",
          "record": {"source": "train", "trajectory": "last", "trajectory_length": 2}}


def test_curves_follow_the_recorded_dynamics():
    true_prob = np.array([[0.1, 0.3], [0.5, 0.7], [0.8, 0.9]])
    correct = np.array([[0, 0], [1, 0], [1, 1]], dtype=bool)
    curve = health.training_curves(true_prob, correct)
    np.testing.assert_allclose(curve["mean_true_prob"], [0.2, 0.6, 0.85])
    np.testing.assert_allclose(curve["train_accuracy"], [0, 0.5, 1])
    np.testing.assert_allclose(curve["progress"], [1 / 3, 2 / 3, 1])
    assert health.final_gain(curve) == pytest.approx(0.65)  # 3 records: looks back 2


def test_a_run_with_too_few_steps_is_not_converged_and_a_long_one_is(tmp_path):
    short = Pipeline({**DIGITS, "scoring": {"epochs": 3, "batch_size": 256, "lr": 0.001}}, tmp_path)
    curves = health.run_curves(short, [{"name": "du"}], [0], [0.2])
    warnings = health.run_warnings(curves)
    assert any(w.startswith("**Not converged:** the subset 0.2 run") for w in warnings)  # stalled near chance
    assert any(w.startswith("**Not converged:** the full run") for w in warnings)  # still rising
    assert set(curves["run"]) == {"full", "subset 0.2"} and len(curves) == 6
    long = Pipeline({**DIGITS, "scoring": {"epochs": 12, "batch_size": 32, "lr": 0.003}}, tmp_path)
    assert not [w for w in health.run_warnings(health.run_curves(long, [{"name": "du"}], [0], [])) if "Not converged" in w]


def test_a_subset_run_in_another_phase_is_flagged():
    def curve(run, final):
        return pd.DataFrame({"run": run, "scorer": "du", "seed": 0, "fraction": 0.2, "record": [0, 1, 2, 3],
                             "progress": [0.25, 0.5, 0.75, 1], "mean_true_prob": [final] * 4, "train_accuracy": np.nan})
    warnings = health.run_warnings(pd.concat([curve("full", 0.74), curve("subset 0.2", 0.55)]))
    assert len(warnings) == 1 and warnings[0].startswith("**Different phase:**") and "0.55" in warnings[0]
    assert health.run_warnings(pd.concat([curve("full", 0.74), curve("subset 0.2", 0.70)])) == []


def test_negative_and_low_agreement_are_flagged_but_not_a_good_one():
    table = pd.DataFrame({"scorer": "du", "fraction": [0.1, 0.2, 0.3], "seed": 0, "ceiling_spearman": [-0.19, 0.2, 0.75]})
    warnings = health.agreement_warnings(table)
    assert len(warnings) == 2 and "negative" in warnings[0] and "below the floor" in warnings[1]


def test_an_emptied_class_is_flagged_and_class_balanced_pruning_is_not():
    labels = np.repeat(np.arange(3), 100)
    scores = np.where(labels == 2, 0.0, 1.0) + np.random.default_rng(0).random(300) * 0.1  # class 2 scored lowest
    warnings = health.class_warnings({0: scores}, labels, 0.5, "du / knn")
    assert len(warnings) == 1 and "class 2" in warnings[0] and "keeps 0 samples" in warnings[0]
    assert health.class_warnings({0: scores}, labels, 0.5, "du / knn", class_balanced=True) == []


def test_warnings_name_every_failing_seed_once():
    labels = np.repeat(np.arange(3), 100)
    low = np.where(labels == 2, 0.0, 1.0)
    warnings = health.class_warnings({0: low, 1: np.random.default_rng(1).random(300), 2: low + 0.01 * labels}, labels, 0.5, "du / knn")
    assert len(warnings) == 1 and "seeds 0, 2" in warnings[0]

    def curve(seed, values):
        return pd.DataFrame({"run": "full", "scorer": "du", "seed": seed, "fraction": None, "record": [0, 1, 2, 3],
                             "progress": [0.25, 0.5, 0.75, 1], "mean_true_prob": values, "train_accuracy": np.nan})
    curves = pd.concat([curve(0, [0.2, 0.4, 0.6, 0.7]), curve(1, [0.8] * 4), curve(2, [0.2, 0.3, 0.5, 0.65])])
    warnings = health.run_warnings(curves)
    assert warnings == [w for w in warnings if w.startswith("**Not converged:** the full run (du, seeds 0, 2)")] and len(warnings) == 1
    assert "0.65-0.70" in warnings[0]


def test_report_shows_the_panel_and_returns_the_warnings(tmp_path, capsys):
    pipe = Pipeline({**DIGITS, "scoring": {"epochs": 3, "batch_size": 256}}, tmp_path)
    curves, warnings = health.report(pipe, [{"name": "du"}], [0], [0.2], methods=[{"name": "random"}], rates=[0.5])
    assert len(curves) == 6 and warnings
    assert "Not converged" in capsys.readouterr().out

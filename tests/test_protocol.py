"""subset_length: a step-matched subset run trains round(n/m) times the epochs and is recorded at
the full run's step counts; the paper's epoch protocol trains as many epochs as the full run; the
phase protocol searches, from a predicted start, the epoch multiple that brings the subset run to the full run's final fit."""

import json

import numpy as np
import pytest

from scorecast.params import validate_experiment
from scorecast.pipeline import PHASE_TOLERANCE, Pipeline, final_fit, predicted_multiple
from scorecast.validation import ScorecastError

DIGITS = {"data": {"name": "digits"}, "model": "tiny_cnn", "device": "cpu", "scoring": {"epochs": 2, "batch_size": 128},
          "record": {"source": "train", "trajectory": "last", "trajectory_length": 2}}


def _trained_epochs(run) -> int:
    return json.loads((run.path / "manifest.json").read_text())["config"]["recipe"]["epochs"]


@pytest.mark.parametrize("protocol, subset_epochs", [("steps", 10), ("epochs", 2)])
def test_subset_run_length_follows_the_protocol(tmp_path, protocol, subset_epochs):
    pipe = Pipeline({**DIGITS, "subset_length": protocol}, tmp_path)
    full, subset = pipe.run(0, softmax=True), pipe.run(0, 0.2, softmax=True)
    assert _trained_epochs(full) == 2 and _trained_epochs(subset) == subset_epochs
    # both runs keep one record per full-run epoch, so DU windows and TDDS trajectories mean the same
    assert full.dynamics.epochs == subset.dynamics.epochs == 2
    assert np.asarray(subset.dynamics.softmax()).shape[0] == 2
    steps = lambda run, epochs: epochs * -(-len(run.indices) // 128)  # noqa: E731
    if protocol == "steps":
        assert abs(steps(subset, subset_epochs) - steps(full, 2)) <= 2 * 5  # equal up to the last partial batches


def test_step_matched_subset_run_ends_in_the_full_runs_phase(tmp_path):
    """On digits the epoch protocol leaves a 20 % subset run far behind the full run; steps do not."""
    finals = {}
    for protocol in ("epochs", "steps"):
        pipe = Pipeline({**DIGITS, "scoring": {"epochs": 6, "batch_size": 128}, "subset_length": protocol}, tmp_path)
        finals[protocol] = float(np.mean(pipe.run(0, 0.2).dynamics.true_prob()[-1]))
    full = float(np.mean(pipe.run(0).dynamics.true_prob()[-1]))
    assert abs(finals["steps"] - full) < abs(finals["epochs"] - full)
    assert abs(finals["steps"] - full) < 0.2


def _walk(fits: dict[int, float], target: float, start: int, ceiling: int) -> list[int]:
    """The multiples the phase search tries, re-derived from the rule in its docstring."""
    tried, every, step = [], start, 0
    while every not in tried:
        tried.append(every)
        gap = fits[every] - target
        direction = 0 if abs(gap) <= PHASE_TOLERANCE else (1 if gap < 0 else -1)
        if direction == 0 or direction == -step or not 1 <= every + direction <= ceiling:
            break
        every, step = every + direction, direction
    return tried


@pytest.mark.parametrize("fraction, start", [(0.2, 2), (0.1, 3)])
def test_phase_search_starts_at_the_predicted_multiple(fraction, start):
    assert predicted_multiple(1000, round(fraction * 1000)) == start
    assert predicted_multiple(10, 10) == 1 and predicted_multiple(10, 9) == 1


def test_phase_matched_run_ends_closest_to_the_full_runs_fit_and_pays_for_its_search(tmp_path):
    experiment = {**DIGITS, "scoring": {"epochs": 3, "batch_size": 128}}
    target = final_fit(Pipeline({**experiment, "subset_length": "epochs"}, tmp_path).run(0))
    pipe = Pipeline({**experiment, "subset_length": "phase"}, tmp_path)
    chosen = pipe.run(0, 0.2)
    every = _trained_epochs(chosen) // 3
    assert 1 <= every <= 5 and chosen.dynamics.epochs == 3  # the full run's number of records
    runs = {k: pipe._run(0, chosen.indices, None, k, 0.2, False) for k in range(1, 6)}
    fits = {k: final_fit(run) for k, run in runs.items()}
    tried = _walk(fits, target, predicted_multiple(len(pipe.train_set), len(chosen.indices)), 5)
    assert tried[0] == 2 and every in tried and list(chosen.searched) == tried
    assert abs(fits[every] - target) == min(abs(fits[k] - target) for k in tried)
    assert chosen.seconds == pytest.approx(sum(runs[k].seconds for k in tried))  # every tried run is charged


def test_unknown_protocol_is_refused_naming_the_choices():
    with pytest.raises(ScorecastError, match=r"subset_length='step'.*\['steps', 'epochs', 'phase'\]"):
        validate_experiment({**DIGITS, "subset_length": "step"})

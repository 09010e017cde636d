"""A method defined and registered in one module (here: this test) is usable by name everywhere:
parameter validation, the pipeline's tables, labels and figure styles. No other module names it."""

from typing import ClassVar

import numpy as np
import pytest
from scipy.stats import ConstantInputWarning

from scorecast import plots
from scorecast.params import validate_notebook_params
from scorecast.pipeline import Pipeline, method_label
from scorecast.registry import METHODS, method_names, register
from scorecast.specs import Extrapolator, option, spec
from scorecast.validation import ScorecastError


def nearest_mean(Z, subset_idx, subset_scores, shift: float = 0.0):
    """Toy extrapolator: unscored samples get the subset's mean score plus ``shift``."""
    out = np.full(len(Z), float(np.mean(subset_scores)) + shift)
    out[subset_idx] = subset_scores
    return out


@pytest.fixture
def toy():
    @register
    @spec
    class Toy(Extrapolator):
        """The subset's mean for every unscored sample."""

        name: ClassVar[str] = "toy_mean"
        paradigms: ClassVar[tuple[str, ...]] = ("supervised",)
        style: ClassVar[tuple[str, str]] = ("#123456", "o")
        shift: float = option(0.0, low=0.0)

        def run(self, pipe, scorer, seed, fraction):
            return pipe.extrapolate(self, scorer, seed, fraction, nearest_mean, lambda Z, run, computed: {"shift": self.shift})

    yield Toy
    del METHODS["toy_mean"]


EXPERIMENT = {"data": {"name": "digits", "limit": 200}, "model": "tiny_cnn", "scoring": {"epochs": 3},
              "record": {"trajectory_length": 3}, "subset_length": "epochs", "device": "cpu"}


def test_a_registered_method_is_validated_by_name(toy):
    params = {"experiment": EXPERIMENT, "scorers": [{"name": "du", "window": 3}], "methods": [{"name": "toy_mean", "shift": 0.5}],
              "fractions": [0.5], "seeds": [0]}
    assert validate_notebook_params(params, "toy.yaml") is params
    with pytest.raises(ScorecastError, match=r"toy.yaml: methods\[0\]\.shift=-1\.0 is out of range"):
        validate_notebook_params({**params, "methods": [{"name": "toy_mean", "shift": -1.0}]}, "toy.yaml")
    with pytest.raises(ScorecastError, match="does not run in the adversarial paradigm"):
        validate_notebook_params({**params, "experiment": {**EXPERIMENT, "paradigm": "adversarial"}}, "toy.yaml")
    assert "toy_mean" in method_names("supervised") and "toy_mean" not in method_names("unsupervised")
    assert plots.METHOD_STYLES["toy_mean"] == ("#123456", "o") and plots.DISPLAY_NAMES["toy_mean"] == "toy_mean"


def test_a_registered_method_runs_in_the_pipeline(toy, tmp_path):
    pipe = Pipeline(EXPERIMENT, cache_root=tmp_path)
    with pytest.warns(ConstantInputWarning):  # the toy gives every unscored sample one value: no correlation
        table = pipe.fidelity_table([{"name": "du", "window": 3}], [{"name": "toy_mean", "shift": 1.0}], [0.5], [0])
    assert table["spearman"].isna().all()
    assert list(table["method"]) == [method_label({"name": "toy_mean", "shift": 1.0})] == ["toy_mean(shift=1.0)"]
    result = pipe.scores_for({"name": "du", "window": 3}, {"name": "toy_mean", "shift": 1.0}, 0, 0.5)
    outside = np.setdiff1d(np.arange(200), result.subset_idx)
    subset_scores = result.scores[result.subset_idx]
    np.testing.assert_allclose(result.scores[outside], subset_scores.mean() + 1.0)


def test_a_taken_name_is_refused(toy):
    with pytest.raises(ScorecastError, match="a method named 'knn' is already registered"):
        @register
        @spec
        class Other(Extrapolator):
            name: ClassVar[str] = "knn"

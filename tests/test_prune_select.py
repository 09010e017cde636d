"""prune.select: global and class-balanced top-k selection, ties and input errors."""

import numpy as np
import pytest

from scorecast.prune import select
from scorecast.validation import ScorecastError

SCORES = np.array([0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.0])
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])


def test_global_keeps_top_scores():
    # rate 0.3 of 10 -> keep round(7) = 7: all but the three lowest (0.0 at 9, 0.1 at 1, 0.2 at 6)
    kept = select(SCORES, 0.3)
    np.testing.assert_array_equal(kept, [0, 2, 3, 4, 5, 7, 8])
    assert kept.dtype == np.int64
    np.testing.assert_array_equal(select(SCORES, 0.8), [0, 5])


def test_class_balanced():
    # rate 0.5: class 0 (4 samples, scores .9 .1 .5 .7) keeps round(2) = 2 -> indices 0, 3;
    # class 1 (6 samples, scores .3 .8 .2 .6 .4 0) keeps round(3) = 3 -> indices 5, 7, 8.
    np.testing.assert_array_equal(select(SCORES, 0.5, LABELS, class_balanced=True), [0, 3, 5, 7, 8])
    # Globally rate 0.5 keeps the top 5: .9 .8 .7 .6 .5 -> 0, 5, 3, 7, 2
    np.testing.assert_array_equal(select(SCORES, 0.5, LABELS), [0, 2, 3, 5, 7])


def test_class_balanced_rounding_can_change_the_total():
    # rate 0.25: class 0 keeps round(3.0) = 3, class 1 keeps round(4.5) = 4 (halves to even) -> 7,
    # while the global count is round(7.5) = 8.
    assert len(select(SCORES, 0.25, LABELS, class_balanced=True)) == 7
    assert len(select(SCORES, 0.25)) == 8


def test_class_balanced_with_unsorted_and_missing_labels():
    labels = np.array([5, 2, 5, 2])  # classes need not be contiguous or start at 0
    np.testing.assert_array_equal(select([1.0, 2.0, 3.0, 4.0], 0.5, labels, class_balanced=True), [2, 3])


def test_ties_keep_lower_index():
    np.testing.assert_array_equal(select(np.ones(6), 0.5), [0, 1, 2])
    np.testing.assert_array_equal(select([0.5, 1.0, 0.5, 0.5], 0.5), [0, 1])
    tied_labels = np.array([0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(select(np.zeros(6), 0.5, tied_labels, class_balanced=True), [0, 1, 2, 3])


def test_rate_zero_keeps_all():
    np.testing.assert_array_equal(select(SCORES, 0.0), np.arange(10))
    np.testing.assert_array_equal(select(SCORES, 0, LABELS, class_balanced=True), np.arange(10))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rate": 1.0}, r"\[0, 1\)"),
        ({"rate": -0.1}, "rate"),
        ({"rate": "0.5"}, "rate"),
        ({"rate": 0.5, "class_balanced": True}, "needs labels"),
        ({"rate": 0.5, "labels": LABELS[:5]}, "10 are expected"),
        ({"rate": 0.5, "labels": LABELS.astype(float)}, "integer class labels"),
        ({"rate": 0.5, "scores": np.where(SCORES == 0.5, np.nan, SCORES)}, "NaN"),
        ({"rate": 0.5, "scores": SCORES.reshape(2, 5)}, "1-D"),
    ],
)
def test_errors(kwargs, match):
    kwargs = {"scores": SCORES, **kwargs}
    with pytest.raises(ScorecastError, match=match):
        select(**kwargs)

"""The tolerance check on stored numbers catches a change beyond tolerance and passes within it."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from compare_results import compare_folders, load_tolerances, quantity_of

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "results" / "smoke"


@pytest.fixture
def copies(tmp_path):
    stored, fresh = tmp_path / "stored", tmp_path / "fresh"
    for folder in (stored, fresh):
        folder.mkdir()
        for csv in SMOKE.glob("*.csv"):
            shutil.copy(csv, folder)
    return stored, fresh


def _edit(folder: Path, name: str, column: str, delta: float) -> None:
    table = pd.read_csv(folder / name)
    table.loc[0, column] = table.loc[0, column] + delta
    table.to_csv(folder / name, index=False)


def test_identical_tables_pass(copies):
    assert compare_folders(*copies) == []


@pytest.mark.parametrize("name, column", [("fig2_accuracy_vs_pruning_rate.csv", "top1_mean"),
                                          ("tab2_extrapolation_correlation.csv", "spearman_mean"),
                                          ("tab1_relative_accuracy_speedup.csv", "relative_accuracy_mean")])
def test_one_number_moved_beyond_its_tolerance_fails(copies, name, column):
    stored, fresh = copies
    tolerance = load_tolerances()[quantity_of(column, load_tolerances())]["tolerance"]
    _edit(fresh, name, column, 1.01 * tolerance)
    problems = compare_folders(stored, fresh)
    assert len(problems) == 1 and name in problems[0] and column in problems[0]
    _edit(fresh, name, column, -0.02 * tolerance)  # now 0.99 x tolerance away: within
    assert compare_folders(stored, fresh) == []


def test_missing_rows_tables_and_changed_labels_fail(copies):
    stored, fresh = copies
    table = pd.read_csv(fresh / "fig2_accuracy_vs_pruning_rate.csv")
    table.iloc[:-1].to_csv(fresh / "fig2_accuracy_vs_pruning_rate.csv", index=False)
    (fresh / "quickstart.csv").unlink()
    table = pd.read_csv(fresh / "tab2_extrapolation_correlation.csv")
    table.loc[0, "method"] = "knn(k=11)"
    table.to_csv(fresh / "tab2_extrapolation_correlation.csv", index=False)
    problems = "\n".join(compare_folders(stored, fresh))
    assert "fig2_accuracy_vs_pruning_rate.csv: " in problems and "rows" in problems
    assert "quickstart.csv: the fresh run wrote no such table" in problems
    assert "knn(k=11)" in problems


def test_a_number_turning_nan_fails(copies):
    stored, fresh = copies
    table = pd.read_csv(fresh / "fig2_accuracy_vs_pruning_rate.csv")
    table.loc[2, "top1_mean"] = float("nan")
    table.to_csv(fresh / "fig2_accuracy_vs_pruning_rate.csv", index=False)
    assert len(compare_folders(stored, fresh)) == 1


def test_every_stored_float_column_has_a_quantity_or_is_a_setting():
    """A new float column must be given a tolerance (or be a setting such as rate or fraction)."""
    tolerances = load_tolerances()
    settings = {"rate", "fraction", "paper", "paper_spearman", "k", "n", "weight"}
    for csv in SMOKE.rglob("*.csv"):
        for column, dtype in pd.read_csv(csv).dtypes.items():
            if dtype.kind == "f" and quantity_of(column, tolerances) is None:
                assert column in settings, f"{csv.name}: float column {column!r} has no tolerance in tests/tolerances.yaml"


def _set(folder: Path, rows, values) -> pd.DataFrame:
    table = pd.read_csv(folder / "app_scale.csv")
    table.loc[rows, "top1"] = values
    table.to_csv(folder / "app_scale.csv", index=False)
    return table


def test_a_per_seed_table_is_compared_by_its_means_over_seeds(copies):
    """app_scale.csv has one row per seed: seeds moving apart within a setting pass while their mean
    holds; the mean moving beyond tolerance fails, naming the setting; the seed is compared exactly."""
    stored, fresh = copies
    tolerance = load_tolerances()["accuracy"]["tolerance"]
    table = pd.read_csv(stored / "app_scale.csv")
    rows = table.index[(table["setting"] == "random") & (table["rate"] == 0.5) & (table["train_size"] == 700)]
    assert len(rows) == 2  # two seeds of one setting
    _set(stored, rows, [0.8, 0.8])  # stored seeds that agree: the quantity's tolerance bounds the mean
    _set(fresh, rows, [0.8 + 1.5 * tolerance, 0.8 - 1.5 * tolerance])
    assert compare_folders(stored, fresh) == []
    table = _set(fresh, rows, [0.8 + 3.0 * tolerance, 0.8])  # the mean moved by 1.5 x tolerance
    problems = compare_folders(stored, fresh)
    assert len(problems) == 1 and "app_scale.csv (means over seeds)" in problems[0] and "setting=random" in problems[0]
    assert "accuracy tolerance" in problems[0]
    table.loc[rows[0], "seed"] = 7  # a seed is a row label: compared exactly
    table.to_csv(fresh / "app_scale.csv", index=False)
    assert "column 'seed'" in compare_folders(stored, fresh)[0]


def test_a_per_seed_mean_may_move_by_three_standard_errors_of_the_stored_seeds(copies):
    """Stored seeds 4 x tolerance apart (s = 2.83 x tolerance over n = 2): the mean of a fresh run on another
    CPU may move by 3 s sqrt(2 / n) = 8.5 x tolerance, not more; the message names the bound."""
    stored, fresh = copies
    tolerance = load_tolerances()["accuracy"]["tolerance"]
    table = pd.read_csv(stored / "app_scale.csv")
    rows = table.index[(table["setting"] == "random") & (table["rate"] == 0.5) & (table["train_size"] == 700)]
    _set(stored, rows, [0.5 - 2 * tolerance, 0.5 + 2 * tolerance])
    _set(fresh, rows, [0.5 + 8.4 * tolerance, 0.5 + 8.4 * tolerance])
    assert compare_folders(stored, fresh) == []
    _set(fresh, rows, [0.5 + 8.6 * tolerance, 0.5 + 8.6 * tolerance])
    problems = compare_folders(stored, fresh)
    assert len(problems) == 1 and "3 standard errors of the stored seeds' spread" in problems[0]

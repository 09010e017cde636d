"""Figure and table helpers: fixed method colours, pivoted tables with mean ± std and the best marked."""

import numpy as np
import pytest
import pandas as pd

from scorecast import plots


def test_each_method_family_keeps_one_colour_and_marker_across_figures():
    first = plots.palette(["full", "knn(k=10) @ 0.2", "random"])
    second = plots.palette(["gnn(k=10, labels=True) @ 0.1", "random", "knn(k=10) @ 0.1", "full"])
    assert first["random"] == second["random"] and first["full"] == second["full"]
    assert first["knn(k=10) @ 0.2"] == second["knn(k=10) @ 0.1"] == plots.METHOD_STYLES["knn"][0]
    assert plots.markers(["gnn(k=10)"])["gnn(k=10)"] == plots.METHOD_STYLES["gnn"][1]
    colours = [c for c, _ in plots.METHOD_STYLES.values()]
    assert len(set(colours)) == len(colours)


def test_a_second_member_of_a_family_gets_a_lighter_shade():
    shades = plots.palette(["gnn(k=10, labels=True)", "gnn(k=10, labels=False)"])
    assert shades["gnn(k=10, labels=True)"] == plots.METHOD_STYLES["gnn"][0]
    assert shades["gnn(k=10, labels=False)"] != shades["gnn(k=10, labels=True)"]


def test_the_class_balanced_full_scores_stay_apart_from_random():
    import matplotlib.colors

    colours = plots.palette(["full", "random", "full class-balanced"])
    balanced, random = (np.array(matplotlib.colors.to_rgb(colours[k])) for k in ("full class-balanced", "random"))
    assert np.abs(balanced - random).max() > 0.15
    assert colours["full class-balanced"] != colours["full"]


def _summary():
    return pd.DataFrame({"scorer": ["du"] * 4 + ["tdds"] * 2,
                         "setting": ["full", "full", "random", "random", "full", "random"],
                         "rate": [0.3, 0.7, 0.3, 0.7, 0.3, 0.3],
                         "top1_mean": [0.5, 0.38, 0.49, 0.41, 0.2, 0.1],
                         "top1_std": [0.004, 0.002, 0.005, 0.013, np.nan, 0.0]})


def test_pivoted_table_shows_mean_std_in_one_cell_and_marks_the_best_per_column_and_group():
    view = plots.table_view(_summary(), rows=["scorer", "setting"], columns="rate", values="top1")
    assert list(view.cells.columns) == ["rate=0.3", "rate=0.7"]
    assert view.cells.loc[("du", "random"), "rate=0.7"] == "0.410 ± 0.013"
    assert view.cells.loc[("tdds", "full"), "rate=0.3"] == "0.200"
    assert view.cells.loc[("tdds", "random"), "rate=0.7"] == "-"
    best = view.best
    assert best.loc[("du", "full"), "rate=0.3"] and best.loc[("du", "random"), "rate=0.7"]
    assert best.loc[("tdds", "full"), "rate=0.3"] and not best.loc[("du", "random"), "rate=0.3"]
    assert "0.410 ± 0.013 *" in repr(view)


def test_table_html_is_deterministic_and_bolds_the_best():
    first = plots.table_view(_summary(), rows=["scorer", "setting"], columns="rate", values="top1")._repr_html_()
    second = plots.table_view(_summary(), rows=["scorer", "setting"], columns="rate", values="top1")._repr_html_()
    assert first == second and "<table" in first and "font-weight: bold" in first
    other = plots.table_view(_summary().assign(top1_mean=0.1), rows=["scorer", "setting"], columns="rate", values="top1")._repr_html_()
    assert other.split('id="T_')[1][:10] != first.split('id="T_')[1][:10]  # two tables on one page do not share ids


def test_long_table_joins_mean_and_std_and_sorts():
    view = plots.table_view(_summary())
    assert list(view.cells.columns) == ["scorer", "setting", "rate", "top1"]
    assert view.cells["top1"].iloc[0] == "0.500 ± 0.004"
    assert list(view.cells["scorer"]) == ["du"] * 4 + ["tdds"] * 2


def test_show_table_prints_the_text_form_outside_a_notebook(capsys):
    plots.show_table(pd.DataFrame({"method": ["a"], "x": [-0.0001]}))
    assert capsys.readouterr().out.split() == ["method", "x", "a", "0.000"]  # -0.0 printed as 0.000


def test_labels_of_no_family_get_distinct_colours():
    colours = plots.palette(["true (full run)", "subset run (its own samples)", "knn(k=10)"])
    assert len(set(colours.values())) == 3
    assert colours["knn(k=10)"] == plots.METHOD_STYLES["knn"][0]


def test_true_scores_take_the_full_runs_style():
    assert plots.method_family("true (full run)") == "full"
    assert plots.palette(["true (full run)"])["true (full run)"] == plots.METHOD_STYLES["full"][0]


def test_pivot_refuses_rows_it_cannot_tell_apart():
    from scorecast.validation import ScorecastError

    with pytest.raises(ScorecastError, match="add the column that tells them apart"):
        plots.table_view(_summary(), rows=["setting"], columns="rate", values="top1")  # du and tdds share cells


# ---------------------------------------------------------------- readable names, legends, one colour per method
@pytest.mark.parametrize("raw, shown", [("gnn(k=10, labels=True) @ 0.2", "GNN (k=10, labels) @ 20 %"),
                                        ("gnn(k=10, labels=False)", "GNN (k=10, no labels)"),
                                        ("knn(k=10) @ 0.2 class-balanced", "kNN (k=10) @ 20 % class-balanced"),
                                        ("knn(k=10, calibrate=True) @ 0.05", "kNN (k=10, calibrated) @ 5 %"),
                                        ("proxy(kind=aug_std, augmentations=8)", "proxy (aug_std, 8 augm.)"),
                                        ("subset_plus_random", "subset + random"), ("random", "random"),
                                        ("true (full run)", "true (full run)"), ("cv_spearman", "cv_spearman")])
def test_display_names_are_readable_and_keep_the_family(raw, shown):
    assert plots.display_name(raw) == shown
    assert plots.display_name(shown) == shown  # idempotent
    assert plots.method_family(shown) == plots.method_family(raw)


def test_random_is_the_same_grey_whatever_else_is_in_the_figure_raw_or_displayed():
    grey = plots.METHOD_STYLES["random"][0]
    mixes = [["random"], ["full", "random"], ["knn(k=10) @ 0.2", "gnn(k=10, labels=True) @ 0.2", "random"],
             ["true (full run)", "cv_spearman", "random", "full class-balanced"], ["GNN (k=10, labels) @ 20 %", "random", "kNN (k=10) @ 20 %"]]
    for labels in mixes:
        assert plots.palette(labels)["random"] == grey, labels
    assert plots.palette(["kNN (k=10) @ 20 %"])["kNN (k=10) @ 20 %"] == plots.METHOD_STYLES["knn"][0]


def _boxes(fig, ax):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)


@pytest.mark.parametrize("n_methods", [3, 8])
def test_line_over_seeds_keeps_its_legend_in_its_own_panel_with_display_names(n_methods):
    import matplotlib.pyplot as plt

    names = ["full", "random", "knn(k=10) @ 0.2", "gnn(k=10, labels=True) @ 0.2", "mlp(labels=True) @ 0.2",
             "proxy(kind=aug_std, augmentations=8) @ 0.2", "knn(k=10) @ 0.2 class-balanced", "full class-balanced"][:n_methods]
    table = pd.DataFrame([{"setting": s, "rate": r, "seed": seed, "top1": 0.5 + 0.01 * i - 0.1 * r + 0.001 * seed}
                          for i, s in enumerate(names) for r in (0.3, 0.5, 0.7) for seed in (0, 1)])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for ax in (left, right):
        plots.line_over_seeds(table, "rate", "top1", hue="setting", ax=ax)
    legend, panel = _boxes(fig, left)
    other, neighbour = _boxes(fig, right)
    assert legend.x1 <= neighbour.x0 and legend.x1 <= other.x0  # never over the next panel or its legend
    assert panel.x0 <= (legend.x0 + legend.x1) / 2 <= panel.x1  # centred on its own panel
    if n_methods <= plots.LEGEND_INSIDE:
        assert panel.y0 - 1 <= legend.y0 and legend.y1 <= panel.y1 + 1  # inside the axes
    texts = [t.get_text() for t in left.get_legend().get_texts()]
    assert texts == [plots.display_name(n) for n in names] and "kNN (k=10) @ 20 %" in texts
    plt.close(fig)


def test_tables_show_display_names_but_keep_the_raw_labels():
    table = pd.DataFrame({"setting": ["gnn(k=10, labels=True) @ 0.2", "random"], "rate": [0.5, 0.5], "top1_mean": [0.6, 0.5], "top1_std": [0.01, 0.02]})
    view = plots.table_view(table, rows=["setting"], columns="rate", values="top1")
    assert list(view.cells.index) == ["GNN (k=10, labels) @ 20 %", "random"]
    assert plots.table_view(table).cells["setting"].tolist() == ["GNN (k=10, labels) @ 20 %", "random"]
    assert table["setting"].tolist() == ["gnn(k=10, labels=True) @ 0.2", "random"]  # the caller's (and the CSV's) labels untouched

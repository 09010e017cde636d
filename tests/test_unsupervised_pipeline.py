"""scorecast.pipeline.UnsupervisedPipeline end to end on digits with tiny settings: TURTLE on frozen
PCA features, DU on q_t, label-free kNN/GNN extrapolation, fidelity and cluster tables, the
label-free guard and the artefact cache (Table 3 and its beyond-the-paper pruning results)."""

import numpy as np
import pytest

import scorecast.unsupervised as unsupervised_module
from scorecast.data import random_subset
from scorecast.pipeline import ScoreResult, UnsupervisedPipeline
from scorecast.validation import ScorecastError

EXPERIMENT = {"data": {"name": "digits"}, "device": "cpu"}
ENCODER = {"name": "pca", "n_components": 20}
TURTLE = {"epochs": 30}
DU = {"name": "du", "window": 5}
KNN = {"name": "knn", "k": 5}
GNN = {"name": "gnn", "k": 5, "epochs": 5, "hidden": [16]}
N = 1437
FIDELITY_COLUMNS = ["scorer", "method", "fraction", "seed", "pearson", "spearman", "kendall", "ceiling_pearson",
                    "ceiling_spearman", "kept_overlap@0.5", "pruned_overlap@0.5", "scorer_spec", "method_spec"]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One pipeline, its cache and the tables every test reuses (computed once)."""
    root = tmp_path_factory.mktemp("cache")
    pipe = UnsupervisedPipeline(EXPERIMENT, ENCODER, TURTLE, cache_root=root)
    fidelity = pipe.fidelity_table([DU], [KNN, GNN], [0.2], [0])
    clusters = pipe.cluster_table([DU], [{"name": "full"}, KNN, {"name": "random"}], [0.5], [0], fraction=0.2)
    return {"root": root, "pipe": pipe, "fidelity": fidelity, "clusters": clusters}


def test_fidelity_table_columns_and_values(done):
    table = done["fidelity"]
    assert list(table.columns) == FIDELITY_COLUMNS
    assert len(table) == 2 and list(table["method"]) == ["knn(k=5)", "gnn(k=5, epochs=5, hidden=[16])"]
    numbers = table[FIDELITY_COLUMNS[4:-2]].to_numpy(dtype=float)
    assert np.isfinite(numbers).all() and (np.abs(numbers) <= 1).all()
    # the subset run's own DU correlates with the full run's on the subset samples (a real ceiling)
    assert (table["ceiling_spearman"] > 0).all()


def test_full_and_extrapolated_scores(done):
    pipe = done["pipe"]
    full = pipe.full_scores(DU, 0)
    assert isinstance(full, ScoreResult) and full.scores.shape == (N,)
    assert np.array_equal(full.subset_idx, np.arange(N)) and np.isfinite(full.scores).all() and full.scores.std() > 0
    run = pipe.run(0, 0.2)
    assert np.array_equal(run.indices, random_subset(N, 0.2, 0))
    assert run.true_prob.shape == (TURTLE["epochs"], len(run.indices)) and run.assigned_all.shape == (N,)
    computed = pipe.subset_scores(run, DU)
    for method in (KNN, GNN):
        result = pipe.extrapolated_scores(DU, 0.2, 0, method)
        assert result.scores.shape == (N,) and np.isfinite(result.scores).all()
        assert np.array_equal(result.subset_idx, run.indices)
        np.testing.assert_array_equal(result.scores[run.indices], computed)  # subset entries keep their scores
        assert set(result.seconds) == {"encoding", "scoring", "extrapolation"}


@pytest.mark.parametrize("method, match", [({"name": "gnn", "labels": True}, "label-free"),
                                           ({"name": "knn", "k": 5, "use_labels": True}, "unknown option 'use_labels' for knn"),
                                           ({"name": "gnn", "k": 5, "label_features": [1, 2]}, "unknown option 'label_features' for gnn")])
def test_label_free_guard_on_methods(done, method, match):
    with pytest.raises(ScorecastError, match=match):
        done["pipe"].extrapolated_scores(DU, 0.2, 0, method)


def test_label_free_guard_on_construction(done):
    with pytest.raises(ScorecastError, match="label-free"):
        UnsupervisedPipeline(EXPERIMENT, ENCODER, {**TURTLE, "labels": True}, cache_root=done["root"])
    with pytest.raises(ScorecastError, match="encoder must be a mapping with a name"):
        UnsupervisedPipeline(EXPERIMENT, {"n_components": 20}, TURTLE, cache_root=done["root"])


@pytest.mark.parametrize("scorer", [{"name": "tdds", "window": 5}, {"name": "el2n"}, {"name": "forgetting"}])
def test_label_based_scorers_are_refused(done, scorer):
    with pytest.raises(ScorecastError, match="unsupervised"):
        done["pipe"].full_scores(scorer, 0)
    with pytest.raises(ScorecastError, match="unsupervised"):
        done["pipe"].fidelity_table([scorer], [KNN], [0.2], [0])


def test_supervised_extrapolators_are_refused(done):
    for name in ("proxy", "hybrid", "stacked", "mlp", "prototypes"):
        with pytest.raises(ScorecastError, match=f"method '{name}' is not available without labels"):
            done["pipe"].extrapolated_scores(DU, 0.2, 0, {"name": name})


def test_cluster_table(done):
    table = done["clusters"]
    assert list(table.columns) == ["scorer", "method", "rate", "seed", "cluster_accuracy", "n_kept", "scorer_spec", "method_spec"]
    assert list(table["method"]) == ["full", "knn(k=5)", "random"]
    assert (table["n_kept"] == round(0.5 * N)).all()
    accuracy = table["cluster_accuracy"].to_numpy()
    assert np.isfinite(accuracy).all() and ((accuracy >= 0) & (accuracy <= 1)).all()
    assert (accuracy > 0.2).all()  # well above chance (0.1) even after 30 epochs on half the data


def test_second_call_hits_the_cache(done, monkeypatch):
    calls = {"turtle": 0, "encode": 0}
    turtle, encode = unsupervised_module.turtle, unsupervised_module.encode

    def counted_turtle(*args, **kwargs):
        calls["turtle"] += 1
        return turtle(*args, **kwargs)

    def counted_encode(*args, **kwargs):
        calls["encode"] += 1
        return encode(*args, **kwargs)

    monkeypatch.setattr(unsupervised_module, "turtle", counted_turtle)
    monkeypatch.setattr(unsupervised_module, "encode", counted_encode)
    fresh = UnsupervisedPipeline(EXPERIMENT, ENCODER, TURTLE, cache_root=done["root"])  # a new object, same cache
    again = fresh.cluster_table([DU], [{"name": "full"}, KNN, {"name": "random"}], [0.5], [0], fraction=0.2)
    assert calls == {"turtle": 0, "encode": 0}
    np.testing.assert_array_equal(again["cluster_accuracy"], done["clusters"]["cluster_accuracy"])
    first = fresh.run(0)
    assert fresh.run(0).path == first.path and calls["turtle"] == 0
    # a different TURTLE config is a different artefact: computed once, then cached
    other = UnsupervisedPipeline(EXPERIMENT, ENCODER, {"epochs": 3}, cache_root=done["root"])
    other.run(0, 0.1)
    other.run(0, 0.1)
    assert calls == {"turtle": 1, "encode": 0}

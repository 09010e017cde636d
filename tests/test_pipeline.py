"""scorecast.pipeline end to end on digits with tiny settings: full and extrapolated scores, pruning
and real retraining, cache hits across Pipeline objects, the tidy tables and input errors."""

import numpy as np
import pytest

import scorecast.pipeline as pipeline_module
import scorecast.prune as prune_module
from scorecast import plots, prune
from scorecast import proxy as proxy_module
from scorecast import scores as scores_module
from scorecast.data import random_subset
from scorecast.pipeline import PHASES, Pipeline, ScoreResult
from scorecast.registry import build_method, build_scorer
from scorecast.validation import ScorecastError

EXPERIMENT = {
    "data": {"name": "digits"},
    "model": "tiny_cnn",
    "scoring": {"epochs": 6, "batch_size": 128},
    "record": {"source": "train", "trajectory": "last", "trajectory_length": 6},
    "retrain": {"epochs": 3, "batch_size": 64, "lr": 0.01},
    "subset_length": "epochs",  # one run per subset (the protocols have their own tests: test_protocol.py)
    "device": "cpu",
}
DU = {"name": "du", "window": 3}
KNN = {"name": "knn", "k": 5}
N = 1437


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One pipeline, its cache and the results every test reuses (computed once)."""
    root = tmp_path_factory.mktemp("cache")
    pipe = Pipeline(EXPERIMENT, cache_root=root)
    full = pipe.full_scores(DU, seed=0)
    pruned = pipe.retrain(full.scores, 0.5, seed=0)
    rand = pipe.scores_for(DU, {"name": "random"}, seed=0)
    random_out = pipe.retrain(rand.scores, 0.5, seed=0)
    extra = pipe.extrapolated_scores(DU, 0.3, 0, KNN)
    return {"root": root, "pipe": pipe, "full": full, "pruned": pruned, "random": rand, "random_out": random_out, "extra": extra}


def _forbid_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a cached stage was computed again")

    for module, name in ((pipeline_module, "train"), (pipeline_module, "embed"), (prune_module, "train"), (prune_module, "retrain_and_evaluate")):
        monkeypatch.setattr(module, name, fail)


def test_full_scores_prune_and_retrain(done):
    full = done["full"]
    assert isinstance(full, ScoreResult)
    assert full.scores.shape == (N,) and np.isfinite(full.scores).all() and (full.scores >= 0).all()
    assert np.array_equal(full.subset_idx, np.arange(N))
    assert full.seconds["scoring"] > 0 and full.total_seconds == full.seconds["scoring"]
    assert full.scores.std() > 0  # DU separates samples
    n_kept = len(prune.select(full.scores, 0.5))
    assert n_kept == round(0.5 * N) == 718
    for out in (done["pruned"], done["random_out"]):
        assert out["n_kept"] == n_kept
        assert 0 < out["top1"] <= 1 and out["top1"] <= out["top5"] <= 1
        assert out["top1"] > 0.2  # real retraining: well above chance (0.1) after 3 epochs
        assert out["robust_top1"] is None  # supervised paradigm
        assert out["train_seconds"] > 0
    rand = done["random"]
    assert rand.scores.shape == (N,) and len(rand.subset_idx) == 0 and rand.seconds == {}


def test_run_dynamics_are_recorded_in_dataset_order(done):
    pipe = done["pipe"]
    run = pipe.run(0, softmax=True)
    assert np.array_equal(run.indices, np.arange(N)) and np.array_equal(run.dynamics.indices, run.indices)
    tp = np.asarray(run.dynamics.true_prob())
    assert tp.shape == (6, N)
    assert run.dynamics.softmax_epochs == list(range(6))
    sm = np.asarray(run.dynamics.softmax())
    labels = pipe.labels
    np.testing.assert_allclose(sm[:, np.arange(N), labels], tp, rtol=1e-6)
    np.testing.assert_allclose(pipe.subset_scores(run, DU), done["full"].scores)
    model = run.model()
    assert not model.training and model.head.out_features == 10


def test_second_call_hits_the_cache(done, monkeypatch):
    root = done["root"]
    run_dir = done["pipe"].run(0).path
    manifest_mtime = (run_dir / "manifest.json").stat().st_mtime_ns
    artefacts = sorted(p.name for stage in root.iterdir() for p in stage.iterdir())
    _forbid_training(monkeypatch)
    fresh = Pipeline(EXPERIMENT, cache_root=root)  # another notebook, same cache
    again = fresh.full_scores(DU, seed=0)
    assert np.array_equal(again.scores, done["full"].scores)
    assert again.seconds == done["full"].seconds  # the stored wall time, not the (tiny) hit time
    assert fresh.retrain(again.scores, 0.5, seed=0) == done["pruned"]
    assert fresh.retrain(done["random"].scores, 0.5, seed=0) == done["random_out"]
    extra = fresh.extrapolated_scores(DU, 0.3, 0, KNN)
    assert np.array_equal(extra.scores, done["extra"].scores) and extra.seconds == done["extra"].seconds
    assert (run_dir / "manifest.json").stat().st_mtime_ns == manifest_mtime
    assert sorted(p.name for stage in root.iterdir() for p in stage.iterdir()) == artefacts


def test_changed_config_is_a_miss(done, monkeypatch):
    calls = []
    original = pipeline_module.train

    def counting(*args, **kwargs):
        calls.append(kwargs.get("desc"))
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "train", counting)
    pipe = Pipeline({**EXPERIMENT, "scoring": {"epochs": 3, "batch_size": 128}}, cache_root=done["root"])
    run = pipe.run(0, fraction=0.1)
    assert len(calls) == 1 and len(run.indices) == round(0.1 * N)
    assert pipe.run(0, fraction=0.1).path == run.path and len(calls) == 1  # now cached
    assert done["pipe"].run(0, fraction=0.1).path != run.path  # 6 scoring epochs: another artefact
    assert len(calls) == 2


def test_extrapolated_scores_contract(done):
    pipe, extra = done["pipe"], done["extra"]
    assert extra.scores.shape == (N,) and np.isfinite(extra.scores).all()
    expected_subset = random_subset(N, 0.3, 0)
    np.testing.assert_array_equal(extra.subset_idx, expected_subset)
    subset_run = pipe.run(0, fraction=0.3)
    np.testing.assert_array_equal(subset_run.indices, expected_subset)
    own = pipe.subset_scores(subset_run, DU)
    assert own.shape == (len(expected_subset),)
    np.testing.assert_array_equal(extra.scores[extra.subset_idx], own)  # subset entries are the run's scores
    assert set(extra.seconds) >= {"scoring", "embedding", "extrapolation"}
    assert all(v >= 0 for v in extra.seconds.values()) and extra.total_seconds >= extra.seconds["scoring"]
    # unscored samples get kNN means of subset scores: inside the subset's range
    rest = np.setdiff1d(np.arange(N), extra.subset_idx)
    assert own.min() - 1e-12 <= extra.scores[rest].min() and extra.scores[rest].max() <= own.max() + 1e-12
    Z, seconds = pipe.embedding(subset_run)
    assert Z.shape == (N, subset_run.model().embedding_dim) and Z.dtype == np.float32 and seconds >= 0


def test_fidelity_table(done):
    table = done["pipe"].fidelity_table([DU], [KNN], [0.3], [0])
    assert list(table.columns) == [
        "scorer", "method", "fraction", "seed", "pearson", "spearman", "kendall",
        "ceiling_pearson", "ceiling_spearman", "kept_overlap@0.5", "pruned_overlap@0.5", "scorer_spec", "method_spec",
    ]
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["scorer"], row["method"], row["fraction"], row["seed"]) == ("du", "knn(k=5)", 0.3, 0)
    assert row["scorer_spec"] == build_scorer(DU) and row["method_spec"] == build_method(KNN) and row["method_spec"].k == 5
    for col in ("pearson", "spearman", "kendall", "ceiling_pearson", "ceiling_spearman"):
        assert -1 <= row[col] <= 1
    for col in ("kept_overlap@0.5", "pruned_overlap@0.5"):
        assert 0 <= row[col] <= 1


def test_accuracy_table(done):
    methods = [{"name": "full"}, {"name": "random"}, KNN]
    table = done["pipe"].accuracy_table([DU], methods, [0.5], [0], fraction=0.3)
    assert list(table.columns) == [
        "scorer", "method", "fraction", "rate", "seed", "top1", "top5", "robust_top1",
        *[f"{phase}_seconds" for phase in PHASES], "final_training_seconds", "class_balanced", "scorer_spec", "method_spec",
    ]
    assert not table["class_balanced"].any()
    assert table["method_spec"].tolist() == [build_method(m) for m in methods]
    assert table["method"].tolist() == ["full", "random", "knn(k=5)"]
    assert table["fraction"].isna().tolist() == [True, True, False]
    assert ((table["top1"] > 0) & (table["top1"] <= 1)).all()
    # the full and random rows are the retrains computed before (served from the cache)
    assert table["top1"].iloc[0] == done["pruned"]["top1"] and table["top1"].iloc[1] == done["random_out"]["top1"]
    assert table["scoring_seconds"].iloc[0] == done["full"].seconds["scoring"]
    assert table["scoring_seconds"].iloc[1] == 0.0
    assert table["embedding_seconds"].iloc[2] >= 0 and table["final_training_seconds"].gt(0).all()


def test_pruning_table_adds_rate_zero_once_and_class_balanced_rows(done):
    """Rate 0 keeps every sample, so it is one retrain per seed whatever the method; full and random
    appear once over several fractions; balanced_methods add class-balanced rows at rates > 0 only."""
    pipe = done["pipe"]
    table = pipe.pruning_table([DU], [{"name": "full"}, KNN], [0.0, 0.5], [0], [0.2, 0.3], balanced_methods=[{"name": "full"}])
    global_rows = table[~table["class_balanced"]]
    assert sorted(global_rows["method"].unique()) == ["full", "knn(k=5)"]
    assert len(global_rows[global_rows["method"] == "full"]) == 2  # rates 0 and 0.5, not once per fraction
    assert len(global_rows[global_rows["method"] == "knn(k=5)"]) == 4  # two fractions x two rates
    unpruned = global_rows[global_rows["rate"] == 0.0]
    assert unpruned["top1"].nunique() == 1  # the same model: every sample kept
    balanced = table[table["class_balanced"]]
    assert balanced["method"].tolist() == ["full"] and balanced["rate"].tolist() == [0.5]
    assert balanced["top1"].iloc[0] == pipe.retrain(done["full"].scores, 0.5, 0, class_balanced=True)["top1"]
    labels = plots.with_setting(table)["setting"]
    assert "full class-balanced" in labels.tolist() and "knn(k=5) @ 0.3" in labels.tolist()


def test_bad_requests(done):
    pipe = done["pipe"]
    for fraction in (1.5, 2.0):  # a subset larger than the dataset
        with pytest.raises(ScorecastError, match="subset size"):
            pipe.run(0, fraction=fraction)
        with pytest.raises(ScorecastError, match="subset size"):
            pipe.extrapolated_scores(DU, fraction, 0, KNN)
    with pytest.raises(ScorecastError, match="scorer.name"):
        pipe.subset_scores(pipe.run(0), {"name": "entropy"})
    with pytest.raises(ScorecastError, match="fraction"):
        pipe.scores_for(DU, KNN, seed=0)
    with pytest.raises(ScorecastError, match="method.name"):
        pipe.extrapolated_scores(DU, 0.3, 0, {"name": "magic"})
    with pytest.raises(ScorecastError, match="rate"):
        pipe.retrain(done["full"].scores, 1.0, seed=0)
    with pytest.raises(ScorecastError, match="paradigm"):
        Pipeline({**EXPERIMENT, "paradigm": "self-supervised"})


def _generated_pool(folder, num_classes):
    """A small generated training pool in the npz on-disk format: train.npz, image (n, 8, 8, 1) uint8."""
    rng = np.random.default_rng(0)
    np.savez(folder / "train.npz", image=rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8), label=np.arange(40) % num_classes)


def test_separate_test_set_is_normalised_like_the_training_set(tmp_path):
    _generated_pool(tmp_path, 10)
    pipe = Pipeline({**EXPERIMENT, "data": {"name": "npz", "root": str(tmp_path), "num_classes": 10, "crop": 8}, "test_data": {"name": "digits"}}, tmp_path)
    test, train = pipe.test_set, pipe.train_set
    assert len(test) == 360 and test.name == "digits"
    assert test.mean == train.mean and test.std == train.std
    from scorecast.data import load_dataset
    assert load_dataset("digits", "test").mean != train.mean  # the override is what made them equal


def test_separate_test_set_with_other_classes_is_refused(tmp_path):
    _generated_pool(tmp_path, 5)
    with pytest.raises(ScorecastError, match=r"test_data \(digits\) holds labels \[5, 6, 7, 8, 9\] but .* has 5 classes"):
        Pipeline({**EXPERIMENT, "data": {"name": "npz", "root": str(tmp_path), "num_classes": 5, "crop": 8}, "test_data": {"name": "digits"}}, tmp_path)


def test_training_free_scores_on_frozen_features(done):
    pipe = done["pipe"]
    Z, _ = pipe.frozen_features({"name": "pca", "n_components": 8})
    zcore = pipe.scores_for(DU, {"name": "zcore", "encoder": {"name": "pca", "n_components": 8}, "draws": 2000}, seed=0)
    np.testing.assert_array_equal(zcore.scores, scores_module.zero_shot_coreset(Z, draws=2000, seed=0))
    assert zcore.subset_idx.size == 0 and set(zcore.seconds) == {"embedding", "scoring"}
    protos = pipe.scores_for(DU, {"name": "prototypes", "encoder": {"name": "pca", "n_components": 8}}, seed=0)
    np.testing.assert_array_equal(protos.scores, scores_module.prototypicality(Z, clusters=10, seed=0))
    with pytest.raises(ScorecastError, match=r"unknown option 'draw' for zcore \(did you mean 'draws'\?\)"):
        pipe.scores_for(DU, {"name": "zcore", "draw": 5}, seed=0)


def test_tables_check_every_spec_and_rate_before_training(done, monkeypatch):
    """A bad second method, a duplicate label or a rate that keeps no sample stops the table before
    the first (uncached) run: nothing trains."""
    _forbid_training(monkeypatch)
    pipe = Pipeline({**EXPERIMENT, "scoring": {"epochs": 5, "batch_size": 128}}, cache_root=done["root"])  # nothing cached
    with pytest.raises(ScorecastError, match=r"methods\[1\]: unknown option 'kk' for knn \(did you mean 'k'\?\)"):
        pipe.accuracy_table([DU], [{"name": "full"}, {"name": "knn", "kk": 3}], [0.5], [0], fraction=0.3)
    with pytest.raises(ScorecastError, match="share the label 'mine'"):
        pipe.fidelity_table([DU], [{"name": "knn", "label": "mine"}, {"name": "gnn", "label": "mine"}], [0.3], [0])
    with pytest.raises(ScorecastError, match=rf"rate=0.9999 keeps no sample of the {N} training samples"):
        pipe.accuracy_table([DU], [{"name": "full"}], [0.5, 0.9999], [0])
    with pytest.raises(ScorecastError, match=r"scorers\[0\]\.view 'adv' needs experiment.paradigm: adversarial"):
        pipe.accuracy_table([{"name": "du", "view": "adv"}], [{"name": "full"}], [0.5], [0])


def test_rows_carry_their_specs_with_several_rates(done):
    """Two rates: each row's spec is the method that made it, so joining on it (not on position) is right."""
    methods = [{"name": "full"}, KNN, {"name": "random"}]
    table = done["pipe"].accuracy_table([DU], methods, [0.3, 0.5], [0], fraction=0.3)
    assert list(zip(table["method"], table["rate"])) == [(m, r) for m in ("full", "knn(k=5)", "random") for r in (0.3, 0.5)]
    for row in table.itertuples():
        assert row.method_spec.title() == row.method and row.scorer_spec.name == row.scorer == "du"
        values = done["pipe"].scores_for(row.scorer_spec, row.method_spec, row.seed, 0.3).scores
        assert row.top1 == done["pipe"].retrain(values, row.rate, row.seed)["top1"]


def test_negative_seed_is_refused_before_training(done, monkeypatch):
    _forbid_training(monkeypatch)
    for call in (lambda: done["pipe"].run(-1), lambda: done["pipe"].full_scores(DU, -1), lambda: done["pipe"].run(-2, 0.3)):
        with pytest.raises(ScorecastError, match=r"seed must be an integer >= 0, got -\d"):
            call()


def test_proxy_hybrid_and_stacked_methods(done):
    pipe, extra = done["pipe"], done["extra"]
    own = extra.scores[extra.subset_idx]
    result = pipe.extrapolated_scores(DU, 0.3, 0, {"name": "proxy", "augmentations": 2})
    assert result.scores.shape == (N,) and np.isfinite(result.scores).all()
    assert set(result.seconds) == {"scoring", "proxy_inference", "extrapolation"}
    hybrid = pipe.extrapolated_scores(DU, 0.3, 0, {"name": "hybrid", "augmentations": 2, "k": 5, "weight": 0.25})
    np.testing.assert_array_equal(hybrid.scores, proxy_module.rank_average(extra.scores, result.scores, extra.subset_idx, 0.25))
    stacked = pipe.extrapolated_scores(DU, 0.3, 0, {"name": "stacked", "augmentations": 2, "k": 5, "folds": 2})
    assert stacked.scores.shape == (N,) and np.isfinite(stacked.scores).all() and stacked.seconds["crossfit"] > 0
    np.testing.assert_array_equal(stacked.scores[stacked.subset_idx], own)  # subset samples keep their computed scores


def test_softmax_is_recorded_only_for_scorers_that_read_it(tmp_path):
    """A DU run keeps no softmax trajectory (51 GB per ImageNet-64 run otherwise), a TDDS run keeps it, and
    a DU request reuses a cached run that recorded one rather than training again."""
    pipe = Pipeline(EXPERIMENT, cache_root=tmp_path)
    du_run = pipe.scoring_run(build_scorer(DU), 0, 0.3)
    tdds_run = pipe.scoring_run(build_scorer({"name": "tdds", "window": 3}), 0, 0.3)
    assert du_run.dynamics.softmax_epochs == [] and len(tdds_run.dynamics.softmax_epochs) == 6
    assert du_run.path != tdds_run.path
    again = Pipeline(EXPERIMENT, cache_root=tmp_path / "other")
    with_softmax = again.run(1, softmax=True)
    assert again.scoring_run(build_scorer(DU), 1, None).path == with_softmax.path  # reused, not trained again

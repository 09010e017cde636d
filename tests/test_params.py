"""scorecast.params: the schema of experiment configs and notebook parameter files; every bad value
stops the run with a message naming the key and the file."""

import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml

from scorecast.experiment import Experiment, RecordSettings
from scorecast.params import DEFAULT_EXPERIMENT, check_file, load_params, main, validate_experiment, validate_notebook_params
from scorecast.recipe import Recipe
from scorecast.train import PGD
from scorecast.validation import ScorecastError

SOURCE = "params/test/nb.yaml"


def _write(path, values):
    path.write_text(yaml.safe_dump(values) if not isinstance(values, str) else values)
    return path


def test_defaults_and_merge():
    merged = validate_experiment({})
    # the recipe and attack blocks: DEFAULT_EXPERIMENT's values over every field of Recipe and PGD
    assert merged.scoring == Recipe(epochs=20) and merged.attack == PGD()
    assert merged.retrain == Recipe(epochs=20, weight_decay=1e-3, schedule="onecycle")
    assert merged.record == RecordSettings("train", "last", 10)
    as_dict = merged.as_dict()
    assert as_dict["scoring"] == dataclasses.asdict(Recipe(epochs=20)) and as_dict["attack"] == dataclasses.asdict(PGD())
    assert list(as_dict) == list(DEFAULT_EXPERIMENT)  # the keys of the mapping, in its order
    assert {k: v for k, v in as_dict.items() if k not in ("scoring", "retrain", "attack")} == \
        {k: v for k, v in DEFAULT_EXPERIMENT.items() if k not in ("scoring", "retrain", "attack")}
    merged = validate_experiment({"scoring": {"epochs": 3, "lr": 0.1}, "data": {"name": "digits", "limit": 500}})
    assert merged.scoring == Recipe(epochs=3, lr=0.1)  # nested merge
    assert merged.data == {"name": "digits", "limit": 500}  # data is replaced, not merged
    assert DEFAULT_EXPERIMENT["scoring"]["epochs"] == 20  # defaults are never mutated
    assert validate_experiment({"retrain": {"lr": 1}}).retrain.lr == 1  # an int is a valid float


@pytest.mark.parametrize("given", [
    {},
    {"data": {"name": "digits", "limit": 500}, "test_data": {"name": "digits"}, "scoring": {"epochs": 3, "lr": 0.1, "amp": False},
     "record": {"trajectory": "first", "trajectory_length": 2}, "paradigm": "adversarial", "attack": {"steps": 3},
     "eval_autoattack_samples": 8, "subset_length": "steps", "device": "cpu"},
])
def test_experiment_is_typed_frozen_and_round_trips_through_its_mapping(given):
    experiment = validate_experiment(given)
    assert isinstance(experiment, Experiment)
    assert isinstance(experiment.scoring, Recipe) and isinstance(experiment.retrain, Recipe) and isinstance(experiment.attack, PGD)
    assert isinstance(experiment.record, RecordSettings)
    assert experiment.data["name"] == "digits" and experiment.scoring.epochs == given.get("scoring", {}).get("epochs", 20)
    # as_dict is the mapping validate_experiment filled in, and validating it again changes nothing
    as_dict = experiment.as_dict()
    assert validate_experiment(as_dict) == experiment and validate_experiment(as_dict).as_dict() == as_dict
    assert validate_experiment(experiment) == experiment  # an Experiment is accepted (and checked again)
    assert {**as_dict["scoring"], **as_dict["record"]} == {**dataclasses.asdict(experiment.scoring), **dataclasses.asdict(experiment.record)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        experiment.model = "resnet18"
    with pytest.raises(dataclasses.FrozenInstanceError):
        experiment.scoring.epochs = 1
    as_dict["data"]["limit"] = 7  # a copy: the experiment keeps its own
    assert experiment.data.get("limit") != 7
    given_data = given.get("data")
    if given_data is not None:
        given_data["limit"] = 9  # neither does the mapping it was validated from share its data spec
        assert experiment.data["limit"] == 500
        given_data["limit"] = 500


def test_record_settings_name_the_softmax_records():
    assert RecordSettings("train", "last", 3).softmax_records(10) == (7, 8, 9)
    assert RecordSettings("train", "first", 3).softmax_records(10) == (0, 1, 2)
    assert RecordSettings("train", "last", 10).softmax_records(4) == (0, 1, 2, 3)  # never more than the run records


@pytest.mark.parametrize(
    "experiment, names",
    [
        ({"scoring": {"epoch": 3}}, ["experiment.scoring.", "'epoch'", "epochs"]),
        ({"modle": "tiny_cnn"}, ["'modle'", "model"]),
        ({"data": {"name": "digits", "path": "/x"}}, ["experiment.data.", "'path'", "root"]),
        ({"test_data": {"name": "digits", "bogus": 1}}, ["experiment.test_data.", "'bogus'"]),
    ],
)
def test_unknown_key(experiment, names):
    with pytest.raises(ScorecastError) as err:
        validate_experiment(experiment, SOURCE)
    for name in [SOURCE, *names]:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "experiment, key",
    [
        ({"scoring": {"epochs": "5"}}, "experiment.scoring.epochs must be int"),
        ({"scoring": {"epochs": 5.0}}, "experiment.scoring.epochs must be int"),
        ({"scoring": {"epochs": True}}, "experiment.scoring.epochs must be int"),
        ({"retrain": {"lr": "1e-3"}}, "experiment.retrain.lr must be a finite number"),
        ({"retrain": {"nesterov": "yes"}}, "experiment.retrain.nesterov must be bool"),
        ({"data": "digits"}, "experiment.data must be a mapping"),
        ({"data": {"name": "npz", "root": 5}}, "experiment.data.root must be str or null"),
        ({"model": ["tiny_cnn"]}, "experiment.model must be str"),
        ({"test_data": "digits"}, "experiment.test_data must be dict or null"),
    ],
)
def test_wrong_type(experiment, key):
    with pytest.raises(ScorecastError, match=key.replace(".", r"\.")) as err:
        validate_experiment(experiment, SOURCE)
    assert SOURCE in str(err.value)


@pytest.mark.parametrize(
    "experiment, message",
    [
        ({"scoring": {"epochs": 0}}, "experiment.scoring.epochs must be >= 1"),
        ({"retrain": {"epochs": -3}}, "experiment.retrain.epochs must be >= 1"),
        ({"model": "resnet9000"}, "experiment.model='resnet9000'; allowed: ["),
        ({"data": {"name": "mnist"}}, "experiment.data.name='mnist'; allowed: ['cifar10'"),
        ({"data": {"root": "/data"}}, "experiment.data needs a name"),
        ({"paradigm": "unsupervised"}, "experiment.paradigm='unsupervised'; allowed: ['supervised', 'adversarial']"),
    ],
)
def test_impossible_experiment_values(experiment, message):
    with pytest.raises(ScorecastError) as err:
        validate_experiment(experiment, SOURCE)
    assert message in str(err.value) and SOURCE in str(err.value)


@pytest.mark.parametrize(
    "experiment, key",
    [
        ({"scoring": {"optimizer": "rmsprop"}}, "optimizer"),
        ({"scoring": {"schedule": "step"}}, "schedule"),
        ({"scoring": {"batch_size": 0}}, "batch_size"),
        ({"retrain": {"lr": -1.0}}, "lr"),
        ({"record": {"source": "bogus"}}, "source"),
        ({"record": {"trajectory": "middle"}}, "trajectory"),
        ({"device": "gpu"}, "device"),
        ({"test_data": {"name": "nope"}}, "test_data"),
        ({"test_data": {"root": "/data"}}, "test_data"),
        ({"paradigm": "adversarial", "attack": {"eps": 2.0}}, "eps"),
    ],
)
def test_impossible_values_stop_at_validation(experiment, key):
    # Design contract: "an impossible value stops the run with a message naming the key, the file
    # and what is allowed" -- at validation, not minutes later inside a training run (or, for
    # test_data, as a KeyError when the test set is first loaded).
    with pytest.raises(ScorecastError) as err:
        validate_experiment(experiment, SOURCE)
    assert key in str(err.value) and SOURCE in str(err.value)


def test_experiment_as_yaml_path(tmp_path):
    path = _write(tmp_path / "experiment.yaml", {"data": {"name": "digits"}, "scoring": {"epochs": 4}})
    merged = validate_experiment(str(path))
    assert merged.scoring.epochs == 4 and merged.data == {"name": "digits"}
    assert validate_experiment(path) == merged  # a pathlib.Path as well
    # a notebook file pointing at the shared experiment file
    nb = _write(tmp_path / "nb.yaml", {"experiment": str(path), "rates": [0.3], "seeds": [0, 1]})
    assert load_params(nb)["experiment"] == str(path)
    # errors inside the shared file name that file
    bad = _write(tmp_path / "bad_experiment.yaml", {"scoring": {"epochs": 0}})
    nb = _write(tmp_path / "nb2.yaml", {"experiment": str(bad)})
    with pytest.raises(ScorecastError, match="bad_experiment.yaml"):
        load_params(nb)
    with pytest.raises(ScorecastError, match="missing.yaml"):
        validate_experiment(str(tmp_path / "missing.yaml"))
    with pytest.raises(ScorecastError, match="must be a mapping"):
        validate_experiment(str(_write(tmp_path / "list.yaml", "- 1\n- 2\n")))


def test_experiment_file_varying_another(tmp_path):
    base = _write(tmp_path / "experiment.yaml", {"data": {"name": "digits", "limit": 500}, "scoring": {"epochs": 4, "lr": 0.1}})
    variant = _write(tmp_path / "experiment_1k.yaml", {"base": str(base), "data": {"name": "digits", "limit": 1000}})
    # the variant's keys replace the base's whole; the rest is the base's
    assert validate_experiment(str(variant)) == dataclasses.replace(validate_experiment(str(base)), data={"name": "digits", "limit": 1000})
    # a chain of variants
    twice = _write(tmp_path / "experiment_2x.yaml", {"base": str(variant), "retrain": {"epochs": 2}})
    merged = validate_experiment(str(twice))
    assert merged.data["limit"] == 1000 and merged.scoring.epochs == 4 and merged.retrain.epochs == 2
    # bad bases are refused naming the file
    _write(base, {"base": str(twice), "data": {"name": "digits"}})
    with pytest.raises(ScorecastError, match="leads back to this file"):
        validate_experiment(str(twice))
    with pytest.raises(ScorecastError, match="experiment_bad.yaml: base must name"):
        validate_experiment(str(_write(tmp_path / "experiment_bad.yaml", {"base": 3})))
    with pytest.raises(ScorecastError, match="nowhere.yaml"):
        validate_experiment(str(_write(tmp_path / "experiment_lost.yaml", {"base": str(tmp_path / "nowhere.yaml")})))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"rates": [0.5, 1.0]}, "rates entry 1.0 must be a fraction in [0, 1)"),
        ({"rates": [-0.1]}, "rates entry -0.1"),
        ({"rates": ["0.5"]}, "rates entry '0.5'"),
        ({"rates": [True]}, "rates entry True"),
        ({"fractions": [0]}, "fractions entry 0 must lie in (0, 1)"),
        ({"fractions": [1.0]}, "fractions entry 1.0"),
        ({"fractions": [-0.2]}, "fractions entry -0.2"),
        ({"seeds": [0, 1.5]}, "seeds entry 1.5 must be an integer"),
        ({"scorers": ["du"]}, "each scorer must be a mapping with a 'name'"),
        ({"methods": [{"k": 10}]}, "each method must be a mapping with a 'name'"),
        ({"rates": 0.5}, "rates must be list"),
        ({"cache_dir": 3}, "cache_dir must be str or null"),
        ({"n_exampels": 3}, "unknown key 'n_exampels'"),
        ({"experiment": {"scoring": {"epochs": 0}}}, "experiment.scoring.epochs must be >= 1"),
        ({"ratez": [0.5]}, "unknown key 'ratez' (did you mean 'rates'?)"),
        # late checks: refused here, not deep inside torch/numpy after training
        ({"seeds": [0, -1]}, "seeds entry -1 must be an integer >= 0"),
        ({"k_grid": [0, 5]}, "k_grid entry 0 must be an integer >= 1"),
        ({"experiment": {"scoring": {"weight_decay": -1e-4}}}, "experiment.scoring.weight_decay must be >= 0"),
        ({"experiment": {"retrain": {"weight_decay": -1}}}, "experiment.retrain.weight_decay must be >= 0"),
        ({"experiment": {"scoring": {"momentum": -0.9}}}, "experiment.scoring.momentum must be >= 0"),
        ({"scorers": [{"name": "tdds", "scoring": {"weight_decay": -1}}]}, "scorers[0].scoring.weight_decay must be >= 0"),
        ({"experiment": {"data": {"name": "digits", "crop": 0}}}, "experiment.data.crop must be >= 1"),
        ({"experiment": {"data": {"name": "digits", "pad": -1}}}, "experiment.data.pad must be >= 0"),
        ({"experiment": {"data": {"name": "digits", "limit": 0}}}, "experiment.data.limit must be >= 1"),
        ({"experiment": {"test_data": {"name": "digits", "crop": 0}}}, "experiment.test_data.crop must be >= 1"),
        ({"experiment": {"record": {"trajectory_length": 0}}}, "experiment.record.trajectory_length must be >= 1"),
        ({"experiment": {"eval_attack_steps": 0}}, "experiment.eval_attack_steps must be >= 1"),
        ({"scorers": []}, "scorers is empty"),
        ({"methods": []}, "methods is empty"),
        ({"rates": []}, "rates is empty"),
        ({"seeds": []}, "seeds is empty"),
        ({"fractions": []}, "fractions is empty"),
        ({"n_examples": 0}, "n_examples must be >= 1"),
        ({"scorers": [{"name": "du", "windw": 5}]}, "scorers[0]: unknown option 'windw' for du (did you mean 'window'?)"),
        ({"methods": [{"name": "knn", "kk": 10}]}, "methods[0]: unknown option 'kk' for knn (did you mean 'k'?)"),
        ({"methods": [{"name": "knm"}]}, "methods[0].name='knm' is not a method (did you mean 'knn'?)"),
    ],
)
def test_notebook_params(params, message):
    with pytest.raises(ScorecastError) as err:
        validate_notebook_params(params, SOURCE)
    assert message in str(err.value) and SOURCE in str(err.value)


def test_valid_notebook_params_pass_through():
    params = {"rates": [0, 0.3, 0.9], "fractions": [0.1, 0.5], "seeds": [0, 1], "scorers": [{"name": "du"}],
              "methods": [{"name": "knn", "k": 10}], "cache_dir": None, "experiment": {"model": "resnet20"}}
    assert validate_notebook_params(params, SOURCE) is params


def test_load_params_bad_files(tmp_path):
    with pytest.raises(ScorecastError, match="cannot read parameter file") as err:
        load_params(_write(tmp_path / "broken.yaml", "rates: [0.1, 0.2\nseeds: {"))
    assert "broken.yaml" in str(err.value)
    with pytest.raises(ScorecastError, match="must be a mapping"):
        load_params(_write(tmp_path / "scalar.yaml", "just a string\n"))
    with pytest.raises(ScorecastError, match="cannot read parameter file"):
        load_params(tmp_path / "absent.yaml")
    with pytest.raises(ScorecastError, match="rates entry 1.5") as err:
        load_params(_write(tmp_path / "rates.yaml", {"rates": [1.5]}))
    assert "rates.yaml" in str(err.value)
    for text in ("", "# only a comment\n\n"):
        with pytest.raises(ScorecastError, match="empty.yaml: holds no parameters"):
            load_params(_write(tmp_path / "empty.yaml", text))
    good = load_params(_write(tmp_path / "good.yaml", {"rates": [0.5], "experiment": {"scoring": {"epochs": 2}}}))
    assert good["rates"] == [0.5]


NOTEBOOK = "notebooks/quickstart.ipynb"


def test_check_refuses_keys_the_notebook_does_not_take(tmp_path):
    good = load_params("params/smoke/quickstart.yaml")  # the smoke tier's values over params/base/quickstart.yaml
    assert check_file(NOTEBOOK, _write(tmp_path / "good.yaml", good)) == good
    with pytest.raises(ScorecastError) as err:
        check_file(NOTEBOOK, _write(tmp_path / "typo.yaml", {**good, "ratez": [0.5]}))
    assert "typo.yaml" in str(err.value) and "'ratez' is not a parameter of quickstart.ipynb (did you mean 'rates'?)" in str(err.value)
    with pytest.raises(ScorecastError, match="'k_grid' is not a parameter of quickstart.ipynb"):  # a valid key of other notebooks
        check_file(NOTEBOOK, _write(tmp_path / "other.yaml", {**good, "k_grid": [5]}))
    with pytest.raises(ScorecastError, match="cannot read parameter file .*syntax.yaml"):
        check_file(NOTEBOOK, _write(tmp_path / "syntax.yaml", "rates: [0.1\n"))


def test_check_command_reports_every_bad_file(tmp_path, capsys):
    good = "params/smoke/quickstart.yaml"
    bad = _write(tmp_path / "bad.yaml", {"scorers": [{"name": "du", "windw": 3}]})
    assert main(["check", NOTEBOOK, good]) == 0
    assert main(["check", NOTEBOOK, str(bad), NOTEBOOK, good]) == 1
    assert "bad.yaml: scorers[0]: unknown option 'windw'" in capsys.readouterr().err
    assert main(["check", NOTEBOOK]) == 2  # a notebook without its parameter file


def test_run_all_refuses_a_misspelt_option_before_running_any_notebook():
    """./run_all.sh on a parameter file with a misspelt option stops in its check, naming the key,
    before papermill starts (no output folder, no notebook heading)."""
    name = "quickstart--typo-test-params"
    path = Path("params/smoke") / f"{name}.yaml"
    path.write_text("scorers:\n- {name: du, windw: 10}\n")  # a variant of the smoke file with one misspelt option
    try:
        done = subprocess.run(["./run_all.sh", name], capture_output=True, text=True, timeout=300)
    finally:
        path.unlink()
    assert done.returncode != 0
    assert (f"{name}.yaml (over params/smoke/quickstart.yaml, params/base/quickstart.yaml): scorers[0]: unknown option 'windw' "
            "for du (did you mean 'window'?)") in done.stderr
    assert "no notebook was run" in done.stderr and f"== smoke: {name}" not in done.stdout
    assert not Path(f"results/smoke/{name}").exists()

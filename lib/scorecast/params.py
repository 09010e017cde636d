"""Parameter files: schema, defaults and validation.

Every notebook's ``parameters`` cell and every parameter file use the keys in :data:`NOTEBOOK_KEYS`; a
file ``params/<tier>/<notebook>.yaml`` holds a tier's own values over the notebook's
``params/base/<notebook>.yaml`` (the layers: :mod:`scorecast.paramfiles`). ``experiment`` is the nested
config of :class:`scorecast.pipeline.Pipeline`, validated into an :class:`~scorecast.experiment.Experiment`;
each ``scorers``/``methods`` entry becomes a typed spec (:mod:`scorecast.specs`). An unknown or mistyped
key, a wrong type or an impossible value stops the run before any data is loaded, with a message naming
the key, the file and what is allowed.

Batch runs check every parameter file against its notebook first, writing each run's merged values to a
file that papermill then reads (so each file is validated once)::

    python -m scorecast.params check [--write DIR] notebooks/quickstart.ipynb params/smoke/quickstart.yaml [NOTEBOOK PARAMS ...]
    python -m scorecast.params merged notebooks/quickstart.ipynb params/smoke/quickstart.yaml   # YAML on stdout

``check`` also refuses a key, in any layer, that the notebook's parameters cell does not define.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import math
import sys
from pathlib import Path

import yaml

from . import registry, unsupervised
from .experiment import Experiment, RecordSettings
from .paramfiles import parameters_cell_keys, read_experiment, read_layers, read_params, source as file_source
from .paths import resolve
from .recipe import Recipe
from .specs import RECIPE_SCHEMA, check_encoder
from .validation import ScorecastError, check_mapping as _check_mapping, did_you_mean, type_ok as _type_ok

DEFAULT_EXPERIMENT = {
    "data": {"name": "digits"},
    "test_data": None,
    "model": "tiny_cnn",
    "paradigm": "supervised",
    # scoring, retrain and attack: what differs from the defaults of Recipe and PGD, which fill in the rest
    "scoring": {"epochs": 20},
    "record": {"source": "train", "trajectory": "last", "trajectory_length": 10},
    # how long a subset (proxy) run trains: "phase" (the default) = the multiple of the full run's
    # epochs whose run ends at the full run's final mean true-label probability (within
    # pipeline.PHASE_TOLERANCE), searched from round(sqrt(n / m)) (pipeline.phase_matched_run),
    # recorded every that many epochs, so DU/TDDS describe the same phase of
    # training in both runs; "steps" = as many optimizer steps as the full run (its epochs times
    # round(n / m)), which can overshoot into memorising the subset; "epochs" = the paper's literal
    # protocol (as many epochs as the full run, so a 20 % subset gets a fifth of the steps)
    "subset_length": "phase",
    "retrain": {"epochs": 20, "weight_decay": 1e-3, "schedule": "onecycle"},
    "attack": {},
    "eval_attack_steps": 20,
    # adversarial paradigm: robust accuracy under AutoAttack (scorecast.robust) on the first this many
    # test images beside PGD; None: PGD only
    "eval_autoattack_samples": None,
    "device": "auto",
    # data-parallel processes per training run (scorecast.distributed.launch: torchrun on this node, one GPU each on CUDA)
    "processes": 1,
}

_DATA = {"name": str, "root": (str, type(None)), "download": bool, "resize": int, "crop": int, "pad": int, "flip": bool, "num_classes": int, "limit": int, "mmap": (str, type(None))}
EXPERIMENT_SCHEMA = {
    "data": _DATA,
    "test_data": (dict, type(None)),
    "model": str,
    "paradigm": str,
    "scoring": RECIPE_SCHEMA,
    "record": {"source": str, "trajectory": str, "trajectory_length": int},
    "subset_length": str,
    "retrain": RECIPE_SCHEMA,
    "attack": {"eps": float, "step": float, "steps": int, "random_start": bool},
    "eval_attack_steps": int,
    "eval_autoattack_samples": (int, type(None)),
    "device": str,
    "processes": int,
}
PARADIGMS = ("supervised", "adversarial")
SUBSET_LENGTHS = ("steps", "epochs", "phase")
# lowest allowed value of numeric experiment fields, by block (data and test_data share theirs)
_MINIMUM = {
    "data": {"resize": 1, "crop": 1, "pad": 0, "num_classes": 1, "limit": 1},
    "scoring": {"weight_decay": 0, "momentum": 0},
    "retrain": {"weight_decay": 0, "momentum": 0},
    "record": {"trajectory_length": 1},
    "eval_attack_steps": 1,
    "eval_autoattack_samples": 1,
    "processes": 1,
}
_MINIMUM["test_data"] = _MINIMUM["data"]
# values that must stay below a bound (exclusive), by block
_BELOW = {"scoring": {"momentum": 1}, "retrain": {"momentum": 1}}
TURTLE_OPTIONS = {name: p.default for name, p in inspect.signature(unsupervised.turtle).parameters.items()
                  if name not in ("Z", "num_clusters", "seed", "device", "record_dir")}

# keys a notebook's parameters cell may hold, with their types
NOTEBOOK_KEYS = {
    "experiment": (dict, str),
    "scorers": list,
    "methods": list,
    "rates": list,
    "fractions": list,
    "seeds": list,
    "k_grid": list,
    "balanced_methods": list,
    "pruning_methods": list,
    "pruning_fractions": list,
    "sizes": list,
    "encoder": dict,
    "turtle": dict,
    "augmentations": int,
    "n_examples": int,
    "cache_dir": (str, type(None)),
    "output_dir": str,
}


def _check_minimum(values: dict, minimum: dict, where: str, source: str, below: bool = False) -> None:
    """Raise when a value of ``values`` is under its bound in ``minimum`` (nested like the schema);
    ``below``: the bounds are exclusive upper bounds instead."""
    for key, bound in minimum.items():
        value = values.get(key)
        if isinstance(bound, dict):
            if isinstance(value, dict):
                _check_minimum(value, bound, f"{where}{key}.", source, below)
        elif value is not None and (value >= bound if below else value < bound):
            raise ScorecastError(f"{source}: {where}{key} must be {'<' if below else '>='} {bound}, got {value!r}")


def _merge(defaults: dict, overrides: dict) -> dict:
    """A copy of ``defaults`` with ``overrides`` over it: nested blocks merged key by key, except the data
    specs (``data``, ``test_data``), which an override replaces whole. Shares no mapping with either."""
    out = copy.deepcopy(defaults)
    for key, value in overrides.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("data", "test_data")
        out[key] = _merge(out[key], value) if nested else copy.deepcopy(value)
    return out


def validate_experiment(experiment: dict | str | Path | Experiment, source: str = "experiment") -> Experiment:
    """Check an experiment config and return it as an :class:`~scorecast.experiment.Experiment`: merged over
    :data:`DEFAULT_EXPERIMENT`, its ``scoring``, ``retrain`` and ``attack`` blocks filled in with every field
    of :class:`~scorecast.recipe.Recipe` and :class:`~scorecast.train.PGD`.

    ``experiment`` is a mapping, the path of a tier's shared YAML file (e.g. ``params/cpu/experiment.yaml``,
    relative to :func:`scorecast.paths.project_root`; read by :func:`scorecast.paramfiles.read_experiment`,
    over the file its ``base:`` names), so every notebook of a tier shares one definition, or an
    Experiment (checked again through its :meth:`~scorecast.experiment.Experiment.as_dict`)."""
    if isinstance(experiment, Experiment):
        experiment = experiment.as_dict()
    elif isinstance(experiment, (str, Path)):
        source, experiment = str(resolve(experiment)), read_experiment(experiment)
    if not isinstance(experiment, dict):
        raise ScorecastError(f"{source}: experiment must be a mapping, got {type(experiment).__name__}")
    _check_mapping(experiment, EXPERIMENT_SCHEMA, "experiment.", source)
    merged = _merge(DEFAULT_EXPERIMENT, experiment)
    _check_minimum(merged, _MINIMUM, "experiment.", source)
    _check_minimum(merged, _BELOW, "experiment.", source, below=True)
    if "name" not in merged["data"]:
        raise ScorecastError(f"{source}: experiment.data needs a name")
    if merged["test_data"] is not None:
        _check_mapping(merged["test_data"], _DATA, "experiment.test_data.", source)
    if merged["paradigm"] not in PARADIGMS:
        raise ScorecastError(f"{source}: experiment.paradigm={merged['paradigm']!r}; allowed: {list(PARADIGMS)} (unsupervised runs use the TURTLE notebook keys)")
    from .data import REGISTRY
    from .models import MODELS

    if merged["data"]["name"] not in REGISTRY:
        raise ScorecastError(f"{source}: experiment.data.name={merged['data']['name']!r}; allowed: {sorted(REGISTRY)}")
    check_data_options(merged["data"], "experiment.data", source)
    if merged["model"] not in MODELS:
        raise ScorecastError(f"{source}: experiment.model={merged['model']!r}; allowed: {sorted(MODELS)}")
    for part in ("scoring", "retrain"):
        if merged[part]["epochs"] < 1:
            raise ScorecastError(f"{source}: experiment.{part}.epochs must be >= 1, got {merged[part]['epochs']}")
    if merged["test_data"] is not None:
        if merged["test_data"].get("name") not in REGISTRY:
            raise ScorecastError(f"{source}: experiment.test_data needs a name from {sorted(REGISTRY)}, got {merged['test_data'].get('name')!r}")
        if "limit" in merged["test_data"]:
            raise ScorecastError(f"{source}: experiment.test_data.limit would be ignored: the test set is always evaluated whole "
                                 "(limit samples the training split only); remove it")
        check_data_options(merged["test_data"], "experiment.test_data", source)
    if merged["subset_length"] not in SUBSET_LENGTHS:
        raise ScorecastError(f"{source}: experiment.subset_length={merged['subset_length']!r}; allowed: {list(SUBSET_LENGTHS)} "
                             "(steps: subset runs get the full run's optimizer steps; epochs: the paper's literal protocol; "
                             "phase: as many epochs as bring a subset run to the full run's final fit)")
    if merged["record"]["trajectory"] not in ("first", "last"):
        raise ScorecastError(f"{source}: experiment.record.trajectory={merged['record']['trajectory']!r}; allowed: ['first', 'last']")
    if merged["device"] != "auto" and merged["device"] != "cpu" and not merged["device"].startswith("cuda"):
        raise ScorecastError(f"{source}: experiment.device={merged['device']!r}; allowed: 'auto', 'cpu', 'cuda' or 'cuda:<n>'")
    # the training objects check their own values (naming the file and the block on failure) and fill in their defaults
    from .train import PGD, RecordSpec

    def checked(block: str, build):
        try:
            return build(**merged[block])
        except ScorecastError as err:
            raise ScorecastError(f"{source}: experiment.{block}: {err}") from None

    typed = {block: checked(block, build) for block, build in (("scoring", Recipe), ("retrain", Recipe), ("attack", PGD))}
    checked("record", lambda **record: RecordSpec(record["source"]))
    return Experiment(**{**merged, **typed, "record": RecordSettings(**merged["record"])})


def check_data_options(data: dict, where: str, source: str) -> None:
    """Raise unless the dataset ``data["name"]`` reads every option given in ``data`` (a null
    ``root``/``mmap`` or ``download: false`` counts as not given)."""
    from .data import check_options

    given = [k for k, v in data.items() if k != "name" and not (v is None or (k == "download" and v is False))]
    try:
        check_options(data["name"], given, where)
    except ScorecastError as err:
        raise ScorecastError(f"{source}: {err}") from None


def check_unsupervised_options(encoder: dict, turtle: dict, source: str) -> None:
    """Check the unsupervised paradigm's ``encoder`` ({"name", ...options}) and ``turtle`` options."""
    unsupervised.check_label_free({"encoder": encoder, "turtle": turtle}, source)
    check_encoder(encoder, f"{source}: encoder")
    for key, value in turtle.items():
        if key not in TURTLE_OPTIONS:
            raise ScorecastError(f"{source}: unknown turtle option {key!r}{did_you_mean(key, TURTLE_OPTIONS)}; allowed: {sorted(TURTLE_OPTIONS)} (seed and device come from the pipeline)")
        if not _type_ok(value, type(TURTLE_OPTIONS[key])):
            raise ScorecastError(f"{source}: turtle.{key} must be {type(TURTLE_OPTIONS[key]).__name__}, got {value!r}")


_NON_EMPTY = ("scorers", "methods", "rates", "fractions", "seeds", "k_grid", "pruning_methods", "pruning_fractions", "sizes")


PARAMETERS_CELL = "parameters cell"  # the source a notebook names when it checks its own parameters in its kernel


# what a notebook's own code looks up in its parameters, beyond their schema: {notebook: {key: [method names]}}
NOTEBOOK_NEEDS = {"quickstart": {"methods": ["knn"]}, "tab3_unsupervised": {"methods": ["knn"]}}


def validate_notebook_params(params: dict, source: str, notebook: str | None = None) -> dict:
    """Check a notebook's parameters (from its YAML file or parameters cell) and build every scorer
    and method spec, so a bad value is refused before any data is loaded; returns ``params``.

    Besides each value, checks across fields: scorer windows against the epochs a run records,
    k against the smallest subset and rates against the training set size where the size is known
    without loading data (``data.limit`` or the dataset's published size; the pipeline checks the
    rest before the run that needs them). When ``source`` is :data:`PARAMETERS_CELL` (a notebook
    checking its own parameters in its kernel), a parameter papermill injected (``papermill -p NAME
    VALUE``) that is not one of ``params`` (the notebook's parameters) is refused too: papermill
    itself only warns. With the ``notebook``'s name, the methods its code looks up
    (:data:`NOTEBOOK_NEEDS`) must be present."""
    if source == PARAMETERS_CELL:
        _check_injected(set(params))
    for key, names in NOTEBOOK_NEEDS.get(notebook, {}).items():
        given = [entry.get("name") for entry in params.get(key, []) if isinstance(entry, dict)]
        for name in names:
            if key in params and name not in given:
                raise ScorecastError(f"{source}: {key} must include a {name!r} entry: {notebook}.ipynb shows its {name} results "
                                     f"(given: {given})")
    _check_mapping(params, NOTEBOOK_KEYS, "", source)
    experiment = validate_experiment(params["experiment"], source) if "experiment" in params else validate_experiment({}, source)
    for key in _NON_EMPTY:
        if key in params and not params[key]:
            raise ScorecastError(f"{source}: {key} is empty; list at least one entry")
    for rate in params.get("rates", []):
        if not _type_ok(rate, float) or not 0 <= rate < 1:
            raise ScorecastError(f"{source}: rates entry {rate!r} must be a fraction in [0, 1)")
    for key in ("fractions", "pruning_fractions"):
        for fraction in params.get(key, []):
            if not _type_ok(fraction, float) or not 0 < fraction < 1:
                raise ScorecastError(f"{source}: {key} entry {fraction!r} must lie in (0, 1)")
    for size in params.get("sizes", []):
        if size is not None and (not _type_ok(size, int) or size < 2):
            raise ScorecastError(f"{source}: sizes entry {size!r} must be a number of training images >= 2, or null for all of them")
    for key in ("seeds", "k_grid"):
        low = 0 if key == "seeds" else 1
        for value in params.get(key, []):
            if not _type_ok(value, int) or value < low:
                raise ScorecastError(f"{source}: {key} entry {value!r} must be an integer >= {low}")
    for key in ("augmentations", "n_examples"):
        if key in params and params[key] < 1:
            raise ScorecastError(f"{source}: {key} must be >= 1, got {params[key]!r}")
    unsupervised_run = "encoder" in params or "turtle" in params
    if unsupervised_run:
        check_unsupervised_options(params.get("encoder", {}), params.get("turtle", {}), source)
    paradigm = "unsupervised" if unsupervised_run else experiment.paradigm
    for i, entry in enumerate(params.get("scorers", [])):
        spec = registry.build_scorer(entry, f"{source}: scorers[{i}]")
        registry.check_paradigm(spec, paradigm, f"{source}: scorers[{i}]")
        if spec.scoring:
            _check_minimum(spec.scoring, _MINIMUM["scoring"], f"scorers[{i}].scoring.", source)
            _check_minimum(spec.scoring, _BELOW["scoring"], f"scorers[{i}].scoring.", source, below=True)
            _build_recipe({**dataclasses.asdict(experiment.scoring), **spec.scoring}, f"{source}: scorers[{i}].scoring")
    methods = [registry.build_method(entry, f"{source}: methods[{i}]") for i, entry in enumerate(params.get("methods", []))]
    for i, spec in enumerate(methods):
        registry.check_paradigm(spec, paradigm, f"{source}: methods[{i}]")
    for key in ("balanced_methods", "pruning_methods"):
        for i, entry in enumerate(params.get(key, [])):
            registry.check_paradigm(registry.build_method(entry, f"{source}: {key}[{i}]"), paradigm, f"{source}: {key}[{i}]")
    try:
        registry.check_distinct_labels(methods)
    except ScorecastError as err:
        raise ScorecastError(f"{source}: methods: {err}") from None
    _check_windows(params, experiment, source)
    _check_known_sizes(params, experiment, source)
    return params


def _check_known_sizes(params: dict, experiment: Experiment, source: str) -> None:
    """:func:`check_sizes` with the training set size known without loading data: ``data.limit``,
    else the dataset's published size; with ``sizes`` (which override data.limit), the smallest of them."""
    from .data import REGISTRY

    published = REGISTRY[experiment.data["name"]].train_size
    if "sizes" in params:
        for size in params["sizes"]:
            if size is not None and published is not None and size >= published:
                raise ScorecastError(f"{source}: sizes entry {size} is not below the {published} training samples of "
                                     f"{experiment.data['name']}; use fewer, or null for all of them")
        known = [published if size is None else size for size in params["sizes"]]
        n = min((size for size in known if size is not None), default=None)
    else:
        n = experiment.data.get("limit") or published
    if n is not None:
        check_sizes(params, n, source)


def _check_windows(params: dict, experiment: Experiment, source: str) -> None:
    """Each scorer against what its run records (:meth:`~scorecast.specs.ScorerSpec.check_record`):
    E epochs (the scoring epochs, or TURTLE's) and the softmax of record.trajectory_length of them
    (first or last)."""
    for i, entry in enumerate(params.get("scorers", [])):
        spec = registry.build_scorer(entry, f"{source}: scorers[{i}]")
        if "encoder" in params or "turtle" in params:
            epochs, origin = params.get("turtle", {}).get("epochs", TURTLE_OPTIONS["epochs"]), "turtle.epochs"
        else:
            own = "epochs" in (spec.scoring or {})
            epochs = (spec.scoring or {}).get("epochs", experiment.scoring.epochs)
            origin = f"scorers[{i}].scoring.epochs" if own else "experiment.scoring.epochs"
        spec.check_record(epochs, experiment.record.softmax_records(epochs), origin, f"{source}: scorers[{i}]")


def check_sizes(params: dict, n: int, source: str) -> None:
    """Checks of notebook ``params`` that need the number ``n`` of training samples: every rate
    keeps a sample, and each method fits the smallest subset it sees (its
    :meth:`~scorecast.specs.MethodSpec.check_size`, m = round(fraction * n), as
    :func:`scorecast.data.random_subset` draws it)."""
    for rate in params.get("rates", []):
        if int(round((1.0 - rate) * n)) < 1:
            raise ScorecastError(f"{source}: rates entry {rate!r} keeps no sample of the {n} training samples; use a rate below {1 - 0.5 / n:.4f}")
    fractions = params.get("fractions", [])
    for key, fraction_key in (("methods", "fractions"), ("balanced_methods", "fractions"), ("pruning_methods", "pruning_fractions")):
        shares = params.get(fraction_key, fractions)
        if not shares:
            continue
        m = int(round(min(shares) * n))
        for i, entry in enumerate(params.get(key, [])):
            registry.build_method(entry).check_size(m, n, f"{source}: {key}[{i}]", f"the smallest subset ({fraction_key} {min(shares)} of {n})")
    if "k_grid" in params and fractions:
        m = int(round(min(fractions) * n))
        limit = m - math.ceil(m / 5)
        if max(params["k_grid"]) > limit:
            raise ScorecastError(f"{source}: k_grid entry {max(params['k_grid'])} exceeds {limit}, the smallest training fold of 5-fold "
                                 f"cross-validation on the smallest subset (fractions {min(fractions)} of {n} = {m} samples); "
                                 f"use k <= {limit} or larger fractions")


def _check_injected(defined: set[str]) -> None:
    """Refuse parameters papermill injected into this kernel that are not ``defined`` (the
    notebook's parameters). Papermill runs them as a cell starting ``# Parameters``, which the
    kernel's input history keeps; outside a kernel, or without papermill, there is nothing to check."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    injected = [cell for cell in (shell.user_ns.get("In", []) if shell is not None else []) if cell.startswith("# Parameters\n")]
    if not injected:
        return
    try:
        tree = ast.parse(injected[-1])
    except SyntaxError:
        return
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    unknown = sorted(names - defined - {n for n in names if n.startswith("PAPERMILL_")})
    if unknown:
        raise ScorecastError(f"papermill set {unknown[0]!r}, which is not a parameter of this notebook{did_you_mean(unknown[0], defined)}, "
                             f"so it would be ignored; its parameters: {sorted(defined)}")


def _build_recipe(values: dict, where: str) -> None:
    try:
        Recipe(**values)
    except ScorecastError as err:
        raise ScorecastError(f"{where}: {err}") from None


def load_params(path: str | Path) -> dict:
    """Read a parameter file over its layers (:func:`scorecast.paramfiles.read_params`) and validate the merged values."""
    return validate_notebook_params(read_params(path), file_source(path))


def check_file(notebook: str | Path, path: str | Path) -> dict:
    """Validate the parameter file ``path`` for ``notebook``: every key of every layer
    (:func:`scorecast.paramfiles.layers`) must be one of the notebook's parameters (papermill would only
    warn), every merged value valid, and the methods the notebook's code looks up (:data:`NOTEBOOK_NEEDS`)
    present. Returns the merged parameters in the order of the notebook's parameters cell."""
    path, notebook = Path(path), Path(notebook)
    if not notebook.is_file():
        known = sorted(p.stem for p in notebook.parent.glob("*.ipynb"))
        raise ScorecastError(f"no notebook {str(notebook)!r} for parameter file {str(path)!r}{did_you_mean(notebook.stem, known)}; "
                             f"the notebooks are: {known}")
    allowed = parameters_cell_keys(notebook)
    read = read_layers(path)
    for layer, values in read:
        for key in values:
            if key not in allowed:
                raise ScorecastError(f"{layer}: {key!r} is not a parameter of {notebook.name}{did_you_mean(key, allowed)}; "
                                     f"its parameters: {sorted(allowed)}")
    values = validate_notebook_params(read_params(path, read), file_source(path), notebook.stem)
    return {key: values[key] for key in allowed if key in values}


USAGE = ("usage: python -m scorecast.params check [--write DIR] NOTEBOOK.ipynb PARAMS.yaml [NOTEBOOK.ipynb PARAMS.yaml ...]\n"
         "       python -m scorecast.params merged NOTEBOOK.ipynb PARAMS.yaml")


def main(argv: list[str]) -> int:
    """``check [--write DIR] NOTEBOOK PARAMS [NOTEBOOK PARAMS ...]``: validate each pair; 0 when all are
    valid. With ``--write``, each valid pair's merged parameters (what papermill gets, in the order of the
    parameters cell) go to ``DIR/<PARAMS's stem>.yaml``, so run_all.sh validates each file once.
    ``merged NOTEBOOK PARAMS``: validate, then print the merged parameters as YAML."""
    command, rest = argv[:1], argv[1:]
    write = None
    if command == ["check"] and rest[:1] == ["--write"] and len(rest) > 1:
        write, rest = Path(rest[1]), rest[2:]
    if command not in (["check"], ["merged"]) or not rest or len(rest) % 2 or (command == ["merged"] and len(rest) != 2):
        print(USAGE, file=sys.stderr)
        return 2
    failed = 0
    for notebook, path in zip(rest[0::2], rest[1::2]):
        try:
            values = check_file(notebook, path)
        except ScorecastError as err:
            print(f"scorecast.params: {err}", file=sys.stderr)
            failed += 1
            continue
        merged = yaml.safe_dump(values, sort_keys=False, width=1000)
        if command == ["merged"]:
            print(merged, end="")
        elif write is not None:
            write.mkdir(parents=True, exist_ok=True)
            (write / f"{Path(path).stem}.yaml").write_text(merged)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

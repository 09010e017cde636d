"""The paper tier's dry run: every paper notebook and variant, with the paper's own parameter files,
on tiny generated data in each paper dataset's on-disk format, on a CPU in minutes.

``./run_all.sh --tier paper --dry-run [run ...]`` calls ``python -m scorecast.dryrun <scratch> [run ...]``,
which (1) writes the datasets the runs need into ``<scratch>/data/`` (:data:`GENERATED`, one writer
per format), (2) writes one parameter file per run into ``<scratch>/params/``, made by
:func:`shrink` from the paper file, and (3) prints one line per run (name, notebook, parameter
file, output folder) for run_all.sh to execute with papermill into ``<scratch>/out/``.

Runs: every ``params/paper/<notebook>.yaml`` and ``<notebook>--<variant>.yaml``, plus
``quickstart@<experiment>`` for each paper experiment file that no notebook file points at
(CIFAR-100 1M, Places-365, ImageNet-64), so that every paper dataset and model is read and trained.

:func:`shrink` is the one override. It changes only iteration counts (epochs, windows, attack steps),
sample counts, the number of rates and seeds, and paths; models, scorers, extrapolators, subset
fractions, batch sizes and optimisers stay the paper's:

- scorer ``window`` and ``record.trajectory_length`` -> at most :data:`WINDOW` epochs (the smallest
  window TDDS accepts; DU's code path is the same at 3 as at 10);
- ``scoring.epochs`` (and a scorer's own ``scoring.epochs``, TURTLE's ``epochs``) -> the fewest the
  run's scorers accept: the largest scorer ``window`` (+2 for DU's ``variant: reference``) or
  ``record.trajectory_length``; ``retrain.epochs`` -> 1;
- ``rates`` -> rate 0 where given, and the smallest and the largest other rate (every rate in
  between retrains through the same code);
- PGD steps (``attack.steps``, ``eval_attack_steps``) -> 1; ``eval_autoattack_samples`` -> 2;
- ``seeds`` -> the first seed;
- ``data.root`` / ``test_data.root`` -> the generated folders, and a ``data.mmap`` folder -> one per
  generated dataset under ``<scratch>/mmap/`` (the first run converts, later runs map it); ``data.limit`` -> the fewest training
  samples that leave every present class one sample, every pruned set 2 (BatchNorm needs 2 per
  batch) and every subset 2, or 20 when a GNN/MLP learns on it (it holds out 10 %, at least 2, for
  early stopping) or k is cross-validated on it (5 folds), when that is below the generated size;
- only where the generated set is too small for that: ``fractions`` raised to the smallest that
  gives such a subset, reported;
- ``k`` of every method -> capped at the smallest subset the run draws (kNN needs k <= subset
  size), ``k_grid`` at 4/5 of it (the cross-validation's training folds), each cap reported;
- DINOv2 encoders -> ``stand_in: true`` (:class:`scorecast.unsupervised.DinoStandIn`, random
  weights, since torch.hub weights cannot be fetched offline), reported;
- ``cache_dir`` and ``output_dir`` -> the scratch folder.
"""

from __future__ import annotations

import copy
import functools
import math
import pickle
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import yaml
from PIL import Image

from . import registry
from .experiment import Experiment
from .params import load_params, validate_experiment, validate_notebook_params
from .paths import resolve
from .validation import ScorecastError

PAPER = "params/paper"
SUBSET_FOR_VALIDATION = 20  # subset of a method that validates on part of it (10 %: >= 2 samples), and select_k_cv's folds
CV_FOLDS = 5  # scorecast.extrapolate.select_k_cv's default: k is validated on 4/5 of the subset
WINDOW = 3  # scorer windows and the recorded trajectory, in epochs: TDDS's smallest window
EXTRA_DATASET_NOTEBOOK = "quickstart"  # runs once more on each experiment file no notebook file uses


# ============================================================================ generated datasets
# Images are class-coloured noise, (H, W, 3) uint8, so that a model can learn something in a few epochs.


def _images(rng: np.random.Generator, labels: np.ndarray, side: int) -> np.ndarray:
    """(n, side, side, 3) uint8: a per-class colour plus noise."""
    colours = np.random.default_rng(0).integers(40, 216, size=(1000, 3))
    noise = rng.integers(-40, 41, size=(len(labels), side, side, 3))
    return np.clip(colours[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)


def _labels(rng: np.random.Generator, n: int, present: int, base: int = 0) -> np.ndarray:
    """(n,) int64 labels base..base+present-1, each class equally often, shuffled."""
    return base + rng.permutation(np.arange(n) % present).astype(np.int64)


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def write_cifar(folder: Path, n_train: int, n_test: int, present: int, variant: str = "cifar10", seed: int = 0) -> None:
    """torchvision's pickled CIFAR batches: ``cifar-10-batches-py/`` (data_batch_1..5, test_batch,
    batches.meta) or ``cifar-100-python/`` (train, test, meta; fine labels); ``data`` rows are
    CHW-flattened (3072,) uint8. ``n_train`` is split over the five CIFAR-10 batches."""
    rng = np.random.default_rng(seed)
    cifar10 = variant == "cifar10"
    base = folder / ("cifar-10-batches-py" if cifar10 else "cifar-100-python")
    base.mkdir(parents=True, exist_ok=True)
    label_key = "labels" if cifar10 else "fine_labels"
    files = {f"data_batch_{i + 1}": part for i, part in enumerate(np.array_split(np.arange(n_train), 5))} if cifar10 else {"train": np.arange(n_train)}
    train_labels = _labels(rng, n_train, present)
    splits = {name: train_labels[rows] for name, rows in files.items()}
    splits["test_batch" if cifar10 else "test"] = _labels(rng, n_test, present)
    for name, labels in splits.items():
        data = _images(rng, labels, 32).transpose(0, 3, 1, 2).reshape(len(labels), -1)
        _pickle(base / name, {"data": data, label_key: labels.tolist()})
    num_classes = 10 if cifar10 else 100
    names = [f"class_{c}" for c in range(num_classes)]
    _pickle(base / ("batches.meta" if cifar10 else "meta"), {"label_names" if cifar10 else "fine_label_names": names})


def write_npz(folder: Path, n_train: int, n_test: int, present: int, seed: int = 0) -> None:
    """``train.npz`` with ``image`` (n, 32, 32, 3) uint8 and ``label`` (n,) (the 1M / 2M pools,
    tested on a real test set: ``n_test`` is unused)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels = _labels(rng, n_train, present)
    np.savez(folder / "train.npz", image=_images(rng, labels, 32), label=labels)


def write_places365(folder: Path, n_train: int, n_test: int, present: int, seed: int = 0) -> None:
    """torchvision's Places365 small-image layout: categories_places365.txt (365 classes),
    places365_train_standard.txt + data_256_standard/, places365_val.txt + val_256/, 256 px JPEGs."""
    rng = np.random.default_rng(seed)
    categories = [f"/{chr(97 + c % 26)}/place_{c:03d}" for c in range(365)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "categories_places365.txt").write_text("".join(f"{name} {c}\n" for c, name in enumerate(categories)))
    for split, n, list_file, image_dir in (("train", n_train, "places365_train_standard.txt", "data_256_standard"),
                                           ("test", n_test, "places365_val.txt", "val_256")):
        labels = _labels(rng, n, present)
        rows = []
        for i, (label, image) in enumerate(zip(labels, _images(rng, labels, 256))):
            rel = f"{categories[label]}/{i + 1:08d}.jpg" if split == "train" else f"Places365_val_{i + 1:08d}.jpg"
            path = folder / image_dir / rel.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path, quality=90)
            rows.append(f"{rel} {label}\n")
        (folder / list_file).write_text("".join(rows))


def write_imagenet64(folder: Path, n_train: int, n_test: int, present: int, seed: int = 0) -> None:
    """Downsampled ImageNet npz batches: train_data_batch_1..10.npz and val_data.npz, ``data``
    (n, 12288) CHW-flattened uint8, ``labels`` 1-based, ``mean`` (12288,) as in the originals."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels = _labels(rng, n_train, present)
    batches = {f"train_data_batch_{i + 1}.npz": part for i, part in enumerate(np.array_split(labels, 10))}
    batches["val_data.npz"] = _labels(rng, n_test, present)
    for name, part in batches.items():
        data = _images(rng, part, 64).transpose(0, 3, 1, 2).reshape(len(part), -1)
        np.savez(folder / name, data=data, labels=part + 1, mean=data.mean(axis=0))


@dataclass(frozen=True)
class Generated:
    """One generated dataset: its folder under ``<scratch>/data``, its writer, sizes, and how many
    classes its labels use (few, so that a class-stratified sample stays small)."""

    folder: str
    writer: Callable[..., None]
    n_train: int
    n_test: int
    present: int

    def write(self, data_root: Path) -> Path:
        """Write the files into ``data_root/folder`` unless a previous dry run did; returns the folder."""
        folder = data_root / self.folder
        if not (folder / ".complete").exists():
            self.writer(folder, self.n_train, self.n_test, self.present)
            (folder / ".complete").touch()
        return folder


# keyed by data.name, and num_classes for npz pools
GENERATED = {
    "cifar10": Generated("cifar10", write_cifar, n_train=100, n_test=20, present=10),
    "cifar100": Generated("cifar100", functools.partial(write_cifar, variant="cifar100"), n_train=20, n_test=20, present=10),
    "npz:100": Generated("cifar100-1m-npz", write_npz, n_train=40, n_test=0, present=10),
    "npz:10": Generated("adversarial-2m-npz", write_npz, n_train=10, n_test=0, present=10),  # WideResNet-28-10 with PGD: the costliest
    "places365": Generated("places365", write_places365, n_train=40, n_test=10, present=10),
    "imagenet64": Generated("imagenet64", write_imagenet64, n_train=40, n_test=10, present=10),
}


def dataset_key(spec: dict) -> str:
    """The :data:`GENERATED` key of a ``data`` / ``test_data`` spec."""
    key = spec["name"] if spec["name"] != "npz" else f"npz:{spec.get('num_classes')}"
    if key not in GENERATED:
        raise ScorecastError(f"the dry run generates no data for {spec!r}; add it to scorecast.dryrun.GENERATED")
    return key


# ============================================================================ the override


def _epochs_needed(params: dict, trajectory_length: int) -> int:
    """The fewest scoring epochs the run's scorers and a recorded softmax trajectory of ``trajectory_length`` accept."""
    need = [trajectory_length]
    for scorer in params.get("scorers", []):
        spec = registry.build_scorer(scorer)
        window = getattr(spec, "window", 1)
        need.append(window + (2 if getattr(spec, "variant", None) == "reference" else 0))
    return max(need)


def shrink(params: dict, experiment: Experiment, data: dict[str, Path], scratch: Path, name: str) -> tuple[dict, list[str]]:
    """The dry run's one override (see the module docstring) of a paper notebook's ``params`` and its
    validated ``experiment`` (:func:`scorecast.params.validate_experiment`). ``data`` maps :func:`dataset_key` keys to
    generated folders. Returns (the notebook's parameters with the shrunk experiment inlined as a mapping,
    notes on what was substituted beyond epochs, seeds and sizes); the inputs are not modified."""
    params = copy.deepcopy(params)
    notes: list[str] = []
    for scorer in params.get("scorers", []):
        if getattr(registry.build_scorer(scorer), "window", 0) > WINDOW:
            scorer["window"] = WINDOW
    record = replace(experiment.record, trajectory_length=min(experiment.record.trajectory_length, WINDOW))
    epochs = _epochs_needed(params, record.trajectory_length)
    shrunk = {"record": record, "scoring": replace(experiment.scoring, epochs=epochs), "retrain": replace(experiment.retrain, epochs=1)}
    for scorer in params.get("scorers", []):
        if "epochs" in scorer.get("scoring", {}):
            scorer["scoring"]["epochs"] = epochs
    if "turtle" in params:
        params["turtle"]["epochs"] = epochs
    if experiment.paradigm == "adversarial":
        shrunk.update(attack=replace(experiment.attack, steps=1), eval_attack_steps=1)
        if experiment.eval_autoattack_samples is not None:
            shrunk["eval_autoattack_samples"] = 2
    params["seeds"] = params.get("seeds", [0])[:1]
    if "rates" in params:
        pruned = [r for r in params["rates"] if r > 0]
        params["rates"] = [r for r in params["rates"] if r == 0] + sorted({min(pruned), max(pruned)} if pruned else set())

    for part in ("data", "test_data"):
        spec = getattr(experiment, part)
        if spec is not None:
            key = dataset_key(spec)
            shrunk[part] = {**spec, "root": str(data[key])}
            if spec.get("mmap") is not None:  # converted once per dry run, mapped by every later run
                shrunk[part]["mmap"] = str(scratch / "mmap" / GENERATED[key].folder)
    generated = GENERATED[dataset_key(experiment.data)]
    fractions = params.get("fractions", [])
    validated = "k_grid" in params or any(registry.build_method(m).validates for m in params.get("methods", []))
    smallest = SUBSET_FOR_VALIDATION if validated else 2
    needed = [generated.present, smallest, *(smallest / f for f in fractions), *(2 / (1 - r) for r in params.get("rates", []))]
    n = math.ceil(max(needed) - 1e-9)
    if n < generated.n_train:
        shrunk["data"]["limit"] = n
    else:
        n = generated.n_train
    if "sizes" in params:  # the scale study: one sample of n images, and every generated image
        params["sizes"] = [n, None] if n < generated.n_train else [None]
    if any(round(f * n) < smallest for f in fractions):
        raised = sorted({max(f, smallest / n) for f in fractions})
        notes.append(f"fractions {fractions} -> {[round(f, 3) for f in raised]} (a {n}-sample dry run)")
        params["fractions"] = fractions = raised
    subset = min([round(f * n) for f in fractions], default=n - 1)
    for method in params.get("methods", []):
        if method.get("k", 0) > subset:
            notes.append(f"{method['name']} k {method['k']} -> {subset}")
            method["k"] = subset
    k_limit = subset - math.ceil(subset / CV_FOLDS)  # k-sweeps cross-validate k on the subset
    if any(k > k_limit for k in params.get("k_grid", [])):
        capped = sorted({min(k, k_limit) for k in params["k_grid"]})
        notes.append(f"k_grid {params['k_grid']} -> {capped}")
        params["k_grid"] = capped
    for encoder in [params.get("encoder"), *(m.get("encoder") for m in params.get("methods", []))]:
        if encoder and encoder.get("name") == "dinov2" and not encoder.get("stand_in"):
            encoder["stand_in"] = True
            notes.append(f"DINOv2 ({encoder.get('arch', 'default arch')}) -> a random STAND-IN")
    params["experiment"] = replace(experiment, **shrunk).as_dict()
    notes = list(dict.fromkeys(notes))
    params["cache_dir"] = str(scratch / "cache")
    params["output_dir"] = str(scratch / "out" / name)
    return params, notes


# ============================================================================ runs


def paper_runs() -> dict[str, tuple[str, dict, Experiment]]:
    """{run name: (notebook, paper parameters, validated experiment)} for every paper parameter file
    with a notebook, plus ``quickstart@<experiment>`` for each experiment file no notebook uses."""
    paper = resolve(PAPER)
    runs, used = {}, set()
    for path in sorted(paper.glob("*.yaml")):
        notebook = path.stem.split("--")[0]
        if not resolve(f"notebooks/{notebook}.ipynb").is_file():
            continue
        params = load_params(path)
        if not isinstance(params.get("experiment"), str):
            raise ScorecastError(f"{path}: the dry run expects `experiment` to name a paper experiment file")
        used.add(resolve(params["experiment"]).name)
        runs[path.stem] = (notebook, params, validate_experiment(params["experiment"]))
    quickstart = load_params(paper / f"{EXTRA_DATASET_NOTEBOOK}.yaml")
    for path in sorted(paper.glob("experiment*.yaml")):
        if path.name not in used:
            experiment = f"{PAPER}/{path.name}"
            runs[f"{EXTRA_DATASET_NOTEBOOK}@{path.stem}"] = (EXTRA_DATASET_NOTEBOOK, {**quickstart, "experiment": experiment}, validate_experiment(experiment))
    return runs


def prepare(scratch: Path, selected: list[str]) -> list[tuple[str, str, Path, Path, list[str]]]:
    """Generate the data and write the shrunk parameter files for the ``selected`` runs (all when
    empty; a name selects that run and its ``@<experiment>`` runs). Returns (run, notebook,
    parameter file, output folder, notes) per run."""
    runs = paper_runs()
    unknown = [s for s in selected if not any(r == s or r.startswith(f"{s}@") for r in runs)]
    if unknown:
        raise ScorecastError(f"no paper run named {unknown}; runs: {sorted(runs)}")
    chosen = {r: v for r, v in runs.items() if not selected or any(r == s or r.startswith(f"{s}@") for s in selected)}
    out = []
    for run, (notebook, params, experiment) in chosen.items():
        keys = [dataset_key(spec) for spec in (experiment.data, experiment.test_data) if spec is not None]
        data = {key: GENERATED[key].write(scratch / "data") for key in keys}
        shrunk, notes = shrink(params, experiment, data, scratch, run)
        validate_notebook_params(shrunk, f"dry run of {run}")
        path = scratch / "params" / f"{run}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"# dry run of params/paper/{run.split('@')[0]}.yaml" + (f" with {PAPER}/{run.split('@')[1]}.yaml" if "@" in run else "")
        path.write_text(f"{header}, shrunk by scorecast.dryrun.shrink\n" + yaml.safe_dump(shrunk, sort_keys=False))
        out.append((run, notebook, path, Path(shrunk["output_dir"]), notes))
    return out


def main(argv: list[str]) -> int:
    """``python -m scorecast.dryrun <scratch> [run ...]``: prepare, then print ``run<TAB>notebook<TAB>
    params<TAB>output folder<TAB>notes`` per run on stdout."""
    if not argv:
        print("usage: python -m scorecast.dryrun <scratch folder> [run ...]", file=sys.stderr)
        return 2
    try:
        runs = prepare(Path(argv[0]).resolve(), argv[1:])
    except ScorecastError as err:
        print(f"dry run: {err}", file=sys.stderr)
        return 1
    for run, notebook, path, output, notes in runs:
        print("\t".join([run, notebook, str(path), str(output), "; ".join(notes)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

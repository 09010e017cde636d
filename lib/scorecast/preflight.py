"""Pre-flight of a batch: what a tier's notebooks need, checked in seconds before any of them runs.

``python -m scorecast.preflight <params folder or file> ...`` (``./run_all.sh --tier paper --preflight``,
and automatically before every paper batch) checks, for every parameter file with a notebook:

- **parameters**: the file and its experiment validate (:mod:`scorecast.params`);
- **data**: every split the run reads (``data``; ``test_data``, else ``data``'s test split) has a
  folder (``root`` or ``SCORECAST_DATA_ROOT``) whose source files (the dataset's
  :attr:`scorecast.data.DatasetSpec.sources`, e.g. all ten ImageNet-64 batches, the Places-365
  file lists and image folders) exist and can be read (first bytes of each file, first entry of each
  folder). ``download: true`` splits are skipped (torchvision fetches them);
- **weights**: a DINOv2 encoder (not ``stand_in``) finds its torch.hub code and checkpoint in
  ``torch.hub.get_dir()`` (it cannot be fetched on an offline GPU node);
- **GPU**: a file under ``params/paper/`` whose experiment has ``device: auto`` or ``cuda[:n]``
  needs CUDA: on the paper tier ``auto`` would otherwise fall back to the CPU silently and run for weeks;
- **disk**: the records the batch plans (:func:`planned_bytes`: scoring-run dynamics, embeddings,
  proxy predictions, models) fit the free space of the cache's disk, and each ``data.mmap``
  conversion not made yet fits its folder's disk.

Every problem is listed (file, what, how to fix), not just the first; exit status 1 when any.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import registry
from .data import REGISTRY
from .experiment import Experiment
from .params import load_params, validate_experiment
from .paths import cache_root, resolve
from .validation import ScorecastError

CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet64": 1000, "places365": 365, "digits": 10, "fashion-mnist": 10}
TEST_SIZE = {"cifar10": 10000, "cifar100": 10000}
EMBED_DIM = 2048  # the widest penultimate layer of the kit's models (ResNet-50); an upper bound per sample
MODEL_BYTES = 200 * 2**20  # one saved model (WideResNet-28-10: 146 MB) plus manifests, per run
CACHED_STAGES = ("train", "embed", "proxy")  # the stages planned_bytes counts


@dataclass(frozen=True)
class Problem:
    """One thing that would stop a run: its parameter ``file``, the ``check`` and the message."""

    file: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: [{self.check}] {self.message}"


# ============================================================================ data
def _readable(path: Path) -> str | None:
    """None when ``path`` (file or folder) exists and its first bytes (first entry) can be read, else why not."""
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                if next(entries, None) is None:
                    return f"{str(path)!r} is an empty folder"
            return None
        with open(path, "rb") as fh:
            fh.read(1)
        return None
    except FileNotFoundError:
        return f"{str(path)!r} does not exist"
    except OSError as err:
        return f"{str(path)!r} cannot be read ({err.strerror})"


def _split_sources(name: str, root: Path, split: str) -> list[Path]:
    """The files and folders a split is read from: the dataset's ``sources`` plus, for Places-365,
    its image folder and the first image its file list names."""
    paths = list(REGISTRY[name].sources(root, split))
    if name == "places365":
        listing = root / ("places365_train_standard.txt" if split == "train" else "places365_val.txt")
        folder = root / ("data_256_standard" if split == "train" else "val_256")
        paths.append(folder)
        if listing.is_file():
            with open(listing) as fh:
                first = fh.readline().split()
            if first:
                paths.append(folder / first[0].lstrip("/"))
    return paths


def check_split(spec: dict, split: str) -> str | None:
    """None when the ``split`` of dataset ``spec`` ({"name", "root", ...}) can be read, else why not."""
    name = spec["name"]
    if name in ("digits",) or spec.get("download"):
        return None
    root = spec.get("root") or os.environ.get("SCORECAST_DATA_ROOT")
    if name == "fashion-mnist" and root is None:
        return None  # Debian's default path, checked by the loader
    if root is None:
        return f"{name} {split}: no data folder: set data.root in the experiment file or SCORECAST_DATA_ROOT"
    root = Path(root).expanduser()
    if not root.is_dir():
        return f"{name} {split}: data folder {str(root)!r} does not exist (data.root or SCORECAST_DATA_ROOT)"
    try:
        paths = _split_sources(name, root, split)
    except ScorecastError as err:
        return f"{name} {split}: {err}"
    for path in paths:
        why = _readable(path)
        if why is not None:
            return f"{name} {split}: {why}; put the dataset there (README, 'Data') or fix data.root"
    return None


# ============================================================================ sizes
def _npy_header(archive: Path, member: str) -> tuple:
    """Shape of ``member`` (e.g. ``label.npy``) in an .npz, read from its header only."""
    with zipfile.ZipFile(archive) as zf, zf.open(member) as fh:
        major, _ = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, _ = read(fh)
    return shape


def split_shape(spec: dict, split: str = "train") -> tuple[int, int, int]:
    """(samples n, bytes per image, classes C) of a readable split, from the files without loading
    images (npz and ImageNet-64 array headers, the Places-365 file list) or the published size
    (CIFAR); ``limit`` applies to the train split."""
    name = spec["name"]
    root = Path(spec.get("root") or os.environ.get("SCORECAST_DATA_ROOT", ".")).expanduser()
    side = {"imagenet64": 64, "places365": spec.get("resize", 80)}.get(name, 32)
    per_image = 3 * side * side
    if name == "npz":
        shape = _npy_header(root / f"{split}.npz", "image.npy")
        n, per_image = shape[0], int(np.prod(shape[1:]))
    elif name == "imagenet64":
        n = sum(_npy_header(f, "labels.npy")[0] for f in REGISTRY[name].sources(root, split))
    elif name == "places365":
        with open(root / ("places365_train_standard.txt" if split == "train" else "places365_val.txt"), "rb") as fh:
            n = sum(1 for line in fh if line.strip())
    else:
        n = REGISTRY[name].train_size if split == "train" else TEST_SIZE.get(name, 0)
    if split == "train" and spec.get("limit"):
        n = min(n, spec["limit"])
    return int(n or 0), per_image, int(spec.get("num_classes") or CLASSES.get(name, 10))


def planned_bytes(params: dict, experiment: Experiment, seen: set) -> int:
    """Upper estimate of the bytes the cache gains from one notebook's runs, skipping runs already in
    ``seen`` (a run shared by several notebooks is counted once; ``seen`` is updated).

    Per scoring run on m samples (the full set and a ``fraction`` subset per seed and scoring
    recipe): E records x m x 9 bytes (true-label probability, loss, correct) plus, for a scorer that reads it
    (TDDS, EL2N), the kept softmax S x m x C x 4 (S = the trajectory length), per recorded view (2 when adversarial), plus a model;
    per subset run an embedding n x 2048 x 4 and, with a proxy method, K x n x C x 4 predictions."""
    n, _, classes = split_shape(experiment.data)
    views = 2 if experiment.paradigm == "adversarial" else 1
    records = experiment.scoring.epochs
    kept = min(experiment.record.trajectory_length, records)
    proxy_views = max([registry.build_method(m).proxy_views() for m in params.get("methods", [])], default=0)
    data_key = json.dumps(experiment.data, sort_keys=True)
    total = 0
    for scorer in params.get("scorers", [{}]):
        recipe = json.dumps({**asdict(experiment.scoring), **scorer.get("scoring", {})}, sort_keys=True)
        softmax = kept if "name" in scorer and registry.build_scorer(scorer).reads_softmax else 0
        for seed in params.get("seeds", [0]):
            for fraction in [None, *params.get("fractions", [])]:
                run = (data_key, recipe, seed, fraction, softmax)
                if run in seen:
                    continue
                seen.add(run)
                m = n if fraction is None else round(fraction * n)
                total += views * (records * m * 9 + softmax * m * classes * 4) + MODEL_BYTES
                if fraction is not None:
                    total += n * EMBED_DIM * 4 + proxy_views * n * classes * 4
    return total


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (whose disk a new folder would be on)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def _gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"


# ============================================================================ checks
def _dinov2_problem(encoder: dict) -> str | None:
    """None when torch.hub holds DINOv2's code and the checkpoint of ``encoder``'s arch, else what is missing."""
    arch = encoder.get("arch", "dinov2_vitg14")
    hub = Path(torch.hub.get_dir())
    missing = [str(p) for p in (hub / "facebookresearch_dinov2_main", hub / "checkpoints" / f"{arch}_pretrain.pth") if not p.exists()]
    if missing:
        return (f"DINOv2 {arch} is not in the torch.hub cache (missing {missing}); on a machine with internet run "
                f"python -c \"import torch; torch.hub.load('facebookresearch/dinov2', '{arch}')\" with the same TORCH_HOME")
    return None


def _needs_gpu(path: Path, device: str) -> bool:
    return device.startswith("cuda") or (device == "auto" and path.resolve().parent.name == "paper")


def check_file(path: Path, seen: set, plan: dict) -> list[Problem]:
    """Problems of one parameter file; adds its planned cache bytes to ``plan[cache folder]`` and its
    pending ``data.mmap`` conversions to ``plan[mmap folder]``."""
    where = str(path)
    try:
        params = load_params(path)
        experiment = validate_experiment(params["experiment"]) if isinstance(params.get("experiment"), str) else validate_experiment(params.get("experiment") or {}, where)
    except ScorecastError as err:
        return [Problem(where, "parameters", str(err))]
    problems = []
    source = f"experiment {params['experiment']}" if isinstance(params.get("experiment"), str) else "its experiment"
    splits = [(experiment.data, "train"), (experiment.test_data or experiment.data, "test")]
    for spec, split in splits:
        why = check_split(spec, split)
        if why is not None:
            problems.append(Problem(where, "data", f"{source}: {why}"))
    encoders = [params.get("encoder"), *(m.get("encoder") for m in params.get("methods", []))]
    for encoder in encoders:
        if encoder and encoder.get("name") == "dinov2" and not encoder.get("stand_in"):
            why = _dinov2_problem(encoder)
            if why is not None:
                problems.append(Problem(where, "weights", why))
    device = experiment.device
    if _needs_gpu(path, device):
        if not torch.cuda.is_available():
            problems.append(Problem(where, "gpu", f"experiment.device is {device!r} on the paper tier but torch sees no CUDA GPU "
                                                  "(torch.cuda.is_available() is False): run on a GPU node, or set device: cpu to run on the CPU on purpose"))
        elif device.startswith("cuda:") and int(device.split(":")[1]) >= torch.cuda.device_count():
            problems.append(Problem(where, "gpu", f"experiment.device is {device!r} but torch sees {torch.cuda.device_count()} GPU(s)"))
    if problems:
        return problems  # sizes need readable data
    cache = resolve(params["cache_dir"]) if params.get("cache_dir") else cache_root()
    plan[cache] = plan.get(cache, 0) + planned_bytes(params, experiment, seen)
    for spec, split in splits:
        if spec.get("mmap") is not None:
            target = resolve(spec["mmap"]) / f"{spec['name']}-{split}"
            if not (target / "source.json").is_file() and target not in seen:
                seen.add(target)
                n, per_image, _ = split_shape(spec, split)
                plan[target] = n * (per_image + 8)
    return problems


def check_disk(plan: dict) -> list[Problem]:
    """One problem per disk whose free space is below what the ``plan`` ({folder: bytes}) writes
    there. Bytes already in a cache's train/embed/proxy folders are counted as already written
    (a batch that re-runs a cached plan needs no new space)."""
    disks: dict[int, list] = {}
    for folder, need in plan.items():
        base = _existing(folder)
        entry = disks.setdefault(os.stat(base).st_dev, [base, 0, []])
        cached = sum(_folder_bytes(folder / stage) for stage in CACHED_STAGES) if folder.name != "" and folder.is_dir() else 0
        entry[1] += max(0, need - cached)
        entry[2].append(str(folder))
    problems = []
    for base, need, folders in disks.values():
        free = shutil.disk_usage(base).free
        if need > free:
            problems.append(Problem(", ".join(folders), "disk", f"the batch plans about {_gib(need)} of records and data conversions "
                                    f"there (scorecast.preflight.planned_bytes) but the disk holding {str(base)!r} has {_gib(free)} free; "
                                    "free space or point cache_dir / SCORECAST_CACHE / data.mmap at a larger disk"))
    return problems


def parameter_files(targets: list[str]) -> list[Path]:
    """Parameter files with a notebook (``notebooks/<name before -->.ipynb``) among ``targets``
    (files, or folders whose ``*.yaml`` are taken; experiment files are read through them)."""
    files = []
    for target in targets:
        path = resolve(target)
        if path.is_dir():
            files += [p for p in sorted(path.glob("*.yaml")) if resolve(f"notebooks/{p.stem.split('--')[0]}.ipynb").is_file()]
        elif path.is_file():
            files.append(path)
        else:
            raise ScorecastError(f"preflight: no parameter file or folder {str(path)!r}")
    return files


def preflight(targets: list[str]) -> list[Problem]:
    """Every problem of the parameter files in ``targets`` (see the module docstring); empty = ready."""
    seen, plan, problems = set(), {}, []
    for path in parameter_files(targets):
        problems += check_file(path, seen, plan)
    return problems + check_disk(plan)


def main(argv: list[str]) -> int:
    """``python -m scorecast.preflight <params folder or file> ...``: print the problems; 1 when any."""
    if not argv:
        print("usage: python -m scorecast.preflight <params folder or parameter file> ...", file=sys.stderr)
        return 2
    try:
        problems = preflight(argv)
    except ScorecastError as err:
        print(err, file=sys.stderr)
        return 2
    for problem in problems:
        print(f"preflight: {problem}", file=sys.stderr)
    if problems:
        print(f"preflight: {len(problems)} problem(s); fix them before running the batch", file=sys.stderr)
        return 1
    print(f"preflight: ready ({', '.join(argv)}): data readable, weights present, GPU present where needed, disk space for the planned records")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

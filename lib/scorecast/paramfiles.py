"""Parameter files on disk: reading them, and each tier's values layered over one base file per notebook.

A notebook's values that are the same in every tier are written once, in ``params/base/<notebook>.yaml``;
``params/<tier>/<notebook>.yaml`` holds only that tier's own values (its experiment, its seeds, what it
cut for time), and a variant ``params/<tier>/<notebook>--<variant>.yaml`` (a second setting of the same
artefact) only what differs from its tier's file. :func:`layers` names the files behind a parameter
file and :func:`read_params` merges them: a later layer's key replaces the earlier value whole. A file
outside such a ``params/`` folder (no ``base/`` beside its tier folder) is read alone. Validation of the
merged values: :func:`scorecast.params.load_params`. This module reads YAML and JSON only (no torch), so
the report reads parameter files through it cheaply.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import yaml

from .paths import resolve
from .validation import ScorecastError

BASE = "base"  # params/base/<notebook>.yaml: the values every tier of a notebook shares; in an experiment file, the file it varies


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} (YAML would keep only its last value); "
                                                            "write each key once", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> dict:
    """The mapping in the YAML file ``path``; unreadable, invalid, empty or comment-only files and
    duplicate keys are refused with the file's name."""
    try:
        values = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ScorecastError(f"cannot read parameter file {str(path)!r}: {err}") from err
    if values is None:
        raise ScorecastError(f"{path}: holds no parameters (the file is empty or only comments), so the run would silently use every "
                             "default; write the keys to set, or leave the file out")
    if not isinstance(values, dict):
        raise ScorecastError(f"{path}: a parameter file must be a mapping")
    return values


def layers(path: str | Path) -> list[Path]:
    """The files whose values make up the parameter file ``path``, most general first:
    ``[params/base/<notebook>.yaml, path]`` for ``params/<tier>/<notebook>.yaml``, and
    ``[params/base/<notebook>.yaml, params/<tier>/<notebook>.yaml, path]`` for a variant
    ``params/<tier>/<notebook>--<variant>.yaml``; ``[path]`` for a base file, or a file outside a
    ``params/`` folder that has a ``base/`` folder. A missing lower layer is an error naming it."""
    path = Path(path)
    params_dir = path.parent.parent
    if params_dir.name != "params" or not (params_dir / BASE).is_dir() or path.parent.name == BASE:
        return [path]
    notebook = path.stem.split("--")[0]
    below = [params_dir / BASE / f"{notebook}.yaml"] + ([path.parent / f"{notebook}.yaml"] if path.stem != notebook else [])
    for layer in below:
        if not layer.is_file():
            raise ScorecastError(f"{path}: its values are layered over {layer}, which does not exist; write it "
                                 f"({BASE}/{notebook}.yaml holds the values every tier shares, <tier>/{notebook}.yaml a tier's own)")
    return [*below, path]


def source(path: str | Path) -> str:
    """How messages name the parameter file ``path``: the file, then the layers under it."""
    files = layers(path)
    return str(files[-1]) + (f" (over {', '.join(str(f) for f in reversed(files[:-1]))})" if len(files) > 1 else "")


def read_layers(path: str | Path) -> list[tuple[Path, dict]]:
    """(layer, its values) for each of the :func:`layers` of the parameter file ``path``, each read by :func:`read_yaml`."""
    return [(layer, read_yaml(layer)) for layer in layers(path)]


def read_params(path: str | Path, read: list[tuple[Path, dict]] | None = None) -> dict:
    """The values of the parameter file ``path`` merged over its :func:`layers` (a later layer's key
    replaces the earlier value whole), not validated; ``read``: its :func:`read_layers`, when already read."""
    merged: dict = {}
    for _, values in read if read is not None else read_layers(path):
        merged.update(values)
    return merged


def read_experiment(path: str | Path, _varied: tuple[Path, ...] = ()) -> dict:
    """The values of the experiment file ``path`` (relative to :func:`scorecast.paths.project_root`), not
    validated (:func:`scorecast.params.validate_experiment` does). A file may vary another: ``base:
    <experiment file>`` names it, and the file's own keys replace the base's values whole, so
    ``base: params/cpu/experiment.yaml`` with ``data: {name: imagefolder, root: null, limit: 20000}``
    is the tier's regime at 20,000 images, its recipe written once."""
    path = resolve(path)
    values = read_yaml(path)
    base = values.pop(BASE, None)
    if base is None:
        return values
    if not isinstance(base, str):
        raise ScorecastError(f"{path}: {BASE} must name the experiment file this one varies (e.g. params/cpu/experiment.yaml), got {base!r}")
    if resolve(base) in (*_varied, path):
        raise ScorecastError(f"{path}: {BASE}: {base} leads back to this file; an experiment file cannot vary itself")
    return {**read_experiment(base, (*_varied, path)), **values}


def data_text(settings: dict, experiment: dict) -> str:
    """The training data of a run with parameter-file ``settings`` and raw ``experiment`` file, as the pages write
    it: "10,000 imagefolder images", "digits data" (no limit), or the scale study's sizes, which replace data.limit:
    "imagefolder samples of 5,000, 10,000, all images" (None: every image)."""
    name, limit = experiment["data"]["name"], experiment["data"].get("limit")
    if "sizes" in settings:
        return f"{name} samples of " + ", ".join("all" if n is None else f"{n:,}" for n in settings["sizes"]) + " images"
    return f"{limit:,} {name} images" if limit else f"{name} data"


def parameters_cell_keys(notebook: str | Path) -> list[str]:
    """The names the ``parameters``-tagged cell of ``notebook`` assigns (what papermill may set), in the cell's order."""
    path = Path(notebook)
    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError) as err:
        raise ScorecastError(f"cannot read notebook {str(path)!r}: {err}") from err
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise ScorecastError(f"{path} has no cell tagged 'parameters'")
    names = []
    for node in ast.parse("".join(tagged[0]["source"])).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names

"""Every notebook has a parameter file in every tier whose keys equal its `parameters` cell and
pass the library's validation (``output_dir`` aside: the batch, not the file, chooses where results
go); the cell itself holds literals only. Variant files
(``<notebook>--<variant>.yaml``, a second setting of the same artefact) obey the same rule."""

import ast
import json
from pathlib import Path

import pytest

from scorecast.params import load_params, validate_notebook_params
from scorecast.report import write_index

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIERS = ("smoke", "cpu", "paper")
VARIANTS = sorted(p for tier in TIERS for p in (ROOT / "params" / tier).glob("*--*.yaml"))


def _parameters_cell(notebook: Path) -> dict:
    cells = json.loads(notebook.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{notebook.name} needs exactly one cell tagged 'parameters'"
    values = {}
    for node in ast.parse("".join(tagged[0]["source"])).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, f"{notebook.name}: parameters cell holds assignments only"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # raises unless a literal
    return values


def _file_keys(notebook: Path) -> set[str]:
    """The keys a parameter file of ``notebook`` must hold: its parameters cell's, less ``output_dir``."""
    return set(_parameters_cell(notebook)) - {"output_dir"}


def test_every_notebook_is_found_and_no_parameter_file_is_orphaned():
    assert len(NOTEBOOKS) == 17  # 16 paper/appendix/beyond artefacts + quickstart
    names = {p.stem for p in NOTEBOOKS}
    for tier in TIERS:
        files = {p.stem.split("--")[0] for p in (ROOT / "params" / tier).glob("*.yaml") if not p.stem.startswith("experiment")}
        assert files == names, f"params/{tier}: {sorted(files ^ names)}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_valid(notebook):
    validate_notebook_params(_parameters_cell(notebook), f"{notebook.name} parameters cell")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_tier_file_matches_parameters_cell(notebook, tier):
    path = ROOT / "params" / tier / f"{notebook.stem}.yaml"
    assert path.exists(), f"{notebook.stem} has no parameter file for the {tier} tier"
    params = load_params(path)
    assert set(params) == _file_keys(notebook), f"{path.name}: keys differ from the notebook's parameters cell"


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_variant_file_matches_its_notebook(path):
    notebook = ROOT / "notebooks" / f"{path.stem.split('--')[0]}.ipynb"
    params = load_params(path)
    assert set(params) == _file_keys(notebook), f"{path.name}: keys differ from {notebook.name}'s parameters cell"
    validate_notebook_params(params, str(path))


def test_index_lists_variant_runs_with_their_figures(tmp_path):
    notebook = {"cells": [{"cell_type": "markdown", "source": "# Table 4: adversarial training", "metadata": {}}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    for folder in (tmp_path, tmp_path / "tab4_adversarial--2m"):
        folder.mkdir(exist_ok=True)
        (folder / "tab4_adversarial.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "tab4_adversarial--2m" / "tab4_adversarial.png").write_bytes(b"png")
    page = write_index(tmp_path).read_text()
    assert page.count("<section") == 1  # the variant run is listed inside its artefact's section
    assert '<img src="tab4_adversarial--2m/tab4_adversarial.png"' in page
    assert '<a href="tab4_adversarial--2m/tab4_adversarial.ipynb">' in page  # no HTML rendered here: the notebook
    assert '<h3 id="tab4_adversarial"><a href="tab4_adversarial.ipynb">' in page

"""Every notebook has a parameter file in every tier whose keys equal its `parameters` cell and
pass the library's validation; the cell itself holds literals only."""

import ast
import json
from pathlib import Path

import pytest

from scorecast.params import load_params, validate_notebook_params

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIERS = ("smoke", "cpu", "paper")


def _parameters_cell(notebook: Path) -> dict:
    cells = json.loads(notebook.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{notebook.name} needs exactly one cell tagged 'parameters'"
    values = {}
    for node in ast.parse("".join(tagged[0]["source"])).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, f"{notebook.name}: parameters cell holds assignments only"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # raises unless a literal
    return values


def test_every_notebook_is_found_and_no_parameter_file_is_orphaned():
    assert len(NOTEBOOKS) == 16  # 15 paper/beyond artefacts + quickstart
    names = {p.stem for p in NOTEBOOKS}
    for tier in TIERS:
        files = {p.stem for p in (ROOT / "params" / tier).glob("*.yaml") if not p.stem.startswith("experiment")}
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
    assert set(params) == set(_parameters_cell(notebook)), f"{path.name}: keys differ from the notebook's parameters cell"

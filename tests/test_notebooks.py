"""Every notebook has a parameter file in every tier whose keys equal its `parameters` cell and
pass the library's validation (``output_dir`` aside: the batch, not the file, chooses where results
go); the cell itself holds literals only. Variant files
(``<notebook>--<variant>.yaml``, a second setting of the same artefact) obey the same rule. The files are
layered (scorecast.paramfiles): ``params/base/<notebook>.yaml`` holds exactly the values all tiers share,
each tier file only its own, each variant only what differs from its tier file. Every notebook sets
itself up with one call, ``notebook.setup("<notebook>", globals())``."""

import ast
import json
import re
from pathlib import Path

import matplotlib
import pytest

from scorecast import notebook as notebook_setup
from scorecast.paramfiles import layers, read_params, read_yaml
from scorecast.params import PARAMETERS_CELL, load_params, main, validate_notebook_params
from scorecast.report import write_index
from scorecast.validation import ScorecastError

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
    names = {p.stem for p in NOTEBOOKS}
    assert names, "no notebooks found"
    for tier in (*TIERS, "base"):
        files = {p.stem.split("--")[0] for p in (ROOT / "params" / tier).glob("*.yaml") if not p.stem.startswith("experiment")}
        assert files == names, f"params/{tier}: {sorted(files ^ names)}"
    assert not list((ROOT / "params" / "base").glob("*--*.yaml")), "variants belong to a tier"


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


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_base_holds_exactly_the_values_every_tier_shares(notebook):
    """Each tier's parameters are its base's plus its own file's; the base holds every value the three
    tiers share and the tier files none of them (no value is written twice)."""
    base_path = ROOT / "params" / "base" / f"{notebook.stem}.yaml"
    base = read_yaml(base_path)
    own = {tier: read_yaml(ROOT / "params" / tier / f"{notebook.stem}.yaml") for tier in TIERS}
    for tier in TIERS:
        path = ROOT / "params" / tier / f"{notebook.stem}.yaml"
        assert layers(path) == [base_path, path]
        assert read_params(path) == {**base, **own[tier]}
        repeated = [key for key in own[tier] if key in base and own[tier][key] == base[key]]
        assert not repeated, f"{path}: {repeated} repeat the values of {base_path.name}; remove them"
    merged = {tier: read_params(ROOT / "params" / tier / f"{notebook.stem}.yaml") for tier in TIERS}
    shared = [key for key in merged["smoke"] if key not in base and all(merged[t].get(key) == merged["smoke"][key] for t in TIERS)]
    assert not shared, f"{notebook.stem}: {shared} are the same in every tier; move them to {base_path}"


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_variant_holds_only_what_differs_from_its_tier_file(path):
    notebook = path.stem.split("--")[0]
    tier_file = path.parent / f"{notebook}.yaml"
    assert layers(path) == [ROOT / "params" / "base" / f"{notebook}.yaml", tier_file, path]
    tier, own = read_params(tier_file), read_yaml(path)
    assert read_params(path) == {**tier, **own}
    repeated = [key for key in own if key in tier and own[key] == tier[key]]
    assert not repeated, f"{path}: {repeated} repeat the values of {tier_file.name}; remove them"


def test_layers_are_refused_like_single_files(tmp_path):
    """A layered file names the file that holds a bad key or value, and a missing base is an error."""
    params = tmp_path / "params"
    for folder in ("base", "smoke"):
        (params / folder).mkdir(parents=True)
    (params / "smoke" / "quickstart.yaml").write_text("seeds: [0]\n")
    with pytest.raises(ScorecastError, match="layered over .*base/quickstart.yaml, which does not exist"):
        read_params(params / "smoke" / "quickstart.yaml")
    (params / "base" / "quickstart.yaml").write_text("rates: [0.5]\nrates: [0.6]\n")
    with pytest.raises(ScorecastError, match="base/quickstart.yaml.*duplicate key 'rates'"):
        read_params(params / "smoke" / "quickstart.yaml")
    (params / "base" / "quickstart.yaml").write_text("rates: [1.5]\n")
    with pytest.raises(ScorecastError, match=r"smoke/quickstart.yaml \(over .*base/quickstart.yaml\): rates entry 1.5"):
        load_params(params / "smoke" / "quickstart.yaml")
    (params / "base" / "quickstart.yaml").write_text("ratez: [0.5]\n")
    assert main(["check", str(ROOT / "notebooks" / "quickstart.ipynb"), str(params / "smoke" / "quickstart.yaml")]) == 1
    (params / "smoke" / "quickstart--v.yaml").write_text("seeds: [1]\n")
    (params / "base" / "quickstart.yaml").write_text("rates: [0.5]\n")
    assert read_params(params / "smoke" / "quickstart--v.yaml") == {"rates": [0.5], "seeds": [1]}


def test_merged_command_prints_what_papermill_gets(capsys):
    """``python -m scorecast.params merged`` (run_all.sh hands its output to papermill -y): the merged values
    in the order of the parameters cell, as YAML that reads back to the loaded parameters."""
    import yaml

    path = ROOT / "params" / "cpu" / "fig2_accuracy_vs_pruning_rate--tiny.yaml"
    notebook = ROOT / "notebooks" / "fig2_accuracy_vs_pruning_rate.ipynb"
    assert main(["merged", str(notebook), str(path)]) == 0
    values = yaml.safe_load(capsys.readouterr().out)
    assert values == load_params(path)
    assert list(values) == [key for key in _parameters_cell(notebook) if key in values]


def test_check_writes_what_papermill_gets(tmp_path, capsys):
    """``python -m scorecast.params check --write DIR`` (run_all.sh hands DIR/<file>.yaml to papermill -f):
    one file per valid pair, named after the parameter file, holding what ``merged`` prints; none for a bad pair."""
    import yaml

    notebook = str(ROOT / "notebooks" / "fig2_accuracy_vs_pruning_rate.ipynb")
    variant, tier = (ROOT / "params" / "cpu" / f"fig2_accuracy_vs_pruning_rate{v}.yaml" for v in ("--tiny", ""))
    assert main(["check", "--write", str(tmp_path), notebook, str(variant), notebook, str(tier)]) == 0
    for path in (variant, tier):
        assert main(["merged", notebook, str(path)]) == 0
        assert (tmp_path / f"{path.stem}.yaml").read_text() == capsys.readouterr().out
        assert yaml.safe_load((tmp_path / f"{path.stem}.yaml").read_text()) == load_params(path)
    bad = tmp_path / "bad" / "quickstart.yaml"
    bad.parent.mkdir()
    bad.write_text("seeds: -1\n")
    assert main(["check", "--write", str(tmp_path / "out"), str(ROOT / "notebooks" / "quickstart.ipynb"), str(bad)]) == 1
    assert not (tmp_path / "out").exists()
    assert main(["check", "--write"]) == 2


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


def _code_cells(notebook: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_sets_itself_up_with_one_call(notebook):
    """The cell after the parameters cell calls ``notebook.setup("<its name>", globals())``; no cell repeats
    what setup does (validate the parameters, set the style, show the tiers table); every code cell parses."""
    cells = _code_cells(notebook)
    for source in cells:
        ast.parse(source)
    tagged = next(i for i, c in enumerate(json.loads(notebook.read_text())["cells"]) if "parameters" in c["metadata"].get("tags", []))
    setup_cell = "".join(json.loads(notebook.read_text())["cells"][tagged + 1]["source"])
    assert f'notebook.setup("{notebook.stem}", globals())' in setup_cell
    assert "from scorecast import" in setup_cell and re.search(r"from scorecast import [\w, ]*\bnotebook\b", setup_cell)
    for repeated in ("validate_notebook_params", "tiers_table", "set_style"):
        assert not any(repeated in source for source in cells), f"{notebook.name} calls {repeated} itself"


def test_setup_checks_the_parameters_sets_the_style_and_shows_the_tiers(capsys):
    notebook = ROOT / "notebooks" / "fig2_accuracy_vs_pruning_rate.ipynb"
    namespace = {**_parameters_cell(notebook), "np": object()}
    matplotlib.rcParams["legend.frameon"] = True
    notebook_setup.setup(notebook.stem, namespace)
    assert matplotlib.rcParams["legend.frameon"] is False  # scorecast.plots.set_style ran
    shown = capsys.readouterr().out  # outside a kernel, IPython's display prints the table
    assert shown.strip() == str(notebook_setup.tiers_table(notebook.stem))
    with pytest.raises(ScorecastError, match=f"{PARAMETERS_CELL}: rates entry 1.5"):
        notebook_setup.setup(notebook.stem, {**namespace, "rates": [1.5]})
    with pytest.raises(ScorecastError, match=r"\['seeds'\] not defined: run the cell tagged 'parameters'"):
        notebook_setup.setup(notebook.stem, {k: v for k, v in namespace.items() if k != "seeds"})


def test_tiers_table_is_generated_from_the_parameter_files():
    table = notebook_setup.tiers_table("fig2_accuracy_vs_pruning_rate")
    lines = table.splitlines()
    assert lines[2].startswith("| smoke | digits data | tiny_cnn | 20 / 10 |")
    assert any(line.startswith("| cpu | 10,000 imagefolder images | cnn_bn | 15 / 15 |") for line in lines)
    assert any(line.startswith("| paper |") and line.endswith("| 0.2 | 0, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95 | 3 |") for line in lines)
    assert table._repr_markdown_() == str(table)

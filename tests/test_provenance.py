"""Stored smoke outputs must come from the current code (the staleness check)."""

import json
import shutil
from pathlib import Path

from scorecast.provenance import PROVENANCE, code_hash

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "results" / "smoke"


def _runs(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.ipynb")} | {p.parent.name for p in folder.glob("*--*/*.ipynb")}


def test_results_smoke_were_produced_by_the_current_code():
    entries = json.loads((SMOKE / PROVENANCE).read_text())
    assert set(entries) == _runs(SMOKE), "results/smoke/provenance.json must list exactly the stored runs"
    current = code_hash("smoke", ROOT)
    stale = sorted(run for run, entry in entries.items() if entry["code_hash"] != current)
    assert not stale, (f"results/smoke is stale for {stale}: produced by code {sorted({entries[r]['code_hash'] for r in stale})}, "
                       f"current code is {current}. Regenerate: ./run_all.sh && git add results/smoke")


def test_stored_runs_record_their_machine():
    for run, entry in json.loads((SMOKE / PROVENANCE).read_text()).items():
        assert entry["threads"] == 1, f"{run}: the smoke tier pins one torch thread, provenance says {entry['threads']}"
        assert entry["cpu"] and entry["cpu_capability"], run


def test_code_hash_moves_with_the_library_and_the_parameters_but_not_with_outputs(tmp_path):
    for part in ("lib", "params", "notebooks"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    before = code_hash("smoke", tmp_path)
    notebook = tmp_path / "notebooks" / "quickstart.ipynb"
    nb = json.loads(notebook.read_text())
    nb["cells"][-1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "anything"}] if nb["cells"][-1]["cell_type"] == "code" else []
    notebook.write_text(json.dumps(nb))
    assert code_hash("smoke", tmp_path) == before, "outputs stored in a notebook must not change the hash"
    (tmp_path / "params" / "smoke" / "quickstart.yaml").write_text((tmp_path / "params" / "smoke" / "quickstart.yaml").read_text() + "\n# edit\n")
    after_params = code_hash("smoke", tmp_path)
    assert after_params != before
    (tmp_path / "params" / "base" / "quickstart.yaml").write_text((tmp_path / "params" / "base" / "quickstart.yaml").read_text() + "\n# edit\n")
    assert code_hash("smoke", tmp_path) != after_params, "a tier's values include its base files"
    after_params = code_hash("smoke", tmp_path)
    scores = tmp_path / "lib" / "scorecast" / "scores.py"
    scores.write_text(scores.read_text() + "\n")
    assert code_hash("smoke", tmp_path) != after_params
    assert code_hash("cpu", tmp_path) != code_hash("smoke", tmp_path)

"""Stored smoke outputs must come from the current code (the staleness check) and one thread count;
each tier's thread count holds for hand runs as for run_all.sh."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from scorecast import provenance
from scorecast.provenance import PROVENANCE, code_hash
from scorecast.validation import ScorecastError

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


# ---------------------------------------------------------------- one thread count per tier, hand runs included


def test_tier_of_an_experiment_path():
    assert provenance.tier_of("params/cpu/experiment.yaml") == "cpu"
    assert provenance.tier_of(ROOT / "params" / "smoke" / "experiment_adversarial.yaml") == "smoke"
    assert provenance.tier_of("elsewhere/cpu/experiment.yaml") is None
    assert provenance.tier_of({"data": {"name": "digits"}}) is None


def test_tier_threads_and_their_override(monkeypatch):
    monkeypatch.delenv("SCORECAST_THREADS", raising=False)
    assert [provenance.tier_threads(t) for t in ("smoke", "cpu", "paper")] == [1, 2, 8]
    monkeypatch.setenv("SCORECAST_THREADS", "3")
    assert provenance.tier_threads("cpu") == 3
    monkeypatch.setenv("SCORECAST_THREADS", "0")
    with pytest.raises(ScorecastError, match="SCORECAST_THREADS='0' must be a positive whole number"):
        provenance.tier_threads("cpu")


def test_a_hand_run_uses_its_tiers_thread_count_and_a_batch_run_keeps_its_own(monkeypatch):
    monkeypatch.delenv("SCORECAST_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # a Jupyter kernel: all cores unless told
        provenance.use_tier_threads("params/cpu/experiment.yaml")
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # run_all.sh exports the tier's count itself
        provenance.use_tier_threads("params/paper/experiment.yaml")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_stored_thread_count_is_one_count(tmp_path):
    assert provenance.stored_threads(SMOKE) == 1
    (tmp_path / PROVENANCE).write_text(json.dumps({"a": {"threads": 1}, "b": {"threads": 2}}))
    with pytest.raises(ScorecastError, match=r"mixes thread counts \[1, 2\]"):
        provenance.stored_threads(tmp_path)
    with pytest.raises(ScorecastError, match="missing or damaged"):
        provenance.stored_threads(tmp_path / "nowhere")

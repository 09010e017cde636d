"""A notebook run by hand, the way a user steps through it: from notebooks/, with its own defaults and no
SCORECAST_QUIET. It must show progress bars and must not write anything under results/."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_hand_run_shows_progress_and_leaves_results_alone(tmp_path):
    # the smoke experiment with fewer epochs, so that the test trains for seconds
    experiment = yaml.safe_load((ROOT / "params" / "smoke" / "experiment.yaml").read_text())
    experiment["scoring"]["epochs"], experiment["retrain"]["epochs"] = 4, 2
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(experiment))
    results_before = _snapshot(ROOT / "results")
    scratch = ROOT / "scratch" / "smoke"
    scratch_before = set(_snapshot(scratch)) if scratch.exists() else set()
    env = {k: v for k, v in os.environ.items() if k not in ("SCORECAST_QUIET", "SCORECAST_ROOT")}
    env.update(SCORECAST_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    executed = tmp_path / "quickstart.ipynb"
    run = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "quickstart.ipynb"), str(executed),
                          "-p", "experiment", str(tmp_path / "experiment.yaml"), "-y", "scorers: [{name: du, window: 2}]",
                          "--cwd", str(ROOT / "notebooks"), "--log-level", "WARNING"],
                         env=env, capture_output=True, text=True, timeout=900)
    created = sorted(set(_snapshot(scratch)) - scratch_before) if scratch.exists() else []
    try:
        assert run.returncode == 0, run.stderr[-2000:]
        assert _snapshot(ROOT / "results") == results_before, "a hand run changed results/"
        assert "quickstart.png" in created, "a hand run writes its figure to scratch/smoke/"
        outputs = [o for cell in json.loads(executed.read_text())["cells"] for o in cell.get("outputs", [])]
        bars = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert bars, "no progress bar (tqdm widget) in the executed notebook"
        assert not [o for o in outputs if o.get("name") == "stderr"], "the hand run printed to stderr"
    finally:
        for name in created:
            (scratch / name).unlink()

"""A notebook run by hand, the way a user steps through it: from notebooks/, with its own defaults and no
SCORECAST_QUIET. It must show progress bars and must not write anything under results/; the README's
command for running another tier's file by hand must leave ``git status`` as it was."""

import json
import os
import re
import shutil
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


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_readmes_tier_switch_command_leaves_git_status_clean(tmp_path):
    """The README's hand-run command for another tier, run as written from the project root, with the
    smoke tier's file instead of the cpu tier's (no CIFAR-10 in the tests), one seed and a shorter
    experiment so it trains for seconds, and its output folder renamed to a scratch folder of its own."""
    line = next(l for l in (ROOT / "README.md").read_text().splitlines() if "papermill notebooks/" in l and "-f params/cpu/" in l)
    command = re.search(r"`(mkdir -p scratch && \.venv/bin/papermill .*?)`", line).group(1)
    folder = f"scratch/readme-test-{os.getpid()}"
    command = (command.replace(".venv/bin/papermill", f"{sys.executable} -m papermill").replace("params/cpu/", "params/smoke/")
               .replace("-p output_dir scratch/cpu", f"-p output_dir {folder}").replace("scratch/fig2.ipynb", f"{folder}-fig2.ipynb"))
    assert f"-p output_dir {folder}" in command and "params/smoke/" in command, command
    experiment = yaml.safe_load((ROOT / "params" / "smoke" / "experiment.yaml").read_text())
    experiment["scoring"]["epochs"], experiment["retrain"]["epochs"] = 4, 2
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(experiment))
    extra = f" -p experiment {tmp_path / 'experiment.yaml'} -y 'scorers: [{{name: du, window: 2}}]' -y 'seeds: [0]' --log-level WARNING"
    before = _git_status()
    env = {**os.environ, "SCORECAST_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    try:
        run = subprocess.run(["bash", "-c", command + extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stderr[-2000:]
        assert (ROOT / folder / "fig2_accuracy_vs_pruning_rate.png").is_file(), "the figure goes to the folder -p output_dir names"
        assert _git_status() == before, "the README's hand-run command changed files git tracks"
    finally:
        shutil.rmtree(ROOT / folder, ignore_errors=True)
        (ROOT / f"{folder}-fig2.ipynb").unlink(missing_ok=True)

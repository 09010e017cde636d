"""The README's hand-run commands never write to results/ (issue 22).

Only ``run_all.sh`` passes ``-p output_dir results/<tier>``; no parameter file sets ``output_dir``, so a
hand run writes to the notebook's default ``scratch/smoke`` or wherever ``-p output_dir`` points. The test
takes every ``.venv/bin/papermill ...`` command shown in README.md, points it at the smoke tier's parameter
file (the cpu tier needs CIFAR-10), and runs it literally in a temporary copy of the checkout whose
``results/`` is committed to git: once as written and once without ``-p output_dir`` (what "paste the
file's values into the parameters cell" amounts to). ``git status --porcelain -- results/`` must stay empty.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"`((?:mkdir -p \S+ && )?\.venv/bin/papermill [^`]+)`")
OUTPUT_DIR = re.compile(r"\s-p output_dir (\S+)")


def readme_commands() -> list[str]:
    commands = COMMAND.findall((ROOT / "README.md").read_text())
    assert commands, "README.md shows no `.venv/bin/papermill ...` hand-run command: this test parses it from there"
    return commands


def on_smoke(command: str) -> str:
    """``command`` with its parameter file taken from params/smoke/ and ``.venv/bin/`` this interpreter's."""
    return re.sub(r"\bparams/\w+/", "params/smoke/", command).replace(".venv/bin/", f"{Path(sys.executable).parent}/")


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args], cwd=folder,
                          check=True, capture_output=True, text=True).stdout


def test_no_parameter_file_sets_output_dir():
    offenders = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "params").rglob("*.yaml")
                       if "output_dir" in (yaml.safe_load(p.read_text()) or {}))
    assert not offenders, f"output_dir comes from run_all.sh, never from a parameter file; remove it from {offenders}"


def test_readme_hand_runs_leave_results_clean(tmp_path):
    checkout = tmp_path / "checkout"
    for folder in ("notebooks", "params", "results/smoke"):
        shutil.copytree(ROOT / folder, checkout / folder)
    _git(checkout, "init", "-q")
    _git(checkout, "add", "results")
    _git(checkout, "commit", "-q", "-m", "stored results")
    env = {**os.environ, "SCORECAST_CACHE": str(tmp_path / "cache"), "SCORECAST_QUIET": "1", "SCORECAST_THREADS": "1"}
    env.pop("SCORECAST_ROOT", None)
    for command in readme_commands():
        written = on_smoke(command)
        assert OUTPUT_DIR.search(written), f"expected '-p output_dir <folder>' in the README's {command!r}"
        for line in (written, OUTPUT_DIR.sub("", written)):
            run = subprocess.run(["nice", "-n", "19", "bash", "-c", line], cwd=checkout, env=env, capture_output=True, text=True)
            assert run.returncode == 0, f"{line} failed:\n{run.stderr[-3000:]}"
            assert _git(checkout, "status", "--porcelain", "--", "results/") == "", \
                f"{line} changed results/:\n{_git(checkout, 'status', '--porcelain', '--', 'results/')}"
        notebook = re.search(r"notebooks/(\w+)\.ipynb", written).group(1)
        folder = OUTPUT_DIR.search(written).group(1)
        assert (checkout / folder / f"{notebook}.csv").exists(), f"the run as written should put its table in {folder}/"
        assert (checkout / "scratch" / "smoke" / f"{notebook}.csv").exists(), \
            "without -p output_dir the run should put its table in the parameters cell's default scratch/smoke/"

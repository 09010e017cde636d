"""The two install routes (pip via pyproject.toml, conda via environment.yml) install the same pins."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pip_section() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs exactly one pip section"
    return pip[0]["pip"]


def test_environment_yml_pins_equal_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pip = _pip_section()
    assert "-e ." in pip, "environment.yml must install the scorecast package itself"
    assert sorted(p for p in pip if p != "-e .") == sorted(pyproject)


def test_every_dependency_is_pinned_exactly():
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        assert "==" in requirement, f"{requirement} must be pinned with == (an unpinned torch is a multi-GB CUDA download)"
    assert "torch==2.14.1" in _pip_section() and "torchvision==0.29.1" in _pip_section()


def test_lib_is_not_gitignored():
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert not any(line.strip() in ("lib/", "lib", "/lib/") for line in ignore)

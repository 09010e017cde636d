"""The modules of lib/scorecast import each other without a cycle (counting every import statement,
also those inside functions and under TYPE_CHECKING), and every module imports on its own."""

import ast
import importlib
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
MODULES = {".".join(p.relative_to(LIB).with_suffix("").parts).removesuffix(".__init__"): p for p in sorted((LIB / "scorecast").rglob("*.py"))}


def _imports(module: str, path: Path) -> set[str]:
    """The scorecast modules that ``module`` imports (a package counts as its __init__)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # "from . import registry" imports a module
    return {name for name in found if name in MODULES and name != module}


def test_import_graph_has_no_cycle():
    graph = {module: _imports(module, path) for module, path in MODULES.items()}
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycle = trail[trail.index(target):] + [target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_the_graph_sees_every_kind_of_import():
    """The graph builder finds relative, absolute and function-level imports (else the test above could not fail)."""
    assert "scorecast.specs" in _imports("scorecast.registry", MODULES["scorecast.registry"])
    assert "scorecast.scorers" in _imports("scorecast.registry", MODULES["scorecast.registry"])  # from . import scorers
    assert "scorecast.unsupervised" in _imports("scorecast.specs", MODULES["scorecast.specs"])  # inside check_encoder
    assert "scorecast.validation" in _imports("scorecast.extrapolate.common", MODULES["scorecast.extrapolate.common"])  # from ..validation


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module):
    importlib.import_module(module)


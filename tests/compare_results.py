"""Compare the tables (CSVs) of a fresh smoke run with the stored ones, quantity by quantity.

``./run_all.sh --tests`` re-executes every notebook of ``results/smoke`` into a scratch folder
and then runs ``python tests/compare_results.py check results/smoke <fresh>``: every number
must lie within the tolerance of its quantity (``tests/tolerances.yaml``, derived from measured
CPU and thread-count variation), text and integer columns must be equal, and both runs must
have the same rows. A per-seed table (a ``seed`` column) is compared by its means over seeds, within
the larger of the tolerance and ``SEED_ERRORS`` standard errors of a difference of two such means (from the
stored seeds' spread). nbval checks the rest (every cell runs; printed text keeps its shape).

``python tests/compare_results.py prepare results/smoke <fresh>`` copies the stored notebooks
into ``<fresh>/notebooks`` with their injected ``output_dir`` pointed at ``<fresh>/out``, so
re-executing them never writes into ``results/``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

TOLERANCES = Path(__file__).with_name("tolerances.yaml")
SEED = "seed"  # the column of a per-seed table (quickstart, fig5, app_scale), compared by its means over seeds
# Two runs on different CPUs are two draws of the training noise (float differences grow during training): a
# mean over n seeds whose stored seeds spread by s may move by about s * sqrt(2 / n) (the standard error of a
# difference of two means); a per-seed table allows SEED_ERRORS of those, or its quantity's tolerance if larger.
SEED_ERRORS = 3.0


def load_tolerances(path: Path = TOLERANCES) -> dict[str, dict]:
    """{quantity: {"columns": [regex, ...], "tolerance": float | None}}."""
    return yaml.safe_load(path.read_text())["quantities"]


def quantity_of(column: str, tolerances: dict[str, dict]) -> str | None:
    """The quantity a column reports (``top1_std`` -> accuracy), or None (compared exactly)."""
    base = re.sub(r"_(mean|std)$", "", column)
    for quantity, spec in tolerances.items():
        if any(re.fullmatch(pattern, base) for pattern in spec["columns"]):
            return quantity
    return None


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """Every CSV under ``folder`` (variant subfolders included), keyed by its relative path."""
    return {p.relative_to(folder).as_posix(): pd.read_csv(p) for p in sorted(folder.rglob("*.csv"))}


def _key_columns(table: pd.DataFrame, tolerances: dict) -> list[str]:
    return [c for c in table.columns if quantity_of(c, tolerances) is None]


def compare_table(name: str, stored: pd.DataFrame, fresh: pd.DataFrame, tolerances: dict) -> list[str]:
    """Problems found comparing one table (empty when it matches)."""
    if list(stored.columns) != list(fresh.columns):
        return [f"{name}: columns differ: stored {list(stored.columns)}, fresh {list(fresh.columns)}"]
    if len(stored) != len(fresh):
        return [f"{name}: {len(stored)} stored rows, {len(fresh)} fresh rows"]
    keys = _key_columns(stored, tolerances)
    problems = []
    for column in keys:
        a, b = stored[column], fresh[column]
        same = (a == b) | (a.isna() & b.isna())
        if pd.api.types.is_float_dtype(a) and pd.api.types.is_float_dtype(b):
            same = same | np.isclose(a, b, rtol=0, atol=1e-9)
        for row in np.flatnonzero(~same.to_numpy()):
            problems.append(f"{name} row {row} column {column!r}: stored {a.iloc[row]!r}, fresh {b.iloc[row]!r} (compared exactly)")
    if problems:
        return problems
    seed_error = None  # per row and column: the standard error of a difference of two seed means
    if SEED in keys:  # a per-seed table: compare what its notebook reports, the means over seeds
        (stored, seed_error), (fresh, _), keys = _over_seeds(stored, keys), _over_seeds(fresh, keys), [k for k in keys if k != SEED]
        name = f"{name} (means over seeds)"
    for column in stored.columns:
        quantity = quantity_of(column, tolerances)
        if quantity is None or tolerances[quantity]["tolerance"] is None:
            continue
        spec = tolerances[quantity]
        tolerance = float(spec.get("std_tolerance", spec["tolerance"]) if column.endswith("_std") else spec["tolerance"])
        allowed = np.full(len(stored), tolerance)
        if seed_error is not None:
            allowed = np.fmax(allowed, SEED_ERRORS * seed_error[column].to_numpy(float))
        a, b = stored[column].to_numpy(float), fresh[column].to_numpy(float)
        for row in range(len(a)):
            if np.isnan(a[row]) != np.isnan(b[row]) or abs(a[row] - b[row]) > allowed[row]:
                label = ", ".join(f"{k}={stored[k].iloc[row]}" for k in keys if not pd.api.types.is_float_dtype(stored[k]))
                bound = (f"the {quantity} tolerance {tolerance}" if allowed[row] == tolerance
                         else f"{SEED_ERRORS:g} standard errors of the stored seeds' spread ({allowed[row]:.4f})")
                problems.append(f"{name} [{label}] {column}: stored {a[row]:.4f}, fresh {b[row]:.4f}, differ by more than {bound}")
    return problems


def _over_seeds(table: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A per-seed ``table`` summarised over its ``seed`` column, one row per setting (the other ``keys``) in a
    fixed order: the means, and s * sqrt(2 / n) per number (s: the standard deviation over its n seeds; NaN for
    one seed), the standard error of a difference between two such means. One seed of a smoke-scale run is a
    chaotic draw (measured: another CPU's run of the quickstart moved one seed's GNN-pruned top-1 by 0.25, where
    a global pruning kept a digit class in one run and nearly emptied it in the other), while the notebook's
    claims rest on the means."""
    grouped = table.drop(columns=SEED).groupby([k for k in keys if k != SEED], dropna=False, sort=True)
    spread = grouped.std(ddof=1) * np.sqrt(2.0 / grouped.size().to_numpy()[:, None])
    return grouped.mean().reset_index(), spread.reset_index()


def compare_folders(stored_dir: Path, fresh_dir: Path, tolerances: dict | None = None) -> list[str]:
    """Problems across every stored table; a stored table the fresh run did not write is one."""
    tolerances = tolerances or load_tolerances()
    stored, fresh = read_tables(stored_dir), read_tables(fresh_dir)
    problems = [f"{name}: the fresh run wrote no such table" for name in stored if name not in fresh]
    for name in stored:
        if name in fresh:
            problems += compare_table(name, stored[name], fresh[name], tolerances)
    return problems


def prepare(stored_dir: Path, fresh_dir: Path) -> list[Path]:
    """Copy the stored executed notebooks to ``<fresh>/notebooks/<run>.ipynb`` with the injected
    ``output_dir`` replaced by ``<fresh>/out[/<variant run>]``; returns the copies."""
    copies = []
    for notebook in sorted([*stored_dir.glob("*.ipynb"), *stored_dir.glob("*--*/*.ipynb")]):
        run = notebook.parent.name if notebook.parent != stored_dir else notebook.stem
        out = fresh_dir / "out" if notebook.parent == stored_dir else fresh_dir / "out" / run
        nb = json.loads(notebook.read_text())
        injected = [c for c in nb["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
        if len(injected) != 1:
            raise SystemExit(f"{notebook}: expected one papermill 'injected-parameters' cell; regenerate it with ./run_all.sh")
        source = "".join(injected[0]["source"])
        source, count = re.subn(r'^output_dir = .*$', f"output_dir = {str(out)!r}", source, flags=re.M)
        if count != 1:
            raise SystemExit(f"{notebook}: its injected parameters set no output_dir")
        injected[0]["source"] = source
        target = fresh_dir / "notebooks" / f"{run}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(nb, indent=1))
        copies.append(target)
    return copies


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("check", "prepare"):
        print(__doc__, file=sys.stderr)
        return 2
    stored_dir, fresh_dir = Path(argv[1]), Path(argv[2])
    if argv[0] == "prepare":
        if fresh_dir.exists():
            shutil.rmtree(fresh_dir / "notebooks", ignore_errors=True)
        for copy in prepare(stored_dir, fresh_dir):
            print(copy)
        return 0
    problems = compare_folders(stored_dir, fresh_dir / "out" if (fresh_dir / "out").is_dir() else fresh_dir)
    for problem in problems:
        print(problem)
    n_tables = len(read_tables(stored_dir))
    print(f"compared {n_tables} stored tables with tolerances from {TOLERANCES.name}: "
          + ("all within tolerance" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

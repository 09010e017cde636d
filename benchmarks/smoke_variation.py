"""How much do the smoke tier's reported numbers move across CPUs and thread counts?

Executes every smoke notebook with papermill under one condition (environment variables such as
``ATEN_CPU_CAPABILITY=default`` or ``OMP_NUM_THREADS=2``, which change float reduction order the
way another CPU does) into ``<out>/<condition>/`` with a cache of its own, then compares every CSV
with a reference folder (default ``results/smoke``) column by column and prints the largest
absolute difference per quantity. ``tests/tolerances.yaml`` is derived from these numbers.

    python benchmarks/smoke_variation.py run  --out /tmp/var --name default-1t ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1
    python benchmarks/smoke_variation.py diff /tmp/var/default-1t [/tmp/var/native-2t ...] [--reference results/smoke]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(out: Path, name: str, assignments: list[str]) -> None:
    env = {**os.environ, "SCORECAST_QUIET": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}
    env.update(a.split("=", 1) for a in assignments)
    folder = out / name
    env["SCORECAST_CACHE"] = str(folder / "cache")
    env["PYTHONPATH"] = str(ROOT / "lib")  # this checkout's library, whatever the venv has installed
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "params" / "smoke").glob("*.yaml")):
        notebook = ROOT / "notebooks" / f"{path.stem.split('--')[0]}.ipynb"
        if not notebook.exists():
            continue
        start = time.time()
        values = subprocess.run([sys.executable, "-m", "scorecast.params", "merged", str(notebook), str(path)], env=env,
                                capture_output=True, text=True, check=True).stdout  # the file over its layers, as run_all.sh passes it
        subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(folder / f"{path.stem}.ipynb"), "-y", values,
                        "-p", "output_dir", str(folder), "--cwd", str(ROOT), "--log-level", "WARNING"], env=env, check=True)
        print(f"{name}: {path.stem} in {time.time() - start:.0f} s", flush=True)


def diff(folders: list[Path], reference: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from compare_results import load_tolerances, quantity_of, read_tables

    tolerances = load_tolerances()
    stored = read_tables(reference)
    worst: dict[str, float] = {}
    for folder in folders:
        for name, table in read_tables(folder).items():
            if name not in stored:
                continue
            ref = stored[name]
            for column in table.columns:
                if column in ref.columns and table[column].dtype.kind == "f" and len(table) == len(ref):
                    quantity = quantity_of(column, tolerances) or f"(exact) {column}"
                    delta = float((table[column] - ref[column]).abs().max())
                    if delta == delta:  # not NaN
                        worst[quantity] = max(worst.get(quantity, 0.0), delta)
                        print(f"{folder.name:14s} {name:45s} {column:28s} {delta:.4f}")
    print("\nlargest absolute difference per quantity:")
    for quantity, delta in sorted(worst.items()):
        print(f"  {quantity:24s} {delta:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run")
    one.add_argument("--out", type=Path, required=True)
    one.add_argument("--name", required=True)
    one.add_argument("env", nargs="*", help="VAR=value assignments")
    many = sub.add_parser("diff")
    many.add_argument("folders", nargs="+", type=Path)
    many.add_argument("--reference", type=Path, default=ROOT / "results" / "smoke")
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.name, args.env)
    else:
        diff(args.folders, args.reference)

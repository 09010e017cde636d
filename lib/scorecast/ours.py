"""Our numbers, read from a tier's CSVs for the index and the summary (:mod:`scorecast.report`): an
:class:`Ours` spec names one number of a run's table, :func:`ours_values` reads a list of them, and
:func:`route_costs` sums a cost table (Fig. 3's) into each route's end-to-end seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Ours:
    """One number of ours: ``column`` (plus ``<column minus _mean>_std`` when present) of the CSV row whose
    columns equal ``where``; shown as ``label: value``. ``table``: the suffix of the CSV beyond the run's
    name (``"_accuracy"`` reads ``<run>_accuracy.csv``)."""

    label: str
    column: str
    where: dict = field(default_factory=dict)
    table: str = ""


def route_costs(csv: Path) -> dict[float, dict[str, float]]:
    """rate -> route -> seconds from a cost table (Fig. 3's CSV): the sum of the route's stages, each once (the
    recorded mean over seeds), with the final training, the same work for every route at a rate (the same
    number of kept images and epochs), counted as one measurement: the median over the routes at that rate.
    Empty when the table has no per-stage times."""
    if not csv.exists():
        return {}
    table = pd.read_csv(csv)
    if "final_training_seconds_mean" not in table:
        return {}
    stages = [c for c in table if c.endswith("_seconds_mean") and c not in ("final_training_seconds_mean", "total_seconds_mean")]
    final = table.groupby("rate")["final_training_seconds_mean"].median()
    table = table.assign(cost=table[stages].sum(axis=1) + table["rate"].map(final))
    return {float(rate): dict(zip(group["setting"], group["cost"])) for rate, group in table.groupby("rate")}


def ours_values(specs: tuple, csv: Path) -> list[str]:
    """The numbers ``specs`` (:class:`Ours`, or functions of the CSV path) read from a run's ``csv`` (and its
    ``<run><table>.csv`` siblings) as ``label: value`` (``mean ± std`` when the CSV has a std, or one row per seed);
    numbers whose table or row is absent in this tier are left out."""
    out = []
    for spec in specs:
        if not isinstance(spec, Ours):
            out += spec(csv)
            continue
        path = csv.with_name(csv.stem + spec.table + ".csv")
        if not path.exists():
            continue
        rows = pd.read_csv(path)
        for column, value in spec.where.items():
            if column not in rows:
                rows = rows.iloc[0:0]
                break
            rows = rows[rows[column].round(6) == value] if isinstance(value, float) else rows[rows[column].astype(str) == str(value)]
        if rows.empty or spec.column not in rows or rows[spec.column].isna().any():
            continue
        if len(rows) > 1:  # a per-seed table (quickstart, fig5): the mean ± std over its seeds
            if "seed" not in rows or not rows["seed"].is_unique:
                continue
            out.append(f"{spec.label}: {rows[spec.column].mean():.3f} ± {rows[spec.column].std():.3f}")
            continue
        value = f"{rows[spec.column].iloc[0]:.3f}"
        std = spec.column.removesuffix("_mean") + "_std"
        if spec.column.endswith("_mean") and std in rows and not pd.isna(rows[std].iloc[0]):
            value += f" ± {rows[std].iloc[0]:.3f}"
        out.append(f"{spec.label}: {value}")
    return out

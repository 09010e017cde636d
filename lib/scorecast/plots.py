"""Figure and table helpers shared by the notebooks: one seaborn style, one way to save and print.

- :func:`set_style`: the kit's seaborn theme (call once per notebook).
- :func:`save`: write a figure as ``<name>.png`` (dpi 120) and ``<name>.pdf`` and its numbers as
  ``<name>.csv`` into ``output_dir`` (relative paths resolve against the project root, see :mod:`scorecast.paths`), show
  the PNG in the notebook and return the paths.
- :func:`show_table`: print a table sorted and rounded; the printed text is what nbval compares,
  so it is deterministic (no timings, no paths).
- :func:`line_over_seeds`: mean +- std over seeds of ``y`` against ``x`` (a rate or fraction),
  one line per ``hue`` (a method).
- :func:`pareto_mask`: which (cost, accuracy) points lie on the Pareto front.
- :func:`with_setting`: a readable ``setting`` column (method, plus the subset fraction when it
  extrapolates).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .paths import resolve

DPI = 120


def set_style() -> None:
    """The kit's figure style: seaborn whitegrid, colour-blind palette, compact fonts."""
    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind", font_scale=0.9)
    matplotlib.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "savefig.bbox": "tight", "legend.frameon": False})


def resolve_dir(output_dir: str | Path) -> Path:
    """``output_dir`` as an absolute path (relative ones against :func:`scorecast.paths.project_root`), created."""
    path = resolve(output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save(fig, table: pd.DataFrame, name: str, output_dir: str | Path, display: bool = True) -> dict[str, Path]:
    """Write ``fig`` to ``<output_dir>/<name>.png`` (dpi 120) and ``.pdf`` and ``table`` to ``<name>.csv``.

    ``fig`` may be a matplotlib Figure or anything with a ``.figure`` (a seaborn FacetGrid).
    With ``display`` (default) the PNG is shown in the notebook (independent of the matplotlib
    backend) and the figure closed. Returns {"png", "pdf", "csv"} -> Path.
    """
    fig = getattr(fig, "figure", fig)
    folder = resolve_dir(output_dir)
    paths = {ext: folder / f"{name}.{ext}" for ext in ("png", "pdf", "csv")}
    fig.savefig(paths["png"], dpi=DPI, bbox_inches="tight")
    fig.savefig(paths["pdf"], bbox_inches="tight", metadata={"CreationDate": None})
    table.to_csv(paths["csv"], index=False)
    plt.close(fig)
    if display:
        try:
            from IPython import get_ipython
            from IPython.display import Image, display as show

            if get_ipython() is not None:
                show(Image(filename=str(paths["png"])))
        except ImportError:  # plain Python without IPython: files only
            pass
    return paths


def _rounded(table: pd.DataFrame, digits: int) -> pd.DataFrame:
    out = table.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].round(digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return out


def show_table(table: pd.DataFrame, digits: int = 3, sort: bool | list[str] = True) -> None:
    """Print ``table`` rounded to ``digits``, rows sorted (by all columns, or by the given list).

    Deterministic text for nbval: fixed float format, no index, NaN as ``-``. Do not pass
    timing columns to a cell whose output is compared.
    """
    out = _rounded(table, digits)
    if sort:
        by = list(out.columns) if sort is True else list(sort)
        out = out.sort_values(by, kind="stable", na_position="first", key=_sort_key)
    text = out.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.{digits}f}")
    print(text)


def _sort_key(column: pd.Series) -> pd.Series:
    """Sort mixed object columns (e.g. None beside strings) by their text."""
    if column.dtype == object:
        return column.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return column


def with_setting(table: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``table`` with a ``setting`` column: the method, plus ``@ <fraction>`` when it has a subset fraction."""
    out = table.copy()
    fractions = out["fraction"] if "fraction" in out else pd.Series(np.nan, index=out.index)
    out["setting"] = [m if pd.isna(f) else f"{m} @ {f:g}" for m, f in zip(out["method"], fractions)]
    return out


def line_over_seeds(table: pd.DataFrame, x: str, y: str, hue: str = "method", ax=None,
                    xlabel: str | None = None, ylabel: str | None = None):
    """Mean +- std over seeds of ``y`` against ``x`` (a rate or fraction), one line per ``hue``.

    ``table`` is tidy, one row per seed (e.g. ``Pipeline.accuracy_table``); the error bars are
    the std over the rows sharing x and hue, i.e. over seeds (none with a single seed).
    Draws on ``ax`` (a new figure when None) and returns the Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.8))
    sns.lineplot(data=table, x=x, y=y, hue=hue, errorbar="sd", err_style="bars", marker="o", ax=ax,
                 err_kws={"capsize": 3})
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.legend(title=None, fontsize="small")
    return ax


def pareto_mask(cost, value) -> np.ndarray:
    """(n,) bool: points no other point beats (cost <= and value >=, one of them strictly)."""
    cost, value = np.asarray(cost, dtype=float), np.asarray(value, dtype=float)
    better = (cost[None, :] <= cost[:, None]) & (value[None, :] >= value[:, None])
    strictly = (cost[None, :] < cost[:, None]) | (value[None, :] > value[:, None])
    return ~(better & strictly).any(axis=1)

"""Figure and table helpers shared by the notebooks: one style, one colour per method, one way to save and show.

- :func:`set_style`: the kit's seaborn theme (call once per notebook).
- :data:`METHOD_STYLES`, :func:`method_family`, :func:`palette`, :func:`markers`: one fixed colour and
  marker per method family (full, random, knn, gnn, mlp, proxy, ...) in every figure.
- :func:`save`: write a figure as ``<name>.png`` (dpi 120) and ``<name>.pdf`` and its numbers as
  ``<name>.csv`` into ``output_dir`` (relative paths resolve against the project root, see :mod:`scorecast.paths`), show
  the PNG in the notebook and return the paths.
- :func:`show_table`: show a table as HTML (a pandas Styler) with a short text twin, optionally pivoted
  the way the paper shows it, ``mean ± std`` in one cell and the best value per column in bold.
  The output is deterministic for the same numbers (no timings, paths or random ids).
- :func:`line_over_seeds`: mean +- std over seeds of ``y`` against ``x`` (a rate or fraction),
  one line per ``hue`` (a method).
- :func:`pareto_mask`: which (cost, accuracy) points lie on the Pareto front.
- :func:`with_setting`: a ``setting`` column (method, plus the subset fraction when it extrapolates),
  the key the CSV files keep.
- :func:`display_name`: the readable form of such a label for legends and tables
  (``gnn(k=10, labels=True) @ 0.2`` -> ``GNN (k=10, labels) @ 20 %``); CSV columns and cache keys keep the raw label.
- :func:`legend`: a legend inside its own panel (or under it when long), with display names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython import get_ipython
from IPython.display import Image, display

from . import registry
from .paths import resolve
from .validation import ScorecastError

DPI = 120

class _ByFamily(Mapping):
    """Live read-only view family -> ``attribute`` of every registered method type (:mod:`scorecast.registry`),
    so a method registered after this module was imported has its style and name here too."""

    def __init__(self, attribute: str, fallback: bool):
        self.attribute, self.fallback = attribute, fallback  # fallback: a method without the attribute maps to its name

    def _table(self) -> dict:
        values = {name: getattr(kind, self.attribute) for name, kind in registry.METHODS.items()}
        return {name: name if value is None else value for name, value in values.items() if value is not None or self.fallback}

    def __getitem__(self, family: str):
        return self._table()[family]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


#: family -> (colour, marker) from each method's ``style``. Colour-blind-safe hues that stay distinct side by
#: side; the references (full, random) are black and grey. A family is the method name before any "("
#: (see method_family).
METHOD_STYLES: Mapping[str, tuple[str, str]] = _ByFamily("style", fallback=False)
#: Colours for labels outside METHOD_STYLES (ceilings, metrics, score sources), in order of appearance.
_OTHER_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#5254a3")
_OTHER_MARKER = "p"
#: family -> its name in legends and tables (:func:`display_name`): each method's ``display``, else its name.
DISPLAY_NAMES: Mapping[str, str] = _ByFamily("display", fallback=True)


def method_family(label: str) -> str:
    """The family of a method label, raw or displayed: ``"gnn(k=10, labels=True) @ 0.2"`` and
    ``"GNN (k=10, labels) @ 20 %"`` -> ``"gnn"``, ``"true (full run)"`` -> ``"full"`` (the full run's scores);
    unknown names as given."""
    text = str(label).strip()
    for family, name in DISPLAY_NAMES.items():
        if text == name or text.startswith(name + " "):
            return family
    family = re.split(r"[(@ ]", text, maxsplit=1)[0]
    return "full" if family == "true" else family


def _option(option: str) -> str:
    key, _, value = option.strip().partition("=")
    if value == "True":
        return {"calibrate": "calibrated"}.get(key, key)
    if value == "False":
        return f"no {key}"
    if key == "augmentations":
        return f"{value} augm."
    return value if key == "kind" else f"{key}={value}"


def display_name(label) -> str:
    """Readable form of a method label from :func:`with_setting` or ``method_label`` for legends and tables:
    ``"gnn(k=10, labels=True) @ 0.2"`` -> ``"GNN (k=10, labels) @ 20 %"``, ``"knn(k=10, calibrate=True)"`` ->
    ``"kNN (k=10, calibrated)"``, ``"proxy(kind=aug_std, augmentations=8)"`` -> ``"proxy (aug_std, 8 augm.)"``;
    a `` class-balanced`` suffix is kept. Labels of no method family (a ceiling, a metric) come back unchanged,
    and so does an already displayed name."""
    text = str(label)
    match = re.fullmatch(r"([a-z_]+)(?:\((.*)\))?(?: @ ([0-9.]+))?( class-balanced)?", text)
    if match is None or match.group(1) not in DISPLAY_NAMES:
        return text
    family, options, fraction, balanced = match.groups()
    out = DISPLAY_NAMES[family]
    if options:
        out += f" ({', '.join(_option(o) for o in options.split(','))})"
    if fraction:
        out += f" @ {float(fraction) * 100:g} %"
    return out + (balanced or "")


def palette(labels) -> dict[str, str]:
    """label -> colour for seaborn's ``palette=``: the family's colour; a second, third ... label of the
    same family gets a lighter shade of it (e.g. GNN with and without labels, full scores pruned
    class-balanced: dark grey, apart from random's mid grey). Labels of no known family
    (a ceiling, a metric) take the next of a few other colours."""
    out, seen, others = {}, {}, 0
    for label in dict.fromkeys(labels):
        family = method_family(label)
        if family in METHOD_STYLES:
            colour = METHOD_STYLES[family][0]
        else:
            colour, others = _OTHER_COLOURS[others % len(_OTHER_COLOURS)], others + 1
            family = label
        n = seen[family] = seen.get(family, -1) + 1
        rgb = np.array(matplotlib.colors.to_rgb(colour))
        step = 0.3 if np.ptp(rgb) == 0 else 0.45  # black's shades step less, so its second stays clear of random's grey
        out[label] = matplotlib.colors.to_hex(rgb + (1 - rgb) * min(step * n, 0.8))
    return out


def markers(labels) -> dict[str, str]:
    """label -> marker for seaborn's ``markers=``: the family's marker."""
    return {label: METHOD_STYLES.get(method_family(label), (None, _OTHER_MARKER))[1] for label in dict.fromkeys(labels)}


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
        show(Image(filename=str(paths["png"])))
    return paths


def show(obj) -> bool:
    """Display ``obj`` (an IPython Image, Markdown, Styler, ...) in a notebook or IPython; returns
    whether it was shown, so plain Python can fall back to printing."""
    if get_ipython() is None:
        return False
    display(obj)
    return True


def _rounded(table: pd.DataFrame, digits: int) -> pd.DataFrame:
    out = table.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].round(digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return out


class Table:
    """A table for display: ``cells`` (str DataFrame, shown as is) with ``best`` (bool, same shape) in bold.

    In a notebook it renders as an HTML table (pandas Styler whose element ids derive from the
    content, so the same numbers give the same HTML); its text form (``repr``) marks best cells with ``*``.
    """

    def __init__(self, cells: pd.DataFrame, best: pd.DataFrame | None = None, caption: str | None = None):
        self.cells = cells
        self.best = best if best is not None else pd.DataFrame(False, index=cells.index, columns=cells.columns)
        self.caption = caption

    def __repr__(self) -> str:
        text = self.cells.where(~self.best, self.cells + " *").to_string(index=not isinstance(self.cells.index, pd.RangeIndex))
        return text if self.caption is None else f"{text}\n({self.caption})"

    def _repr_html_(self) -> str:
        uuid = hashlib.sha1(repr(self).encode()).hexdigest()[:10]
        styler = self.cells.style.set_uuid(uuid).apply(
            lambda _: np.where(self.best.to_numpy(), "font-weight: bold", ""), axis=None)
        if isinstance(self.cells.index, pd.RangeIndex):
            styler = styler.hide(axis="index")
        if self.caption:
            styler = styler.set_caption(self.caption)
        return styler.set_table_styles([{"selector": "td, th", "props": "padding: 2px 8px; text-align: right;"}]).to_html()


def _cell(mean: float, std: float | None, digits: int) -> str:
    if pd.isna(mean):
        return "-"
    text = f"{mean + 0.0:.{digits}f}"
    return text if std is None or pd.isna(std) else f"{text} ± {std + 0.0:.{digits}f}"


def _mean_std(table: pd.DataFrame, value: str) -> tuple[pd.Series, pd.Series | None]:
    """(mean, std) columns of ``value``: ``<value>_mean``/``<value>_std`` when present, else ``value`` and no std."""
    if f"{value}_mean" in table:
        return table[f"{value}_mean"], table.get(f"{value}_std")
    if value not in table:
        raise ScorecastError(f"show_table: no column {value!r} or {value + '_mean'!r}; columns are {list(table.columns)}")
    return table[value], None


#: Columns whose method labels :func:`show_table` shows by :func:`display_name`.
NAME_COLUMNS = ("setting", "method", "source")


def table_view(table: pd.DataFrame, digits: int = 3, sort: bool | list[str] = True, rows: list[str] | None = None,
               columns: str | None = None, values: str | None = None, best: str | None = "max",
               caption: str | None = None) -> Table:
    """The :class:`Table` that :func:`show_table` shows; see there."""
    table = table.assign(**{c: table[c].map(display_name) for c in NAME_COLUMNS if c in table and not pd.api.types.is_numeric_dtype(table[c])})
    if values is None:
        out = _rounded(table, digits)
        if sort:
            by = list(out.columns) if sort is True else list(sort)
            out = out.sort_values(by, kind="stable", na_position="first", key=_sort_key).reset_index(drop=True)
        cells = pd.DataFrame(index=out.index)
        for column in out.columns:
            if column.endswith("_std") and column[:-4] + "_mean" in out:
                continue
            if column.endswith("_mean"):
                name = column[:-5]
                cells[name] = [_cell(m, s, digits) for m, s in zip(out[column], out.get(name + "_std", [None] * len(out)))]
            elif pd.api.types.is_float_dtype(out[column]):
                cells[column] = [_cell(v, None, digits) for v in out[column]]
            else:
                cells[column] = out[column].map(lambda v: "-" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        return Table(cells, caption=caption)
    rows = list(rows or [])
    if columns is None or not rows:
        raise ScorecastError("show_table: a pivoted table needs rows=[...] and columns=... beside values=...")
    duplicated = table.duplicated(rows + [columns])
    if duplicated.any():
        raise ScorecastError(f"show_table: several rows share {dict(table.loc[duplicated.idxmax(), rows + [columns]])}; "
                             f"add the column that tells them apart to rows={rows}, or summarise over it first")
    mean, std = _mean_std(table, values)
    frame = table[rows + [columns]].assign(_mean=mean.to_numpy(), _std=std.to_numpy() if std is not None else np.nan)
    keys = [tuple(r) for r in frame[rows].astype(str).itertuples(index=False)]
    row_order = list(dict.fromkeys(keys))
    col_order = sorted(frame[columns].unique(), key=_sort_key_value)
    index = pd.MultiIndex.from_tuples(row_order, names=rows) if len(rows) > 1 else pd.Index([k[0] for k in row_order], name=rows[0])
    means = pd.DataFrame(np.nan, index=index, columns=pd.Index(col_order, name=columns))
    cells = pd.DataFrame("-", index=index, columns=means.columns)
    for key, col, m, s in zip(keys, frame[columns], frame["_mean"], frame["_std"]):
        at = key if len(rows) > 1 else key[0]
        means.loc[at, col] = m
        cells.loc[at, col] = _cell(m, s, digits)
    if best is None:
        marked = pd.DataFrame(False, index=index, columns=means.columns)
    else:
        rounded = means.round(digits)  # best within each group of the outer row levels (e.g. per scorer)
        groups = rounded.groupby(level=list(range(len(rows) - 1))) if len(rows) > 1 else rounded.groupby(lambda _: 0)
        top = groups.transform("max" if best == "max" else "min")
        marked = rounded.eq(top) & means.notna()
    cells.columns = [f"{columns}={c:g}" if isinstance(c, (int, float, np.number)) else str(c) for c in cells.columns]
    marked.columns = cells.columns
    where = f" and {', '.join(rows[:-1])}" if len(rows) > 1 else ""
    note = f"{values}: mean ± std over seeds" + (f"; bold: {'highest' if best == 'max' else 'lowest'} per column{where}" if best else "")
    return Table(cells, marked, caption or note)


def show_table(table: pd.DataFrame, digits: int = 3, sort: bool | list[str] = True, rows: list[str] | None = None,
               columns: str | None = None, values: str | None = None, best: str | None = "max",
               caption: str | None = None) -> None:
    """Show ``table`` rounded to ``digits``: an HTML table in a notebook, text elsewhere.

    Long form (``values`` None): one row per table row, sorted by all columns (or the given list),
    ``<x>_mean``/``<x>_std`` column pairs joined into one ``x`` column as ``mean ± std``, NaN as ``-``.
    Pivoted (``values`` given, e.g. ``rows=["setting"], columns="rate", values="top1"``): one row per
    distinct ``rows`` tuple (in order of appearance), one column per distinct ``columns`` value, each cell
    ``<values>_mean ± <values>_std`` (or ``values`` alone); with ``best`` "max"/"min" the best cell of
    every column is bold (``*`` in the text form). The CSV written by :func:`save` stays long and tidy.
    Method labels in the ``setting``, ``method`` and ``source`` columns are shown by :func:`display_name`.
    Deterministic output for nbval: do not pass timing columns to a cell whose output is compared.
    """
    view = table_view(table, digits, sort, rows, columns, values, best, caption)
    if not show(view):
        print(repr(view))


def _sort_key_value(value):
    return (0, value, "") if isinstance(value, (int, float, np.number)) else (1, 0, str(value))


def _sort_key(column: pd.Series) -> pd.Series:
    """Sort mixed object columns (e.g. None beside strings) by their text."""
    if column.dtype == object:
        return column.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return column


def with_setting(table: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``table`` with a ``setting`` column: the method, plus ``@ <fraction>`` when it has a
    subset fraction, plus `` class-balanced`` where the ``class_balanced`` column is true."""
    out = table.copy()
    fractions = out["fraction"] if "fraction" in out else pd.Series(np.nan, index=out.index)
    balanced = out["class_balanced"] if "class_balanced" in out else pd.Series(False, index=out.index)
    out["setting"] = [(m if pd.isna(f) else f"{m} @ {f:g}") + (" class-balanced" if b else "")
                      for m, f, b in zip(out["method"], fractions, balanced)]
    return out


def line_over_seeds(table: pd.DataFrame, x: str, y: str, hue: str = "method", ax=None,
                    xlabel: str | None = None, ylabel: str | None = None):
    """Mean +- std over seeds of ``y`` against ``x`` (a rate or fraction), one line per ``hue``.

    ``table`` is tidy, one row per seed (e.g. ``Pipeline.accuracy_table``); the error bars are
    the std over the rows sharing x and hue, i.e. over seeds (none with a single seed). Labels
    ending in "class-balanced" (:func:`with_setting`) are drawn dashed.
    Draws on ``ax`` (a new figure when None) and returns the Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.8))
    labels = table[hue].unique()
    dashes = {label: (4, 2) if str(label).endswith("class-balanced") else "" for label in labels}  # class-balanced pruning: dashed
    sns.lineplot(data=table, x=x, y=y, hue=hue, style=hue, palette=palette(labels), markers=markers(labels), dashes=dashes,
                 errorbar="sd", err_style="bars", ax=ax, err_kws={"capsize": 3})
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    legend(ax)
    return ax


#: A legend with more entries than this goes under its panel (inside, it would hide the lines).
LEGEND_INSIDE = 5


def legend(ax, handles=None, labels=None, **options):
    """Draw ``ax``'s legend inside its own panel, entries named by :func:`display_name`: in the axes
    (matplotlib's least crowded corner) up to :data:`LEGEND_INSIDE` entries, else centred under the axes in
    two columns, within the panel's width, so it never lies over a neighbouring panel. ``handles``/``labels``
    default to the axes' own; ``options`` go to ``Axes.legend``. Returns the Legend (None without entries)."""
    if handles is None or labels is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    names = [display_name(label) for label in labels]
    place = ({"loc": "best", "frameon": True, "framealpha": 0.85, "edgecolor": "none"} if len(names) <= LEGEND_INSIDE else
             {"loc": "upper center", "bbox_to_anchor": (0.5, -0.16), "ncol": 2})
    return ax.legend(handles, names, **{"title": None, "fontsize": "small", **place, **options})


def pareto_mask(cost, value) -> np.ndarray:
    """(n,) bool: points no other point beats (cost <= and value >=, one of them strictly)."""
    cost, value = np.asarray(cost, dtype=float), np.asarray(value, dtype=float)
    better = (cost[None, :] <= cost[:, None]) & (value[None, :] >= value[:, None])
    strictly = (cost[None, :] < cost[:, None]) | (value[None, :] > value[:, None])
    return ~(better & strictly).any(axis=1)

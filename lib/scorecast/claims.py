"""Claim checks: a paper's claim against our runs, as paired per-seed differences with their spread.

A notebook ends with one call, e.g. ``claims.check(acc, [("knn", "random"), ("knn", "full")], "top1",
experiment=experiment, pipe=pipe, claim="...")``: for every comparison, the difference candidate minus
reference of the same scorer, rate, fraction, training-set size and seed; their mean ± std over seeds; how
many seeds lie above and below zero; and a sentence that names the tier, the regime (data, model, recipe)
and the seeds. The smoke tier says "pipeline check, no evidence"; the cpu and paper tiers give the verdict
per comparison (the same on every seed, or seeds that disagree).

- :func:`paired_differences`: the per-seed differences (pure: tables in, table out).
- :func:`gap_verdict`: "beats" / "loses" / "ties" from the signs of per-seed gaps.
- :func:`summary`: mean, std and sign counts per comparison.
- :func:`regime`: the regime in one line (the tier of an experiment file: :func:`scorecast.provenance.tier_of`).
- :func:`check`: all of the above, rendered (Markdown in a notebook, text elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np
import pandas as pd

from .plots import display_name, method_family
from .provenance import tier_of
from .validation import ScorecastError

#: Columns that pair a candidate row with its reference row (those the table and the reference have).
KEYS = ("train_size", "scorer", "fraction", "rate", "seed")

#: Names of reference columns in the check's text.
COLUMN_NAMES = {"ceiling_spearman": "ceiling (subset run vs full, on the subset)", "ceiling_pearson": "ceiling (subset run vs full, Pearson)",
                "paper": "the paper's value"}


def gap_verdict(gaps, words: Sequence[str] = ("beats", "loses", "ties")) -> str:
    """``words[0]`` ("beats") when every per-seed gap is above zero, ``words[1]`` ("loses") when every one is
    below, ``words[2]`` ("ties") when the seeds disagree in sign (or there is one seed only)."""
    gaps = np.asarray(gaps, dtype=float)
    if len(gaps) > 1 and (gaps > 0).all():
        return words[0]
    if len(gaps) > 1 and (gaps < 0).all():
        return words[1]
    return words[2]


def _labels(table: pd.DataFrame, by: str, name: str) -> list[str]:
    """The labels of ``by`` that ``name`` picks: the label itself, else every label of that method family
    that is not pruned class-balanced (``"knn"`` picks ``"knn(k=10) @ 0.2"``)."""
    labels = list(dict.fromkeys(table[by]))
    if name in labels:
        return [name]
    return [label for label in labels if method_family(label) == name and not str(label).endswith("class-balanced")]


def _side(table: pd.DataFrame, side, by: str, value: str | None, role: str) -> tuple[str, object]:
    """Classify one side of a comparison: ("column", name), ("constant", (name, number)) or ("labels", [labels])."""
    if isinstance(side, Real) and not isinstance(side, bool):
        return "constant", (f"{side:g}", float(side))
    if isinstance(side, tuple) and len(side) == 2 and isinstance(side[1], Real):
        return "constant", (str(side[0]), float(side[1]))
    if isinstance(side, str) and side in table.columns and side != by:
        return "column", side
    if by not in table.columns:
        raise ScorecastError(f"claims: {role} {side!r} is neither a column of the table nor a label, and the table has no {by!r} column; "
                             f"columns are {list(table.columns)}")
    labels = _labels(table, by, side)
    if not labels:
        raise ScorecastError(f"claims: {role} {side!r} matches no {by!r} of the table ({sorted(map(str, set(table[by])))}) and no column; "
                             "name a label, a method family (e.g. 'knn'), a column (e.g. 'ceiling_spearman') or give a number")
    if value is None:
        raise ScorecastError(f"claims: {role} {side!r} is a label of {by!r}: pass value= (the column to compare, e.g. 'top1')")
    return "labels", labels


def paired_differences(table: pd.DataFrame, comparisons: Sequence[tuple], value: str | None = None, by: str = "setting") -> pd.DataFrame:
    """Per-seed differences candidate minus reference, from a tidy ``table`` with one row per seed.

    Each comparison is ``(candidate, reference)``. A side is a label of the ``by`` column (exactly, or a method
    family such as ``"knn"``: every label of that family not pruned class-balanced), whose ``value`` column counts;
    the name of a column (e.g. ``"ceiling_spearman"``: its value in the candidate's own row; a candidate column
    is compared per label of ``by`` when the table has that column); or, for the
    reference only, a number or ``(name, number)`` (e.g. ``("paper", 0.35)``). A label reference is paired with
    the candidate row of the same :data:`KEYS` (those the table has and both sides fill: random has no
    fraction). Rows at rate 0 (the unpruned model, alike for every setting) are left out.

    Returns one row per candidate row: ``comparison`` (readable: ``"kNN (k=10) @ 20 % − random"``), ``value``
    (what was compared), ``by`` (the candidate's label, or its column), the keys present, ``candidate``,
    ``reference`` and ``difference``.
    """
    if "seed" not in table.columns:
        raise ScorecastError(f"claims: the table needs a 'seed' column (one row per seed); columns are {list(table.columns)}. "
                             "For a single-seed table add it, e.g. table.assign(seed=seed)")
    if "rate" in table.columns:
        table = table[~(table["rate"] == 0)]
    parts = []
    for candidate, reference in comparisons:
        kind, cand = _side(table, candidate, by, value, "candidate")
        if kind == "constant":
            raise ScorecastError(f"claims: the candidate {candidate!r} is a number; only a reference may be (e.g. ('paper', 0.35))")
        rkind, ref = _side(table, reference, by, value, "reference")
        if rkind == "labels" and len(ref) != 1:
            raise ScorecastError(f"claims: reference {reference!r} matches {ref}; name one label exactly")
        if kind == "labels":
            cand_rows = [(label, table[table[by] == label], value) for label in cand]
        elif by in table.columns:  # a column: one comparison per label of `by` (e.g. per neighbourhood statistic)
            cand_rows = [(label, table[table[by] == label], cand) for label in dict.fromkeys(table[by])]
        else:
            cand_rows = [(cand, table, cand)]
        for label, rows, column in cand_rows:
            keys = [k for k in KEYS if k in rows.columns and k != by]
            if rkind == "labels":
                ref_rows = table[table[by] == ref[0]]
                keys = [k for k in keys if ref_rows[k].notna().any() and rows[k].notna().any()]
                merged = rows[keys + [column]].rename(columns={column: "candidate"}).merge(
                    ref_rows[keys + [value]].rename(columns={value: "reference"}), on=keys, how="inner")
                ref_name = display_name(ref[0])
            elif rkind == "column":
                merged = rows[keys].assign(candidate=rows[column].to_numpy(), reference=rows[ref].to_numpy())
                ref_name = COLUMN_NAMES.get(ref, ref)
            else:
                merged = rows[keys].assign(candidate=rows[column].to_numpy(), reference=ref[1])
                ref_name = f"{ref[0]} ({ref[1]:g})" if ref[0] != f"{ref[1]:g}" else ref[0]
            if merged.empty:
                raise ScorecastError(f"claims: {label!r} and {reference!r} share no rows on {keys}; compare settings run at the same rates and seeds")
            name = display_name(label) if kind == "labels" else (f"{display_name(label)}: {column}" if label != column else column)
            parts.append(merged.assign(comparison=f"{name} − {ref_name}", value=column if kind == "column" else value, **{by: label},
                                       difference=merged["candidate"] - merged["reference"]))
    out = pd.concat(parts, ignore_index=True)
    keys = [k for k in KEYS if k in out.columns]
    return out[["comparison", "value", by, *keys, "candidate", "reference", "difference"]]


def summary(differences: pd.DataFrame) -> pd.DataFrame:
    """Per comparison, value and group (the keys but the seed): n_seeds, mean and std (ddof 1; NaN for one
    seed) of the differences, how many seeds lie above and below zero, and :func:`gap_verdict` in neutral
    words ("higher", "lower", "mixed"; "one seed" when there is one)."""
    groups = ["comparison", "value", *[k for k in KEYS if k in differences.columns and k != "seed" and differences[k].notna().any()]]
    rows = []
    for key, part in differences.groupby(groups, sort=False, dropna=False):
        d = part["difference"].to_numpy(dtype=float)
        rows.append({**dict(zip(groups, key)), "n_seeds": len(d), "mean": d.mean(), "std": d.std(ddof=1) if len(d) > 1 else np.nan,
                     "above": int((d > 0).sum()), "below": int((d < 0).sum()),
                     "verdict": "one seed" if len(d) == 1 else gap_verdict(d, ("higher at every seed", "lower at every seed", "seeds disagree"))})
    return pd.DataFrame(rows)


def regime(pipe) -> str:
    """One line on what produced the numbers: data and training-set size, model (or encoder), paradigm and
    the scoring and retraining recipes, read from ``pipe`` (a Pipeline or UnsupervisedPipeline)."""
    exp = pipe.experiment
    data = f"{exp.data['name']}, {len(pipe.train_set):,} training images"
    if hasattr(pipe, "encoder"):  # unsupervised: frozen features and TURTLE, no network trained on labels
        return f"{data}; {pipe.encoder['name']} features, TURTLE ({pipe.turtle_options.get('epochs', 'default')} epochs), no labels"
    scoring = exp.scoring
    return (f"{data}; {exp.model}, {exp.paradigm}; scoring {scoring.optimizer} lr {scoring.lr:g}, {scoring.epochs} epochs "
            f"({exp.subset_length}-matched subset runs); retraining {exp.retrain.epochs} epochs")


class ClaimCheck:
    """The rendered check: a Markdown table of :func:`summary` and the tier's sentence (``_repr_markdown_``
    in a notebook, the same text elsewhere). ``differences`` and ``table`` hold the numbers."""

    def __init__(self, differences: pd.DataFrame, tier: str | None, regime_text: str, claim: str | None):
        self.differences, self.table, self.tier = differences, summary(differences), tier
        seeds = sorted(differences["seed"].unique().tolist())
        evidence = tier in ("cpu", "paper")
        columns = [c for c in ("scorer", "train_size", "fraction", "rate") if c in self.table.columns]
        head = ["comparison", "value", *columns, "difference (mean ± std over seeds)", "seeds above / below zero"]
        lines = ["| " + " | ".join(head + (["verdict"] if evidence else [])) + " |", "|" + "---|" * (len(head) + evidence)]
        for row in self.table.itertuples(index=False):
            spread = f"{row.mean:+.3f}" + ("" if np.isnan(row.std) else f" ± {row.std:.3f}")
            cells = [row.comparison, row.value, *[_cell(c, getattr(row, c)) for c in columns], spread, f"{row.above} / {row.below} of {row.n_seeds}"]
            lines.append("| " + " | ".join(map(str, cells + ([row.verdict] if evidence else []))) + " |")
        used = f"Regime: {regime_text}; seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}."
        if tier == "smoke":
            verdict = "**Smoke tier: pipeline check, no evidence** (tiny data and model: these differences test the code, not the paper)."
        elif evidence:
            verdict = f"**{tier} tier:** " + _verdict_sentence(self.table) + (" A single seed gives no verdict." if len(seeds) == 1 else "")
        else:
            verdict = "**Not a tier's experiment** (no params/<tier>/ file): compare with the tiers' results before reading it as evidence."
        self.text = "\n".join([f"**Claim check.** {claim}" if claim else "**Claim check.**", "",
                               "Paired per seed: candidate minus reference at the same scorer, rate, subset and seed.", "",
                               *lines, "", used, verdict])

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def _cell(column: str, value) -> str:
    if pd.isna(value):
        return "-"
    if column in ("fraction", "rate"):
        return f"{value * 100:g} %"
    return f"{value:,}" if column == "train_size" else str(value)


def _verdict_sentence(table: pd.DataFrame) -> str:
    """Per comparison and value: where every seed agrees in sign, and where they disagree."""
    parts = []
    scorers = "scorer" in table.columns and table["scorer"].nunique() > 1
    for (comparison, value), rows in table.groupby(["comparison", "value"], sort=False):
        where = {}
        for row in rows.itertuples(index=False):
            place = " / ".join(_cell(c, getattr(row, c)) for c in ("train_size", "fraction", "rate") if c in rows.columns and not pd.isna(getattr(row, c)))
            place = f"{place} ({row.scorer})" if scorers else place
            where.setdefault(row.verdict, []).append(place or "overall")
        parts.append(f"{comparison} ({value}): " + "; ".join(f"{verdict} at {', '.join(places)}" if places != ["overall"] else verdict
                                                             for verdict, places in where.items()))
    return ". ".join(parts) + "."


def check(table: pd.DataFrame, comparisons: Sequence[tuple], value: str | None = None, by: str = "setting", *,
          experiment, pipe, claim: str | None = None) -> ClaimCheck:
    """The claim check a notebook ends with: :func:`paired_differences` of ``table`` for ``comparisons``
    (see there), summarised over seeds, with the tier read from ``experiment`` (the notebook's parameter)
    and the regime from ``pipe``; ``claim`` states the paper's claim in a sentence. Display the result
    (the last expression of a cell) or read its ``table`` / ``differences``."""
    return ClaimCheck(paired_differences(table, comparisons, value, by), tier_of(experiment), regime(pipe), claim)

"""The reviewer's view of a tier: ``python -m scorecast.report results/<tier>`` writes ``index.html``.

- :data:`ARTEFACTS`: every notebook in the paper's order (quickstart, Fig. 2-5, Tables 1-4, appendix,
  beyond), with one sentence on what it shows, the paper's number where there is one, and which
  numbers of its CSV are "ours".
- :func:`verdicts`: the verdict per notebook, read from ``REPRODUCTION.md`` (the one place verdicts are
  written): the first sentence after each ``<!-- verdict: <notebook> ... -->`` marker.
- :func:`write_index`: ``<folder>/index.html``: per artefact the sentence, the paper's number, ours
  (read from the tier's CSV), the verdict, the figure at full width (click to enlarge) and links to the
  page, the CSV, the PDF and every extra file; variant runs (``<notebook>--<variant>/``, with an
  executed notebook or only its tables and figures) beside their artefact; files no artefact claims
  under "Other files"; the tier and which code, commit and machine executed its notebooks
  (provenance.json), and the date.
- :func:`tiers_table`: a notebook's settings in every tier, generated from ``params/<tier>/`` (one place
  instead of a hand-written table per notebook).
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from . import provenance
from .paths import project_root

TIERS = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class Ours:
    """One number of ours: ``column`` (plus ``<column minus _mean>_std`` when present) of the CSV row whose
    columns equal ``where``; shown as ``label: value``."""

    label: str
    column: str
    where: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Artefact:
    notebook: str
    group: str
    shows: str
    paper: str | None = None
    ours: tuple[Ours, ...] = ()
    extras: tuple[str, ...] = ()  # files beyond <notebook>.* and <notebook>_*.* (e.g. a benchmark's output)


def _knn(fraction: float) -> dict:
    return {"scorer": "du", "method": "knn(k=10)", "fraction": fraction}


ARTEFACTS: tuple[Artefact, ...] = (
    Artefact("quickstart", "Quickstart",
             "The whole method on one seed: full scores, a subset run, kNN and GNN extrapolation, then pruning half the data and retraining.",
             None, (Ours("kNN Spearman on unscored samples", "spearman", {"setting": "knn(k=10) @ 0.2"}),
                    Ours("top-1 after pruning 50 % by kNN scores", "top1", {"setting": "knn(k=10) @ 0.2"}),
                    Ours("random pruning", "top1", {"setting": "random"}))),
    Artefact("fig2_accuracy_vs_pruning_rate", "Figures",
             "Test accuracy after pruning by full, extrapolated (kNN, GNN) and random scores, at each pruning rate.",
             "curves only: extrapolated scores track full scores and beat random",
             (Ours("unpruned top-1", "top1_mean", {"setting": "full", "rate": 0.0}),
              Ours("top-1 at rate 0.7, full DU", "top1_mean", {"setting": "full", "rate": 0.7}),
              Ours("kNN DU", "top1_mean", {"setting": "knn(k=10) @ 0.2", "rate": 0.7}),
              Ours("random", "top1_mean", {"setting": "random", "rate": 0.7}))),
    Artefact("fig3_time_vs_accuracy", "Figures",
             "End-to-end cost against accuracy, with the Pareto front and training-free baselines (prototypes, ZCore).",
             "extrapolation is on the Pareto front; up to 4.9x faster at comparable accuracy",
             (Ours("total seconds at rate 0.5, full DU", "total_seconds_mean", {"setting": "full", "rate": 0.5}),
              Ours("kNN DU", "total_seconds_mean", {"setting": "knn(k=10) @ 0.2", "rate": 0.5}),
              Ours("top-1, full DU", "top1_mean", {"setting": "full", "rate": 0.5}),
              Ours("kNN DU", "top1_mean", {"setting": "knn(k=10) @ 0.2", "rate": 0.5})),
             extras=("bench_end_to_end.txt",)),
    Artefact("fig4_correlation_vs_accuracy", "Figures",
             "Extrapolation correlation against accuracy after pruning 50 %, per extrapolator and subset size.",
             "higher correlation gives higher accuracy",
             (Ours("kNN 10 %: Spearman", "spearman_mean", _knn(0.1)), Ours("top-1", "top1_mean", _knn(0.1)),
              Ours("kNN 20 %: Spearman", "spearman_mean", _knn(0.2)), Ours("top-1", "top1_mean", _knn(0.2)))),
    Artefact("fig5_score_distributions", "Figures",
             "True against extrapolated score distributions (oversmoothing) and the most misranked samples.",
             "extrapolation oversmooths the score distribution",
             (Ours("std of true DU", "std", {"source": "true (full run)"}), Ours("kNN-extrapolated", "std", {"source": "knn(k=10)"}))),
    Artefact("tab1_relative_accuracy_speedup", "Tables",
             "Accuracy relative to full-score pruning and the speed-up over full scoring, per rate.",
             "up to 4.9x speed-up at comparable accuracy",
             (Ours("kNN at rate 0.5: relative accuracy", "relative_accuracy_mean", {"setting": "knn(k=10) @ 0.2", "rate": 0.5}),),
             extras=("bench_end_to_end.txt",)),
    Artefact("tab2_extrapolation_correlation", "Tables",
             "Pearson and Spearman correlation of extrapolated with full-data scores, per scorer, extrapolator and subset, with ceilings.",
             "Spearman 0.35 (ImageNet-64, DU, 20 %), 0.26 (Places-365, TDDS, 20 %)",
             (Ours("DU kNN 20 % Spearman", "spearman_mean", _knn(0.2)),
              Ours("GNN", "spearman_mean", {"scorer": "du", "method": "gnn(k=10, labels=True)", "fraction": 0.2}))),
    Artefact("tab3_unsupervised", "Tables",
             "Correlations when the scores come from unsupervised (TURTLE) training, and pruning by cluster accuracy.",
             "kNN Spearman 0.66 at a 20 % subset (CIFAR-10, DINOv2 features)",
             (Ours("kNN 20 % Spearman", "spearman_mean", _knn(0.2)),)),
    Artefact("tab4_adversarial", "Tables",
             "Adversarial training: clean and PGD-20 robust accuracy after pruning by full, kNN and random scores.",
             "robust accuracy 63.56 % (extrapolated) vs 63.13 % (random)",
             (Ours("robust top-1 at rate 0.7, kNN DU", "robust_top1_mean", {"setting": "knn(k=10) @ 0.2", "rate": 0.7}),
              Ours("random", "robust_top1_mean", {"setting": "random", "rate": 0.7}))),
    Artefact("app_k_sweep", "Appendix",
             "Extrapolation quality over k, with k chosen by an oracle and by cross-validation on the subset.",
             "k chosen by the oracle (correlation with full-data scores)"),
    Artefact("app_gnn_label_ablation", "Appendix", "The GNN with and without one-hot label features.",
             "label features help the GNN",
             (Ours("with labels, 20 %", "spearman_mean", {"method": "gnn(k=10, labels=True)", "fraction": 0.2}),
              Ours("without", "spearman_mean", {"method": "gnn(k=10, labels=False)", "fraction": 0.2}))),
    Artefact("app_extrapolator_baselines", "Appendix",
             "kNN and GNN against simpler extrapolators: an MLP regressor, score sampling, subset scores plus random.",
             None, (Ours("MLP 20 % Spearman", "spearman_mean", {"method": "mlp(labels=True)", "fraction": 0.2}),
                    Ours("kNN", "spearman_mean", _knn(0.2)))),
    Artefact("app_neighbourhood_statistics", "Appendix",
             "True DU against simple neighbourhood statistics of each sample.",
             "Spearman -0.30 (same-label neighbours), +0.29 (distance to the nearest other label)",
             (Ours("same-label neighbours", "spearman_mean", {"statistic": "same-label among 10 nearest"}),
              Ours("distance to other label", "spearman_mean", {"statistic": "distance to nearest other label"}))),
    Artefact("app_subset_size", "Appendix", "Extrapolation quality as the scored subset grows.",
             "larger subsets extrapolate better",
             (Ours("kNN 10 % Spearman", "spearman_mean", _knn(0.1)), Ours("kNN 20 %", "spearman_mean", _knn(0.2)))),
    Artefact("app_scale", "Appendix",
             "The scale study: unpruned accuracy, extrapolation fidelity and pruning against random at several training-set sizes.",
             "no scale study; Spearman 0.35 (ImageNet-64, DU, 20 %) as the reference"),
    Artefact("beyond_calibration", "Beyond the paper",
             "Rank calibration of extrapolated scores against oversmoothing: spread, correlation and accuracy.", None),
    Artefact("beyond_proxy_uncertainty", "Beyond the paper",
             "Scoring unseen samples with the subset-trained proxy's own uncertainty, alone and combined with kNN; class-balanced pruning.",
             None, (Ours("DU 10 % Spearman, proxy aug_std", "spearman_mean",
                         {"scorer": "du", "method": "proxy(kind=aug_std, augmentations=8)", "fraction": 0.1}),
                    Ours("kNN", "spearman_mean", _knn(0.1)))),
)

_MARKER = re.compile(r"<!-- verdict: ([\w\s-]+?) -->(.*?)(?=\n\s*\n|\n#|<!-- verdict:|\Z)", re.S)
_END = re.compile(r"[.!?;:](\*\*)?(?=\s|\Z)")


def _first_sentence(text: str) -> str:
    """Up to the first . ! ? ; or : outside **bold** (or . ! ? closing it), without a trailing ; or :.
    A bold label such as ``**Contradiction:**`` does not end the sentence."""
    for match in _END.finditer(text):
        closes_bold = bool(match.group(1)) and match.group(0)[0] in ".!?"
        if closes_bold or (not match.group(1) and text.count("**", 0, match.start()) % 2 == 0):
            return text[:match.end()].rstrip(";:")
    return text


def verdicts(path: str | Path | None = None) -> dict[str, str]:
    """notebook -> its verdict (markdown, one sentence) from ``REPRODUCTION.md`` (default: the project's).

    Each verdict paragraph starts with ``<!-- verdict: <notebook> [<notebook> ...] -->``; the verdict is
    the first sentence after it, without a leading ``Verdict:`` or list dash.
    """
    text = Path(path or project_root() / "REPRODUCTION.md").read_text()
    out = {}
    for names, block in _MARKER.findall(text):
        block = re.sub(r"\s+", " ", block).strip()
        block = re.sub(r"^Verdict:\s*(-\s*)?", "", block)
        for name in names.split():
            out[name] = _first_sentence(block)
    return out


def _markdown_inline(text: str) -> str:
    """Escape ``text`` for HTML, keeping **bold** and `code`."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def ours_values(artefact: Artefact, csv: Path) -> list[str]:
    """The artefact's :class:`Ours` numbers read from ``csv`` as ``label: value`` (``mean ± std`` when the CSV
    has a std); numbers whose row is absent in this tier are left out."""
    if not artefact.ours or not csv.exists():
        return []
    table = pd.read_csv(csv)
    out = []
    for spec in artefact.ours:
        rows = table
        for column, value in spec.where.items():
            if column not in rows:
                rows = rows.iloc[0:0]
                break
            rows = rows[rows[column].round(6) == value] if isinstance(value, float) else rows[rows[column].astype(str) == str(value)]
        if len(rows) != 1 or spec.column not in rows or pd.isna(rows[spec.column].iloc[0]):
            continue
        value = f"{rows[spec.column].iloc[0]:.3f}"
        std = spec.column.removesuffix("_mean") + "_std"
        if spec.column.endswith("_mean") and std in rows and not pd.isna(rows[std].iloc[0]):
            value += f" ± {rows[std].iloc[0]:.3f}"
        out.append(f"{spec.label}: {value}")
    return out


def _provenance_line(folder: Path) -> str:
    """Which code and machine executed the tier's notebooks (``provenance.json``), and when."""
    path = folder / provenance.PROVENANCE
    if not path.exists():
        return ("notebooks executed before provenance was recorded (no <code>provenance.json</code>; "
                "<code>git log</code> of this folder tells when)")
    entries = json.loads(path.read_text()).values()
    commits = sorted({e["commit"] or "unknown" for e in entries})
    hashes = sorted({e["code_hash"] for e in entries})
    dates = sorted(e["date"] for e in entries)
    machines = sorted({f"{e['cpu']}, {e['threads']} thread(s), {e['cpu_capability']}" for e in entries})
    return (f"notebooks executed {html.escape(dates[0])} to {html.escape(dates[-1])} at commit(s) <code>{html.escape(', '.join(commits))}</code>, "
            f"code hash <code>{html.escape(', '.join(hashes))}</code>, on {html.escape('; '.join(machines))}")


def _run_html(folder: Path, run: str, title: str, files: list[str]) -> str:
    """One run's figure and links: ``run`` is ``<notebook>`` or ``<notebook>--<variant>/<notebook>``."""
    links = [f'<a href="{run}.html">rendered notebook</a>'] if (folder / f"{run}.html").exists() else []
    links += [f'<a href="{f}">{html.escape(Path(f).name)}</a>' for f in files]
    figure = (f'<a href="{run}.png" title="open the full-size figure"><img src="{run}.png" alt="{html.escape(title)}"></a>'
              if (folder / f"{run}.png").exists() else "")
    return f'<p class="links">{" &middot; ".join(links)}</p>{figure}'


def write_index(folder: str | Path, reproduction: str | Path | None = None) -> Path:
    """Write ``<folder>/index.html`` (see the module docstring) and return its path.

    ``reproduction``: the REPRODUCTION.md holding the verdicts (default: the project's).
    """
    folder = Path(folder).resolve()
    reproduction = Path(reproduction or project_root() / "REPRODUCTION.md").resolve()
    verdict = verdicts(reproduction)
    known = {a.notebook for a in ARTEFACTS}
    others = sorted({p.stem for p in folder.glob("*.ipynb")} - known)
    artefacts = [*ARTEFACTS, *(Artefact(name, "Other notebooks", "") for name in others)]
    claimed = {"index.html"}
    sections, group = [], None
    for artefact in artefacts:
        name = artefact.notebook
        runs = [name] if (folder / f"{name}.ipynb").exists() else []
        runs += sorted({p.relative_to(folder).with_suffix("").as_posix() for p in folder.glob(f"{name}--*/{name}.*")
                        if p.suffix in (".ipynb", ".csv")})  # a variant kept as tables and figures only counts too
        if not runs:
            continue
        if artefact.group != group:
            group = artefact.group
            sections.append(f"<h2>{html.escape(group)}</h2>")
        title = _title(folder / f"{runs[0]}.ipynb")
        parts = [f'<h3 id="{name}"><a href="{_page(folder, runs[0])}">{html.escape(title)}</a></h3>']
        if artefact.shows:
            parts.append(f"<p>{html.escape(artefact.shows)}</p>")
        facts = []
        if artefact.paper:
            facts.append(f"<dt>Paper</dt><dd>{html.escape(artefact.paper)}</dd>")
        ours = ours_values(artefact, folder / f"{runs[0]}.csv")
        if ours:
            facts.append(f"<dt>Ours ({html.escape(folder.name)} tier)</dt><dd>{html.escape('; '.join(ours))}</dd>")
        if name in verdict:
            facts.append(f'<dt>Verdict (cpu tier, <a href="{_relative(reproduction, folder)}">REPRODUCTION.md</a>)</dt>'
                         f"<dd>{_markdown_inline(verdict[name])}</dd>")
        if facts:
            parts.append(f"<dl>{''.join(facts)}</dl>")
        for run in runs:
            base = Path(run)
            files = sorted(p.relative_to(folder).as_posix() for p in (folder / base.parent).iterdir()
                           if p.is_file() and (p.stem == base.name or p.name.startswith(base.name + "_")) and p.suffix != ".png"
                           and p.suffix != ".html")
            files += [f for f in artefact.extras if (folder / f).exists()]
            claimed.update(files)
            claimed.update(f"{run}{ext}" for ext in (".png", ".html"))
            if run != name:
                kept = "" if (folder / f"{run}.ipynb").exists() else " (tables and figures only: its notebook was not re-executed)"
                parts.append(f"<h4>variant {html.escape(base.parent.name)}{kept}</h4>")
            parts.append(_run_html(folder, run, name, files))
        sections.append(f"<section>{''.join(parts)}</section>")
    unclaimed = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if p.is_file() and p.relative_to(folder).parts[0] != "screens" and p.relative_to(folder).as_posix() not in claimed)
    if unclaimed:
        links = "".join(f'<li><a href="{f}">{html.escape(f)}</a></li>' for f in unclaimed)
        sections.append(f"<h2>Other files</h2><ul>{links}</ul>")
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>scorecast results: {html.escape(folder.name)} tier</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: auto; padding: 0 16px; line-height: 1.45; color: #222; }}
section {{ border-top: 1px solid #ccc; padding: 6px 0 18px; }}
img {{ width: 100%; height: auto; border: 1px solid #eee; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; }}
.links {{ font-size: 0.95em; }} .meta {{ color: #555; }}
</style></head><body>
<h1>scorecast results: {html.escape(folder.name)} tier</h1>
<p>Executed notebooks reproducing <em>Effective Data Pruning through Score Extrapolation</em> (arXiv 2506.09010),
in the paper's order. Paper numbers, our numbers from this tier's tables, and the verdicts of
<a href="{_relative(reproduction, folder)}">REPRODUCTION.md</a> (written for the cpu tier). Click a figure to enlarge it.</p>
<p class="meta">tier <code>{html.escape(folder.name)}</code> &middot; {_provenance_line(folder)} &middot; index generated {generated}</p>
{"".join(sections)}
</body></html>
"""
    index = folder / "index.html"
    index.write_text(page)
    return index


def _relative(target: Path, folder: Path) -> str:
    """``target`` relative to ``folder`` (a link that works from a checkout or a copied tree)."""
    return Path(os.path.relpath(target, folder)).as_posix()


def _page(folder: Path, run: str) -> str:
    """The file a run's heading links to: its rendered page, else its notebook, else its table."""
    return next(f"{run}{ext}" for ext in (".html", ".ipynb", ".csv") if (folder / f"{run}{ext}").exists())


def _title(notebook: Path) -> str:
    """The notebook's first Markdown heading; its file name when it has none or was not kept."""
    if not notebook.exists():
        return notebook.stem
    for cell in json.loads(notebook.read_text()).get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("# ").strip()
    return notebook.stem


class _Markdown(str):
    """Markdown text that a notebook renders (``_repr_markdown_``) and a terminal prints as is."""

    def _repr_markdown_(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return str(self)


def tiers_table(notebook: str) -> _Markdown:
    """Markdown table of ``notebook``'s settings in every tier, read from ``params/<tier>/<notebook>.yaml``
    and the experiment file it names: data, model, scoring/retraining epochs, subsets, rates, seeds."""
    rows = ["| tier | data | model | epochs (scoring / retraining) | subsets | rates | seeds |", "|---|---|---|---|---|---|---|"]
    for tier in TIERS:
        path = project_root() / "params" / tier / f"{notebook}.yaml"
        if not path.exists():
            continue
        settings = yaml.safe_load(path.read_text())
        experiment = yaml.safe_load((project_root() / settings["experiment"]).read_text())
        data = experiment["data"]["name"] + (f", {experiment['data']['limit']:,} samples" if experiment["data"].get("limit") else "")
        listed = lambda key: ", ".join(f"{v:g}" for v in settings[key]) if key in settings else "-"
        rows.append(f"| {tier} | {data} | {experiment['model']} | {experiment['scoring']['epochs']} / {experiment['retrain']['epochs']} "
                    f"| {listed('fractions')} | {listed('rates')} | {len(settings.get('seeds', [0]))} |")
    return _Markdown("\n".join(rows))


if __name__ == "__main__":
    print(write_index(sys.argv[1] if len(sys.argv) > 1 else "results/smoke"))

"""Health of the scoring runs behind every reported number: training curves, and warnings.

DU and TDDS describe how a sample's prediction moves during training, so subset-run scores only
compare with full-run scores when both runs reach the same phase of training. This module turns
the recorded dynamics into training curves and checks four documented criteria:

- **not converged**: a run's mean true-label probability still rose by ``CONVERGENCE_GAIN`` (0.05)
  or more over its last quarter of records (at least 2 records), or ends below ``FIT_FLOOR`` (0.5:
  it has not fitted its own training samples). Its DU then ranks how easy a sample is, not how much
  it fluctuates. Fix: more optimizer steps (more epochs, a smaller batch; for subset runs
  ``subset_length: phase``).
- **different phase**: a subset run ends with a mean true-label probability more than
  ``PHASE_GAP`` (0.10) away from its full run's. Fix: ``subset_length: phase`` (matching optimizer
  steps can overshoot: a small subset seen that often is memorised).
- **low agreement**: the subset run's scores agree with the full run's on the subset samples with
  Spearman below ``AGREEMENT_FLOOR`` (0.3), or negatively: that agreement is a ceiling for any
  extrapolator only when the runs are comparable; below the floor it flags a protocol problem.
- **emptied class**: a pruned set keeps less than ``CLASS_FLOOR`` (10 %) of the share class-balanced
  pruning would keep of some class. Fix: ``class_balanced: true``.

:func:`report` computes all of it for a notebook, shows one small panel of the curves (full and
subset runs) and the warnings as Markdown (visible in JupyterLab and in the rendered HTML, never
on stderr), and returns ``(curves, warnings)``.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

from IPython.display import Image, Markdown

from . import plots, prune, registry

CONVERGENCE_GAIN = 0.05
FIT_FLOOR = 0.5
PHASE_GAP = 0.10
AGREEMENT_FLOOR = 0.3
CLASS_FLOOR = 0.1


def training_curves(true_prob, correct=None) -> pd.DataFrame:
    """Per-record curves of one run: true_prob (E, m) and correct (E, m) bool (or None, e.g. TURTLE).

    Returns E rows: record (0..E-1), progress (record + 1) / E (share of training done),
    mean_true_prob, train_accuracy (NaN without ``correct``)."""
    true_prob = np.asarray(true_prob, dtype=np.float64)
    records = true_prob.shape[0]
    accuracy = np.asarray(correct, dtype=np.float64).mean(1) if correct is not None else np.full(records, np.nan)
    return pd.DataFrame({"record": np.arange(records), "progress": (np.arange(records) + 1) / records,
                         "mean_true_prob": true_prob.mean(1), "train_accuracy": accuracy})


def final_gain(curve: pd.DataFrame) -> float:
    """Rise of the mean true-label probability over the last quarter of records (at least 2)."""
    values = curve["mean_true_prob"].to_numpy()
    back = min(len(values) - 1, max(2, math.ceil(len(values) / 4)))
    return float(values[-1] - values[-1 - back]) if back > 0 else float("nan")


def run_curves(pipe, scorers: list[dict], seeds: list[int], fractions: list[float]) -> pd.DataFrame:
    """Training curves of the full run and every subset run the notebook's numbers rest on:
    columns run ("full" or "subset <fraction>"), scorer, seed, fraction, record, progress,
    mean_true_prob, train_accuracy. Runs come from the pipeline's cache (no retraining)."""
    parts, seen = [], set()
    for scorer in scorers:
        for seed in seeds:
            for fraction in [None, *fractions]:
                spec = registry.build_scorer(scorer)
                run = pipe.scoring_run(spec, seed, fraction)  # with the scorer's own recipe
                if run.path in seen:
                    continue
                seen.add(run.path)
                correct = run.dynamics.correct(spec.view) if hasattr(run.dynamics, "correct") else None  # TURTLE has no labels
                curve = training_curves(run.dynamics.true_prob(spec.view), correct)
                parts.append(curve.assign(run="full" if fraction is None else f"subset {fraction:g}", scorer=spec.name, seed=seed, fraction=fraction))
    return pd.concat(parts, ignore_index=True)[["run", "scorer", "seed", "fraction", "record", "progress", "mean_true_prob", "train_accuracy"]]


def run_warnings(curves: pd.DataFrame) -> list[str]:
    """Not-converged and different-phase warnings for :func:`run_curves`' table: one per run and
    scorer, naming the seeds that fail and the range of their values."""
    rows = [{"run": run, "scorer": scorer, "seed": seed, "final": float(curve["mean_true_prob"].iloc[-1]), "gain": final_gain(curve)}
            for (run, scorer, seed), curve in curves.groupby(["run", "scorer", "seed"], sort=False)]
    runs = pd.DataFrame(rows)
    full = runs[runs["run"] == "full"].set_index(["scorer", "seed"])["final"]
    runs["full_final"] = [full.get((scorer, seed), np.nan) for scorer, seed in zip(runs["scorer"], runs["seed"])]
    unconverged, off_phase = [], []
    for (run, scorer), group in runs.groupby(["run", "scorer"], sort=False):
        bad = group[(group["gain"] >= CONVERGENCE_GAIN) | (group["final"] < FIT_FLOOR)]
        if len(bad):
            unconverged.append(
                f"**Not converged:** the {run} run ({scorer}, {_seeds(bad['seed'])}) ends at mean true-label probability {_span(bad['final'])} "
                f"and gained {_span(bad['gain'])} over its last quarter of training (criterion: gain < {CONVERGENCE_GAIN} and end >= {FIT_FLOOR}). "
                "Its scores rank how easy a sample is rather than how much it fluctuates. Give it more optimizer steps: more epochs or a "
                "smaller batch, and for subset runs `subset_length: phase`.")
        off = group[(group["run"] != "full") & ((group["final"] - group["full_final"]).abs() > PHASE_GAP)]
        if len(off):
            off_phase.append(
                f"**Different phase:** the {run} run ({scorer}, {_seeds(off['seed'])}) ends at mean true-label probability {_span(off['final'])}, "
                f"the full run at {_span(off['full_final'])} (allowed gap {PHASE_GAP}). Its scores are not comparable with the full run's; "
                "set `subset_length: phase`, which trains subset runs to the full run's final fit.")
    return unconverged + off_phase


def agreement_warnings(fidelity: pd.DataFrame) -> list[str]:
    """Low-agreement warnings from a fidelity table (columns scorer, fraction, seed, ceiling_spearman):
    one per scorer and fraction, naming the seeds below the floor."""
    out = []
    rows = fidelity.drop_duplicates(["scorer", "fraction", "seed"])
    for (scorer, fraction), group in rows.groupby(["scorer", "fraction"], sort=False):
        low = group[group["ceiling_spearman"] < AGREEMENT_FLOOR]
        if len(low):
            kind = "negative" if (low["ceiling_spearman"] < 0).all() else "below the floor"
            out.append(f"**Low agreement:** subset-run vs full-run {scorer} scores on the subset samples (fraction {fraction:g}, "
                       f"{_seeds(low['seed'])}): Spearman {_span(low['ceiling_spearman'])}, {kind} ({AGREEMENT_FLOOR}). This is no ceiling for "
                       "extrapolation but a protocol problem: check the curves above and match the runs' phase of training.")
    return out


def class_warnings(scores_by_seed: dict[int, np.ndarray], labels: np.ndarray, rate: float, name: str,
                   class_balanced: bool = False) -> list[str]:
    """Emptied-class warnings for one method's pruned selections, one per class, naming the seeds.

    ``scores_by_seed``: seed -> scores (n,); ``labels`` (n,)."""
    classes, totals = np.unique(labels, return_counts=True)
    fair = totals * (1 - rate)
    starved: dict[int, list[tuple[int, int]]] = {}
    for seed, score_values in scores_by_seed.items():
        kept = prune.select(score_values, rate, labels, class_balanced)
        kept_counts = np.bincount(labels[kept], minlength=classes.max() + 1)[classes]
        for c, k, f in zip(classes, kept_counts, fair):
            if k < CLASS_FLOOR * f:
                starved.setdefault(int(c), []).append((seed, int(k)))
    return [f"**Emptied class:** pruning {rate:.0%} with {name} keeps {_span([k for _, k in hits], digits=0)} samples of class {c} "
            f"({_seeds([seed for seed, _ in hits])}; class-balanced pruning keeps {int(round(fair[list(classes).index(c)]))}). "
            "Global pruning by these scores removes the class almost entirely; set `class_balanced: true`." for c, hits in starved.items()]


def _seeds(seeds) -> str:
    """``"seed 0"`` or ``"seeds 0, 2"``."""
    seeds = [int(s) for s in seeds]
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _span(values, digits: int = 2) -> str:
    """``"0.63"`` or ``"0.61-0.63"``: the range of ``values`` at ``digits`` decimals."""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return low if low == high else f"{low}-{high}"


def report(pipe, scorers: list[dict], seeds: list[int], fractions: list[float], fidelity: pd.DataFrame | None = None,
           methods: list[dict] | None = None, rates: list[float] | None = None, class_balanced: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Curves of the notebook's runs, one small panel of them, and every warning, shown as Markdown.

    ``fidelity``: a fidelity table to check agreement in; ``methods`` x ``rates``: the pruned
    selections to check for emptied classes (scores from the pipeline's cache)."""
    curves = run_curves(pipe, scorers, seeds, fractions)
    warnings = run_warnings(curves)
    if fidelity is not None and "ceiling_spearman" in fidelity:
        warnings += agreement_warnings(fidelity)
    if methods and rates and hasattr(pipe, "scores_for"):
        labels = pipe.labels
        for scorer in scorers:
            for method in methods:
                for fraction in fractions or [None]:
                    scores_by_seed = {seed: pipe.scores_for(scorer, method, seed, fraction).scores for seed in seeds}
                    name = f"{registry.build_scorer(scorer).name} / {registry.method_label(method)}"
                    for rate in rates:
                        warnings += class_warnings(scores_by_seed, labels, rate, name, class_balanced)
    warnings = list(dict.fromkeys(warnings))
    _show(curves, warnings)
    return curves, warnings


def _show(curves: pd.DataFrame, warnings: list[str]) -> None:
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    for ax, column, title in zip(axes, ("mean_true_prob", "train_accuracy"), ("mean true-label probability", "training accuracy")):
        if curves[column].notna().any():
            sns.lineplot(data=curves, x="progress", y=column, hue="run", units="seed", estimator=None, ax=ax, legend=ax is axes[0])
        else:
            ax.text(0.5, 0.5, "not recorded (no labels: unsupervised run)", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=title, xlabel="share of training done", ylabel="", xlim=(0, 1))
    fig.suptitle("Scoring runs: training curves (one line per seed)", y=1.02)
    fig.tight_layout()
    png = io.BytesIO()  # shown as PNG bytes, whatever the matplotlib backend (batch runs use Agg)
    fig.savefig(png, format="png", dpi=100, bbox_inches="tight")
    text = "\n".join(f"> ⚠ {w}\n>" for w in warnings) if warnings else "Health: every scoring run converged and subset runs match their full runs' phase."
    if not (plots.show(Image(data=png.getvalue())) and plots.show(Markdown(text))):
        print("\n".join(warnings) or "Health: no warnings")
    plt.close(fig)

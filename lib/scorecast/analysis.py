"""Analyses behind the appendix and beyond-the-paper notebooks, so that a notebook reads as a few calls.

Array functions (pure, testable in milliseconds):
- :func:`shape_stats`: std, skewness, excess kurtosis and Sarle's bimodality coefficient of a score vector.
- :func:`misranked`: the samples whose rank quantile differs most between two score vectors.
- :func:`neighbourhood_statistics`: per sample, same-label counts among the k nearest and the distance
  to the nearest sample of another label.
- :func:`k_selection`: oracle vs cross-validated choice of kNN's k for one subset run.

Loops over a :class:`scorecast.pipeline.Pipeline` (every stage cached there), each returning tidy tables:
- :func:`k_sweep` (``app_k_sweep``), :func:`calibration_fidelity` (``beyond_calibration``),
  :func:`score_distributions` (``fig5_score_distributions``), :func:`neighbourhood_table`
  (``app_neighbourhood_statistics``).
- :func:`scale_pipelines` and :func:`scale_table` (``app_scale``): the study at several training-set sizes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from . import claims, extrapolate, metrics, plots
from .claims import gap_verdict
from .experiment import Experiment
from .params import validate_experiment
from .pipeline import Pipeline, method_label, summarise

#: The paper's appendix values (Spearman of true DU with each neighbourhood statistic).
PAPER_NEIGHBOURHOOD = {"same": -0.30, "other_distance": 0.29}


def shape_stats(values: np.ndarray, truth: np.ndarray | None = None) -> dict:
    """Shape of ``values`` (n,): n, mean, std (ddof 1), skew and excess kurtosis (scipy, bias-corrected),
    Sarle's bimodality b = (g^2 + 1) / (kurtosis + 3(n-1)^2 / ((n-2)(n-3))) (> 5/9 hints at two modes),
    and the Spearman with ``truth`` (n,), the same samples' true scores (NaN when None)."""
    values = np.asarray(values, dtype=float)
    n, g, k = len(values), stats.skew(values, bias=False), stats.kurtosis(values, bias=False)
    return {"n": n, "mean": values.mean(), "std": values.std(ddof=1), "skew": g, "excess_kurtosis": k,
            "bimodality": (g**2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))),
            "spearman_vs_true": np.nan if truth is None else metrics.spearman(values, truth)}


def misranked(truth: np.ndarray, estimate: np.ndarray, n: int) -> pd.DataFrame:
    """The ``n`` positions where the rank quantiles (rank / len) of ``truth`` and ``estimate`` (both (m,))
    differ most, largest first (stable): columns position, true_quantile, estimated_quantile."""
    q_true = stats.rankdata(truth) / len(truth)
    q_est = stats.rankdata(estimate) / len(estimate)
    worst = np.argsort(-np.abs(q_true - q_est), kind="stable")[:n]
    return pd.DataFrame({"position": worst, "true_quantile": q_true[worst], "estimated_quantile": q_est[worst]})


def neighbourhood_statistics(Z: np.ndarray, labels: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per sample of ``Z`` (n, d) with ``labels`` (n,): ``same@k`` (n,) the number of same-label samples
    among its k nearest others, for each k in ``ks``, and ``other_distance`` (n,) the Euclidean
    distance to the nearest sample of another label."""
    labels = np.asarray(labels)
    _, neighbours = extrapolate.nearest_neighbours(Z, Z, max(ks), exclude_self=True)
    other_distance = np.empty(len(labels))
    for c in np.unique(labels):
        mine = labels == c
        d, _ = extrapolate.nearest_neighbours(Z[mine], Z[~mine], 1)
        other_distance[mine] = d[:, 0]
    out = {f"same@{k}": (labels[neighbours[:, :k]] == labels[:, None]).sum(1) for k in ks}
    out["other_distance"] = other_distance
    return out


def k_selection(Z: np.ndarray, subset_idx: np.ndarray, subset_scores: np.ndarray, truth: np.ndarray,
                k_grid: Sequence[int], seed: int) -> tuple[pd.DataFrame, dict]:
    """Oracle vs cross-validated k for one subset run: Z (n, d), subset_idx (m,), subset_scores (m,),
    truth (n,) full-data scores. Returns the curve (one row per k: k, cv_spearman, oracle_spearman) and
    {k_cv, k_oracle, oracle_optimism}: oracle Spearman at the oracle's k minus at the CV-chosen k."""
    k_cv, cv = extrapolate.select_k_cv(Z, subset_idx, subset_scores, ks=k_grid, seed=seed)
    k_oracle, oracle = extrapolate.select_k_oracle(Z, subset_idx, subset_scores, truth, ks=k_grid)
    oracle_at = dict(zip(oracle["k"], oracle["mean"]))
    curve = pd.DataFrame({"k": cv["k"].astype(int), "cv_spearman": cv["mean"], "oracle_spearman": [oracle_at[k] for k in cv["k"]]})
    return curve, {"k_cv": k_cv, "k_oracle": k_oracle, "oracle_optimism": oracle_at[k_oracle] - oracle_at[k_cv]}


def k_sweep(pipe, scorers: list[dict], fractions: list[float], seeds: list[int], k_grid: Sequence[int]):
    """:func:`k_selection` for every scorer x fraction x seed.

    Returns (table, curves, chosen): ``curves`` one row per scorer, fraction, seed, k; ``chosen`` one row
    per scorer, fraction, seed (k_cv, k_oracle, oracle_optimism); ``table`` the curves' mean and std over
    seeds per k with ``chosen_by_cv`` / ``chosen_by_oracle``, how many seeds picked that k.
    """
    curves, chosen = [], []
    for scorer in scorers:
        for fraction in fractions:
            for seed in seeds:
                run = pipe.scoring_run(pipe.scorer_spec(scorer), seed, fraction)
                Z, _ = pipe.embedding(run)
                curve, pick = k_selection(Z, run.indices, pipe.subset_scores(run, scorer), pipe.full_scores(scorer, seed).scores, k_grid, seed)
                key = {"scorer": scorer["name"], "fraction": fraction, "seed": seed}
                curves.append(curve.assign(**key))
                chosen.append({**key, **pick})
    curves = pd.concat(curves, ignore_index=True)[["scorer", "fraction", "seed", "k", "cv_spearman", "oracle_spearman"]]
    chosen = pd.DataFrame(chosen)
    table = summarise(curves, ["scorer", "fraction", "k"], ["cv_spearman", "oracle_spearman"])
    for column in ("k_cv", "k_oracle"):
        counts = chosen.groupby(["scorer", "fraction", column]).size().rename(f"chosen_by_{column[2:]}")
        table = table.merge(counts.reset_index().rename(columns={column: "k"}), on=["scorer", "fraction", "k"], how="left")
    table[["chosen_by_cv", "chosen_by_oracle"]] = table[["chosen_by_cv", "chosen_by_oracle"]].fillna(0).astype(int)
    return table, curves, chosen


def calibration_fidelity(pipe, scorers: list[dict], methods: list[dict], fractions: list[float], seeds: list[int],
                         rates: Sequence[float]):
    """Fidelity of each extrapolator (``methods``, e.g. kNN with and without ``calibrate``) over seeds.

    Returns (fidelity, shapes): ``fidelity`` per scorer, method, fraction the mean/std over seeds of Spearman
    and Pearson on the unscored samples, Spearman over all samples (``spearman_all``) and ``std_ratio``
    (std of the extrapolated / true scores on the unscored samples; < 1 = oversmoothed);
    ``shapes`` maps (scorer, seed, fraction) to {source: unscored scores (n - m,)}, the truth first.
    """
    fid = pipe.fidelity_table(scorers, methods, fractions, seeds, rates=tuple(rates))
    extra, shapes = [], {}
    for scorer, method, fraction, seed, truth, result, outside in pipe.against_truth(scorers, methods, fractions, seeds):
        label = method_label(method)
        extra.append({"scorer": scorer.name, "method": label, "fraction": fraction, "seed": seed,
                      "spearman_all": metrics.spearman(truth, result.scores),
                      "std_ratio": result.scores[outside].std() / truth[outside].std()})
        shapes.setdefault((scorer.name, seed, fraction), {"true (full run)": truth[outside]})[label] = result.scores[outside]
    fidelity = summarise(fid.merge(pd.DataFrame(extra), on=["scorer", "method", "fraction", "seed"]),
                         ["scorer", "method", "fraction"], ["spearman", "spearman_all", "pearson", "std_ratio"]).drop(columns="n_seeds")
    return fidelity, shapes


def score_distributions(pipe, scorer: dict, fraction: float, seed: int, methods: list[dict], n_examples: int):
    """True, subset-run and extrapolated score distributions of one scorer, fraction and seed.

    Returns (table, sources, worst): ``sources`` {name: scores}: the truth and each method on the
    unscored samples, the subset run on its own samples; ``table`` one :func:`shape_stats` row per
    source; ``worst`` the ``n_examples`` unscored samples the first method misranks most
    (:func:`misranked`, with ``index`` the dataset index).
    """
    truth = pipe.full_scores(scorer, seed).scores
    results = {method_label(m): pipe.extrapolated_scores(scorer, fraction, seed, m) for m in methods}
    first = next(iter(results.values()))
    outside = np.setdiff1d(np.arange(len(truth)), first.subset_idx)
    subset_source = "subset run (its own samples)"
    sources = {"true (full run)": truth[outside], subset_source: first.scores[first.subset_idx]}
    sources.update({label: r.scores[outside] for label, r in results.items()})
    table = pd.DataFrame([{"source": s, **shape_stats(v, None if s == subset_source else truth[outside])} for s, v in sources.items()])
    worst = misranked(truth[outside], first.scores[outside], n_examples)
    worst.insert(0, "index", outside[worst["position"]])
    return table, sources, worst.drop(columns="position")


def neighbourhood_table(pipe, scorers: list[dict], seeds: list[int], k_grid: Sequence[int]):
    """Spearman of each scorer's full-run scores with :func:`neighbourhood_statistics` in the full run's
    embedding, beside the paper's values. Returns (table: mean/std over seeds per scorer and statistic,
    per_sample: (scorer, seed) -> {"score": (n,), "other_distance": (n,), "same@k": (n,), ...})."""
    rows, per_sample = [], {}
    for scorer in scorers:
        for seed in seeds:
            scores = pipe.full_scores(scorer, seed).scores
            Z, _ = pipe.embedding(pipe.run(seed, None, scorer.get("scoring")))
            found = neighbourhood_statistics(Z, pipe.labels, k_grid)
            key = {"scorer": scorer["name"], "seed": seed}
            rows += [{**key, "statistic": f"same-label among {k} nearest", "paper": PAPER_NEIGHBOURHOOD["same"],
                      "spearman": metrics.spearman(scores, found[f"same@{k}"])} for k in k_grid]
            rows.append({**key, "statistic": "distance to nearest other label", "paper": PAPER_NEIGHBOURHOOD["other_distance"],
                         "spearman": metrics.spearman(scores, found["other_distance"])})
            per_sample[(scorer["name"], seed)] = {"score": scores, **found}
    return summarise(pd.DataFrame(rows), ["scorer", "statistic", "paper"], ["spearman"]), per_sample


def scale_pipelines(experiment: dict | str | Experiment, sizes: Sequence[int | None], cache_dir=None) -> dict[int, Pipeline]:
    """{training-set size: Pipeline} for the scale study (``app_scale``): the ``experiment`` with
    ``data.limit`` set to each of ``sizes`` (a class-stratified sample, seed 0), or without a limit
    for ``None`` (every training image). All sizes share one cache (a size equal to another
    notebook's ``data.limit`` shares its artefacts); keys are the number of training images each
    pipeline sees."""
    base = validate_experiment(experiment)
    pipes = {}
    for size in sizes:
        data = {key: value for key, value in base.data.items() if key != "limit"}
        if size is not None:
            data["limit"] = int(size)
        pipe = Pipeline(dataclasses.replace(base, data=data), cache_dir)  # validated again there: a size below 1 is refused
        pipes[len(pipe.train_set)] = pipe
    return pipes


def scale_table(pipes: dict[int, Pipeline], scorers: list[dict], methods: list[dict], fractions: list[float],
                pruning_methods: list[dict], balanced_methods: list[dict], rates: list[float], pruning_fractions: list[float],
                seeds: list[int]) -> pd.DataFrame:
    """The scale study's table: one row per training-set size x setting x rate x seed, computed size by
    size in the order of ``pipes`` (every stage cached, so a stopped run resumes where it stopped).

    Three kinds of row, each filling its own columns (the others NaN):

    - pruning (``pruning_methods`` globally, ``balanced_methods`` class-balanced, subset runs at
      ``pruning_fractions``): ``top1`` after pruning ``rate`` of the data and retraining (rate 0: unpruned);
    - extrapolation (each extrapolating ``methods`` entry at each of ``fractions``): ``spearman`` with
      the full-data scores of the same seed on the samples outside the subset;
    - subset run (setting ``subset run @ <fraction>``): ``ceiling_spearman``, the agreement of its own
      scores with the full run's on the subset; ``subset_seconds_share``, its seconds (the whole phase
      search) over the full run's; ``subset_multiple``, the multiple of the full run's epochs it trained.

    Key columns: train_size (number of training images), scorer, setting (:func:`scorecast.plots.with_setting`),
    fraction, rate, seed."""
    parts = []
    for size, pipe in pipes.items():
        fidelity = pipe.fidelity_table(scorers, methods, fractions, seeds)
        runs = fidelity.drop_duplicates(["scorer", "fraction", "seed"])
        per_run = []
        for scorer, fraction, seed, agreement in zip(runs["scorer_spec"], runs["fraction"], runs["seed"], runs["ceiling_spearman"]):
            full, subset = pipe.scoring_run(scorer, seed, None), pipe.scoring_run(scorer, seed, fraction)
            per_run.append({"scorer": scorer.name, "method": "subset run", "fraction": fraction, "seed": seed, "ceiling_spearman": agreement,
                            "subset_seconds_share": subset.seconds / full.seconds,
                            "subset_multiple": subset.epochs / full.epochs})
        accuracy = pipe.pruning_table(scorers, pruning_methods, rates, seeds, pruning_fractions, balanced_methods)
        table = pd.concat([accuracy[["scorer", "method", "fraction", "rate", "seed", "class_balanced", "top1"]],
                           fidelity[["scorer", "method", "fraction", "seed", "spearman"]], pd.DataFrame(per_run)], ignore_index=True)
        table = plots.with_setting(table.assign(class_balanced=table["class_balanced"].fillna(False).astype(bool)))
        parts.append(table.assign(train_size=size))
    return pd.concat(parts, ignore_index=True)[["train_size", "scorer", "setting", "fraction", "rate", "seed", "top1", "spearman",
                                                "ceiling_spearman", "subset_seconds_share", "subset_multiple"]]


def paired_gaps(table: pd.DataFrame, reference: str = "random") -> pd.DataFrame:
    """Per-seed differences of top-1 against the ``reference`` setting of the same training-set size,
    rate and seed, from :func:`scale_table`'s table (pruned rates only; :func:`scorecast.claims.paired_differences`).
    Columns: train_size, setting, rate, seed, gap (top-1 minus the reference's)."""
    top1 = table[table["top1"].notna()]
    others = [(setting, reference) for setting in dict.fromkeys(top1["setting"]) if setting != reference]
    gaps = claims.paired_differences(top1, others, "top1").rename(columns={"difference": "gap"})
    return gaps[["train_size", "setting", "rate", "seed", "gap"]]


#: The paper's one recovered extrapolation number (Table 2: ImageNet-64, DU, kNN, 20 % subset).
PAPER_SPEARMAN = 0.35


def _mean_std(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():+.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():+.3f}"


def scale_verdicts(table: pd.DataFrame, gaps: pd.DataFrame, method: str = "knn") -> str:
    """Markdown: per training-set size, the paired gap to random (mean ± std over seeds and a verdict from
    :func:`gap_verdict`) of every pruning at every rate, the Spearman and agreement at each fraction;
    then the headline: the smallest size from which the global ``method`` pruning no longer loses to
    random at any rate (or that it loses at every size run)."""
    lines, recovered = [], None
    for size, part in table.groupby("train_size", sort=True):
        unpruned = part[(part["rate"] == 0) & (part["setting"] == "full")]["top1"]
        seeds = part["seed"].nunique()
        parts = []
        losing = False
        for (setting, rate), group in gaps[gaps["train_size"] == size].groupby(["setting", "rate"], sort=False):
            verdict = gap_verdict(group["gap"])
            parts.append(f"{setting} at {rate:.0%}: {_mean_std(group['gap'])} ({verdict})")
            losing |= setting.startswith(method) and not setting.endswith("class-balanced") and verdict == "loses"
        fidelity = part[part["spearman"].notna() & part["setting"].str.startswith(method)].groupby("setting", sort=False)["spearman"].mean()
        agreement = part[part["ceiling_spearman"].notna()].groupby("setting", sort=False)["ceiling_spearman"].mean()
        fid = "; ".join(f"{s}: {v:.2f}" for s, v in pd.concat([fidelity, agreement]).items())
        lines.append(f"- **{size:,} images** (unpruned top-1 {unpruned.mean():.3f}, {seeds} seed{'s' if seeds > 1 else ''}). "
                     f"Top-1 minus random: {'; '.join(parts)}. Spearman with full-data DU, and agreement: {fid}.")
        if recovered is None and not losing:
            recovered = size
        elif losing:
            recovered = None
    sizes = sorted(table["train_size"].unique())
    if recovered is None:
        headline = f"**Global {method} DU loses to random at some pruning rate at every size run ({', '.join(f'{s:,}' for s in sizes)} images).**"
    elif recovered == sizes[0]:
        headline = f"**Global {method} DU does not lose to random at any size run ({', '.join(f'{s:,}' for s in sizes)} images).**"
    else:
        headline = f"**Global {method} DU stops losing to random from {recovered:,} training images on** (sizes run: {', '.join(f'{s:,}' for s in sizes)})."
    return headline + " Per size (gaps are paired per seed; *beats*/*loses*: every seed on one side of zero):\n\n" + "\n".join(lines)

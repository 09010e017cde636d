"""The index (scorecast.report): the claim -> verdict summary, paper order, full verdicts with badge and
reason from REPRODUCTION.md (scorecast.verdicts), numbers from the CSVs (scorecast.ours) with regime and seeds,
links to every file; the summary block of REPRODUCTION.md generated from the committed CSVs."""

import re
from pathlib import Path

import pandas as pd
import pytest

from scorecast import ours, report, verdicts as verdict_marks
from scorecast.validation import ScorecastError

ROOT = Path(__file__).resolve().parents[1]


def _tier(tmp_path: Path, notebooks: list[str]) -> Path:
    folder = tmp_path / "results" / "cpu"
    folder.mkdir(parents=True)
    for name in notebooks:
        (folder / f"{name}.ipynb").write_text('{"cells": [{"cell_type": "markdown", "source": ["# Title of ' + name + '"]}]}')
        (folder / f"{name}.html").write_text("<html></html>")
        (folder / f"{name}.png").write_bytes(b"png")
    return folder


def test_every_notebook_is_an_artefact_and_every_artefact_but_the_quickstart_has_a_verdict():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert {a.notebook for a in report.ARTEFACTS} == notebooks
    verdicts = verdict_marks.verdicts(ROOT / "REPRODUCTION.md")
    assert set(verdicts) == notebooks - {"quickstart"}
    fig2 = verdicts["fig2_accuracy_vs_pruning_rate"]
    assert fig2.badge == "not reproduced" and fig2.text.startswith("**not reproduced.**") and "class-balanced" in fig2.text
    assert all(v.text and not v.text.startswith("Verdict") and v.reason for v in verdicts.values())


def test_verdict_is_the_whole_paragraph_or_list_after_its_marker(tmp_path):
    text = ("# A\nIntro with `<!-- verdict: <notebook> | <badge> | <reason> -->`.\n"
            "<!-- verdict: a b | partly | why a -->Verdict: **kept in kind.** More text.\n\n"
            "x <!-- verdict: c | reproduced | why c -->**Label:** a claim (0.5 vs 0.6): why.\n"
            "<!-- verdict: d | no paper number | why d -->Verdict:\n- **Fidelity: good.** Rest\n  goes on.\n- Second.\n")
    path = tmp_path / "R.md"
    path.write_text(text)
    verdicts = verdict_marks.verdicts(path)
    assert verdicts["a"] == verdicts["b"] == verdict_marks.Verdict("**kept in kind.** More text.", "partly", "why a")
    assert verdicts["c"] == verdict_marks.Verdict("**Label:** a claim (0.5 vs 0.6): why.", "reproduced", "why c")
    assert verdicts["d"].text == "- **Fidelity: good.** Rest\n  goes on.\n- Second."
    assert verdict_marks.markdown_html(verdicts["d"].text) == "<ul><li><strong>Fidelity: good.</strong> Rest goes on.</li><li>Second.</li></ul>"


@pytest.mark.parametrize("marker", ["<!-- verdict: a -->", "<!-- verdict: a | maybe | why -->", "<!-- verdict: a | partly | -->"])
def test_a_verdict_marker_without_a_known_badge_or_a_reason_is_an_error(tmp_path, marker):
    path = tmp_path / "R.md"
    path.write_text(f"{marker}Verdict: text.\n")
    with pytest.raises(ValueError, match="must read '<!-- verdict: <notebook>.*with a badge out of reproduced, partly"):
        verdict_marks.verdicts(path)


def test_the_summary_of_reproduction_md_is_generated_from_the_committed_csvs(tmp_path):
    committed = (ROOT / "REPRODUCTION.md").read_text()
    copy = tmp_path / "REPRODUCTION.md"
    copy.write_text(committed)
    report.write_summary(ROOT / "results" / "cpu", copy)
    assert copy.read_text() == committed, "REPRODUCTION.md's summary is stale: run python -m scorecast.report summary results/cpu"
    block = committed.split(report.SUMMARY_BEGIN)[1].split(report.SUMMARY_END)[0]
    assert "top-1 at rate 0.7, full DU: 0.654 ± 0.016; kNN DU: 0.595 ± 0.009; random: 0.628 ± 0.009" in block
    assert "robust top-1 0.6356 (extrapolated) vs 0.6313 (random)" in block and "%)" not in block.split("robust top-1 0.6356")[1][:60]
    csvs = {p.stem for p in (ROOT / "results" / "cpu").glob("*.csv")}
    rows = [r for r in report.summary_rows(ROOT / "results" / "cpu") if r.notebook not in csvs]
    assert not rows, "a summary row without its CSV"


def test_summary_skips_claims_whose_table_is_absent_and_marks_unwritten_verdicts(tmp_path):
    folder = tmp_path / "cpu"
    folder.mkdir()
    pd.DataFrame({"scorer": ["du"], "method": ["knn(k=10)"], "fraction": [0.2], "spearman_mean": [0.3], "n_seeds": [4]}) \
        .to_csv(folder / "app_subset_size.csv", index=False)
    reproduction = tmp_path / "R.md"
    reproduction.write_text(f"<!-- verdict: app_k_sweep | reproduced | why -->x\n\n{report.SUMMARY_BEGIN}\nSTALE ROW\n{report.SUMMARY_END}\nrest\n")
    rows = report.summary_rows(folder, reproduction)
    assert [r.notebook for r in rows] == ["app_subset_size"] and rows[0].verdict is None
    assert rows[0].ours.startswith("kNN 20 %: 0.300 (cnn_bn") and rows[0].ours.endswith(", 4 seeds)")
    text = report.write_summary(folder, reproduction).read_text()
    assert "STALE ROW" not in text and "| App.: subset size |" in text and "| not written yet |" in text and text.endswith("rest\n")


def test_index_lists_artefacts_in_paper_order_with_numbers_verdicts_and_every_file(tmp_path):
    names = ["app_k_sweep", "tab2_extrapolation_correlation", "quickstart", "fig2_accuracy_vs_pruning_rate", "my_new_notebook"]
    folder = _tier(tmp_path, names)
    pd.DataFrame({"scorer": ["du"], "setting": ["knn(k=10) @ 0.2"], "rate": [0.7], "top1_mean": [0.4321], "top1_std": [0.0123]}) \
        .to_csv(folder / "fig2_accuracy_vs_pruning_rate.csv", index=False)
    (folder / "tab2_extrapolation_correlation_extra.csv").write_text("a\n1\n")
    (folder / "bench_end_to_end.txt").write_text("bench")
    variant = folder / "tab2_extrapolation_correlation--big"
    variant.mkdir()
    (variant / "tab2_extrapolation_correlation.ipynb").write_text('{"cells": []}')
    (variant / "tab2_extrapolation_correlation.png").write_bytes(b"png")
    earlier = folder / "tab2_extrapolation_correlation--tiny"  # a variant kept without its notebook
    earlier.mkdir()
    (earlier / "tab2_extrapolation_correlation.csv").write_text("a\n1\n")
    (earlier / "tab2_extrapolation_correlation.png").write_bytes(b"png")
    reproduction = tmp_path / "REPRODUCTION.md"
    reproduction.write_text("<!-- verdict: fig2_accuracy_vs_pruning_rate | partly | a reason -->Verdict: **half reproduced.** Why.\n")

    page = report.write_index(folder, reproduction).read_text()

    order = [page.index(f'id="{n}"') for n in ["quickstart", "fig2_accuracy_vs_pruning_rate", "tab2_extrapolation_correlation",
                                                  "app_k_sweep", "my_new_notebook"]]
    assert order == sorted(order)
    assert "kNN DU: 0.432 ± 0.012" in page
    assert "<p><strong>half reproduced.</strong> Why.</p>" in page and ">partly</span> a reason" in page
    summary = page[page.index('id="summary"'):page.index('id="quickstart"')]
    assert '<a href="#fig2_accuracy_vs_pruning_rate">Fig. 2</a>' in summary and "kNN DU: 0.432 ± 0.012" in summary
    assert "tab2_extrapolation_correlation" not in summary, "no row for a claim whose table this tier lacks"
    assert "max-width: 100%; width: auto" in page
    assert 'href="../../REPRODUCTION.md"' in page
    hrefs = set(re.findall(r'href="([^"]+)"', page))
    assert {"tab2_extrapolation_correlation_extra.csv", "bench_end_to_end.txt", "fig2_accuracy_vs_pruning_rate.csv",
            "tab2_extrapolation_correlation--big/tab2_extrapolation_correlation.ipynb",
            "tab2_extrapolation_correlation--big/tab2_extrapolation_correlation.png",
            "tab2_extrapolation_correlation--tiny/tab2_extrapolation_correlation.csv",
            "tab2_extrapolation_correlation--tiny/tab2_extrapolation_correlation.png"} <= hrefs
    assert "variant tab2_extrapolation_correlation--tiny (tables and figures only" in page
    tab2 = page[page.index('id="tab2_extrapolation_correlation"'):page.index('id="app_k_sweep"')]
    assert '<img src="tab2_extrapolation_correlation--tiny/tab2_extrapolation_correlation.png"' in tab2, "a notebook-less variant belongs to its artefact"
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"index.html"}
    assert on_disk <= hrefs, f"files the index does not link: {on_disk - hrefs}"
    assert "tier <code>cpu</code>" in page


def test_ours_leaves_out_numbers_absent_from_the_tier(tmp_path):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"scorer": ["du"], "method": ["knn(k=10)"], "fraction": [0.1], "spearman_mean": [0.3], "spearman_std": [0.01]}).to_csv(csv, index=False)
    artefact = next(a for a in report.ARTEFACTS if a.notebook == "app_subset_size")
    assert ours.ours_values(artefact.ours, csv) == ["kNN 10 %: 0.300 ± 0.010"]


def test_ours_reads_a_per_seed_table_as_its_mean_and_std_over_seeds(tmp_path):
    csv = tmp_path / "fig5_score_distributions.csv"
    pd.DataFrame({"source": ["true (full run)", "knn(k=10)"] * 3, "std": [0.05, 0.03, 0.07, 0.02, 0.06, 0.04],
                  "seed": [0, 0, 1, 1, 2, 2]}).to_csv(csv, index=False)
    artefact = next(a for a in report.ARTEFACTS if a.notebook == "fig5_score_distributions")
    assert ours.ours_values(artefact.ours, csv) == ["std of true DU: 0.060 ± 0.010", "kNN-extrapolated: 0.030 ± 0.010"]
    pd.read_csv(csv).assign(seed=0).to_csv(csv, index=False)  # several rows that are not one per seed: left out
    assert ours.ours_values(artefact.ours, csv) == []


def test_route_costs_count_each_stage_once_with_one_final_training_per_rate(tmp_path):
    csv = tmp_path / "fig3_time_vs_accuracy.csv"
    pd.DataFrame({"setting": ["full", "knn(k=10) @ 0.2", "random"], "rate": [0.5] * 3, "scoring_seconds_mean": [100.0, 30.0, 0.0],
                  "embedding_seconds_mean": [0.0, 5.0, 0.0], "final_training_seconds_mean": [40.0, 90.0, 50.0],
                  "total_seconds_mean": [140.0, 125.0, 50.0]}).to_csv(csv, index=False)
    assert ours.route_costs(csv) == {0.5: {"full": 150.0, "knn(k=10) @ 0.2": 85.0, "random": 50.0}}  # final training: median 50
    assert report._fig3_costs(csv) == ["end-to-end cost at rate 0.5 (one measurement per stage): full DU 150.0 s, kNN 85.0 s, "
                                       "random 50.0 s, kNN speed-up 1.8x"]
    assert report._speedup(tmp_path / "tab1_relative_accuracy_speedup.csv") == [
        "end-to-end speed-up of the kNN route (Fig. 3's stage times): 1.8x at rate 0.5"]


def test_the_readme_lists_every_notebook_from_the_index_entries(tmp_path):
    committed = (ROOT / "README.md").read_text()
    copy = tmp_path / "README.md"
    copy.write_text(committed)
    report.write_notebooks(copy)
    assert copy.read_text() == committed, "README.md's table of notebooks is stale: run python -m scorecast.report notebooks"
    block = committed.split(report.NOTEBOOKS_BEGIN)[1].split(report.NOTEBOOKS_END)[0]
    assert {f"`{p.stem}`" for p in (ROOT / "notebooks").glob("*.ipynb")} == set(re.findall(r"^\| (`\w+`) \|", block, re.M))
    with pytest.raises(ScorecastError, match="needs exactly one line"):
        (tmp_path / "no_markers.md").write_text("# no table here\n")
        report.write_notebooks(tmp_path / "no_markers.md")

"""The index (scorecast.report): paper order, verdicts from REPRODUCTION.md, numbers from the CSVs,
links to every file; and the generated tiers table."""

import re
from pathlib import Path

import pandas as pd
import pytest

from scorecast import report

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
    verdicts = report.verdicts(ROOT / "REPRODUCTION.md")
    assert set(verdicts) == notebooks - {"quickstart"}
    assert verdicts["fig2_accuracy_vs_pruning_rate"] == "**not reproduced.**"
    assert all(v and not v.startswith("Verdict") for v in verdicts.values())


def test_verdict_is_the_first_sentence_after_its_marker(tmp_path):
    text = ("# A\nIntro.\n<!-- verdict: a b -->Verdict: **kept in kind.** More text.\n\n"
            "x <!-- verdict: c -->**Label:** a claim (0.5 vs 0.6): why.\n"
            "<!-- verdict: d -->Verdict:\n- **Fidelity: good.** Rest\n")
    path = tmp_path / "R.md"
    path.write_text(text)
    assert report.verdicts(path) == {"a": "**kept in kind.**", "b": "**kept in kind.**",
                                     "c": "**Label:** a claim (0.5 vs 0.6)", "d": "**Fidelity: good.**"}


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
    reproduction.write_text("<!-- verdict: fig2_accuracy_vs_pruning_rate -->Verdict: **half reproduced.** Why.\n")

    page = report.write_index(folder, reproduction).read_text()

    order = [page.index(f'id="{n}"') for n in ["quickstart", "fig2_accuracy_vs_pruning_rate", "tab2_extrapolation_correlation",
                                                  "app_k_sweep", "my_new_notebook"]]
    assert order == sorted(order)
    assert "kNN DU: 0.432 ± 0.012" in page
    assert "<strong>half reproduced.</strong>" in page
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
    assert report.ours_values(artefact, csv) == ["kNN 10 % Spearman: 0.300 ± 0.010"]


def test_tiers_table_is_generated_from_the_parameter_files():
    table = report.tiers_table("fig2_accuracy_vs_pruning_rate")
    lines = table.splitlines()
    assert lines[2].startswith("| smoke | digits | tiny_cnn | 20 / 10 |")
    assert any(line.startswith("| cpu | imagefolder, 10,000 samples | cnn_bn | 15 / 15 |") for line in lines)
    assert table._repr_markdown_() == str(table)

"""notebooks/quickstart.ipynb with two pruning rates (tiny training on digits): every row of its table and
of its per-class counts belongs to the right method and rate, because rows are joined by the specs
they carry, never by position."""

import re

import numpy as np
import pandas as pd
import papermill
import pytest
import torch

from scorecast import prune
from scorecast.pipeline import Pipeline

EXPERIMENT = {
    "data": {"name": "digits"},
    "model": "tiny_cnn",
    "scoring": {"epochs": 6, "batch_size": 128},
    "record": {"source": "train", "trajectory": "last", "trajectory_length": 6},
    "retrain": {"epochs": 2, "batch_size": 64, "lr": 0.01},
    "device": "cpu",
}
PARAMETERS = {
    "experiment": EXPERIMENT, "scorers": [{"name": "du", "window": 3}],
    "methods": [{"name": "knn", "k": 5}, {"name": "gnn", "k": 5, "epochs": 5, "hidden": [16]}],
    "rates": [0.3, 0.7], "fractions": [0.3], "seeds": [0],
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quickstart")
    parameters = {**PARAMETERS, "cache_dir": str(folder / "cache"), "output_dir": str(folder / "out")}
    with pytest.MonkeyPatch.context() as env:  # the kernel trains with this process's thread count, so the runs it caches are ours
        env.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
        env.setenv("MKL_NUM_THREADS", str(torch.get_num_threads()))
        nb = papermill.execute_notebook("notebooks/quickstart.ipynb", str(folder / "quickstart.ipynb"), parameters=parameters,
                                        kernel_name="python3", progress_bar=False)
    printed = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    return {"printed": printed, "table": pd.read_csv(folder / "out" / "quickstart.csv"), "cache": folder / "cache"}


def test_table_has_one_row_per_method_and_rate(executed):
    table = executed["table"]
    settings = ["full", "knn(k=5) @ 0.3", "gnn(k=5, epochs=5, hidden=[16]) @ 0.3", "random"]
    assert list(zip(table["setting"], table["rate"])) == [(s, r) for s in settings for r in (0.3, 0.7)]
    # full and random have no fidelity; each extrapolator's correlation is its own, at both rates
    assert table.loc[table["setting"].isin(["full", "random"]), ["pearson", "spearman"]].isna().all().all()
    pipe = Pipeline(EXPERIMENT, executed["cache"])
    fid = pipe.fidelity_table(PARAMETERS["scorers"], PARAMETERS["methods"], [0.3], [0])
    for label, row in zip(fid["method"], fid.itertuples()):
        mine = table[table["setting"] == f"{label} @ 0.3"]
        assert len(mine) == 2 and (mine["pearson"] == row.pearson).all() and (mine["spearman"] == row.spearman).all()


def test_class_counts_belong_to_their_method_and_rate(executed):
    lines = dict(re.findall(r"^\s+(.+ @ rate [\d.]+): (\[.*\])$", executed["printed"], flags=re.M))
    assert len(lines) == 8 and "full @ rate 0.3" in lines and "full @ rate 0.7" in lines
    pipe = Pipeline(EXPERIMENT, executed["cache"])
    scorer = PARAMETERS["scorers"][0]
    for name, method in [("full", {"name": "full"}), ("knn(k=5) @ 0.3", PARAMETERS["methods"][0]), ("random", {"name": "random"})]:
        values = pipe.scores_for(scorer, method, 0, 0.3).scores
        for rate in (0.3, 0.7):
            kept = prune.select(values, rate)
            assert lines[f"{name} @ rate {rate:g}"] == str(np.bincount(pipe.labels[kept], minlength=10).tolist())

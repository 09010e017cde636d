"""What every notebook does before its own work, in one call under its imports::

    notebook.setup("fig2_accuracy_vs_pruning_rate", globals())

:func:`setup` checks the values of the notebook's ``parameters`` cell (the smoke literals, or what
papermill injected from the tier's parameter file) against :mod:`scorecast.params`, sets the plot style
and shows :func:`tiers_table`, the notebook's settings in every tier.
"""

from __future__ import annotations

from IPython.display import display

from . import params, plots
from .paramfiles import data_text, parameters_cell_keys, read_experiment, read_params
from .paths import project_root
from .provenance import TIER_THREADS
from .validation import ScorecastError


class _Markdown(str):
    """Markdown text that a notebook renders (``_repr_markdown_``) and a terminal prints as is."""

    def _repr_markdown_(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return str(self)


def tiers_table(notebook: str) -> _Markdown:
    """Markdown table of ``notebook``'s settings in every tier, read from ``params/<tier>/<notebook>.yaml``
    (over its base, :func:`scorecast.paramfiles.read_params`) and the experiment file it names: data, model,
    scoring/retraining epochs, subsets, rates, seeds."""
    rows = ["| tier | data | model | epochs (scoring / retraining) | subsets | rates | seeds |", "|---|---|---|---|---|---|---|"]
    for tier in TIER_THREADS:
        path = project_root() / "params" / tier / f"{notebook}.yaml"
        if not path.exists():
            continue
        settings = read_params(path)
        experiment = read_experiment(settings["experiment"])
        listed = lambda key: ", ".join(f"{v:g}" for v in settings[key]) if key in settings else "-"
        rows.append(f"| {tier} | {data_text(settings, experiment)} | {experiment['model']} | {experiment['scoring']['epochs']} / {experiment['retrain']['epochs']} "
                    f"| {listed('fractions')} | {listed('rates')} | {len(settings.get('seeds', [0]))} |")
    return _Markdown("\n".join(rows))


def setup(notebook: str, namespace: dict) -> None:
    """Check the parameters of ``notebook`` (``notebooks/<notebook>.ipynb``): the names its ``parameters``
    cell assigns, read from ``namespace`` (the notebook's ``globals()``), validated as
    :data:`scorecast.params.PARAMETERS_CELL` (which also refuses a parameter papermill injected that the cell
    does not define, and a method the notebook's code looks up that is missing); then set the plot style (:func:`scorecast.plots.set_style`) and display
    :func:`tiers_table`. Raises :class:`ScorecastError` naming what is wrong."""
    names = parameters_cell_keys(project_root() / "notebooks" / f"{notebook}.ipynb")
    missing = [name for name in names if name not in namespace]
    if missing:
        raise ScorecastError(f"{notebook}: {missing} not defined: run the cell tagged 'parameters' before the setup")
    params.validate_notebook_params({name: namespace[name] for name in names}, params.PARAMETERS_CELL, notebook)
    plots.set_style()
    display(tiers_table(notebook))

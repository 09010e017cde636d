"""``python -m scorecast.report results/<tier>``: write ``index.html`` linking every executed
notebook's HTML rendering beside its figure, including variant runs in ``<notebook>--<variant>/``."""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path


def _title(notebook: Path) -> str:
    cells = json.loads(notebook.read_text()).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("# ").strip()
    return notebook.stem


def write_index(folder: str | Path) -> Path:
    """Write ``<folder>/index.html`` for the executed notebooks in ``folder`` and in its variant
    subfolders (``<notebook>--<variant>/<notebook>.ipynb``); returns its path."""
    folder = Path(folder)
    entries = []
    notebooks = sorted([*folder.glob("*.ipynb"), *folder.glob("*--*/*.ipynb")], key=lambda p: str(p.relative_to(folder)))
    for notebook in notebooks:
        name = notebook.relative_to(folder).with_suffix("").as_posix()
        run = name.split("/")[0]
        figure = f'<a href="{name}.html"><img src="{name}.png" alt="{name} figure" width="480"></a>' if (folder / f"{name}.png").exists() else "<p>(no figure)</p>"
        table = f' &middot; <a href="{name}.csv">table (CSV)</a>' if (folder / f"{name}.csv").exists() else ""
        entries.append(
            f'<section id="{run}"><h2><a href="{name}.html">{html.escape(_title(notebook))}</a></h2>'
            f'<p><code>{run}</code>{table}</p>{figure}</section>'
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>scorecast results: "
        f"{html.escape(folder.name)}</title><style>body{{font-family:sans-serif;max-width:1000px;margin:auto}}"
        "section{border-top:1px solid #ccc;padding:8px 0}</style></head><body>"
        f"<h1>scorecast results &mdash; tier {html.escape(folder.name)}</h1>"
        "<p>Executed notebooks reproducing 'Effective Data Pruning through Score Extrapolation' (arXiv 2506.09010).</p>"
        + "".join(entries)
        + "</body></html>"
    )
    index = folder / "index.html"
    index.write_text(page)
    return index


if __name__ == "__main__":
    print(write_index(sys.argv[1] if len(sys.argv) > 1 else "results/smoke"))

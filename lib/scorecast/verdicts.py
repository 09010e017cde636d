"""The verdicts of ``REPRODUCTION.md`` (the one place they are written) and their HTML.

Each verdict starts with ``<!-- verdict: <notebook> [<notebook> ...] | <badge> | <one-line reason> -->``
(badge: one of :data:`BADGES`) and runs to the end of its paragraph or list; :func:`verdicts` reads them,
:func:`markdown_html` and :func:`badge_html` render them for the index (:mod:`scorecast.report`).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from .paths import project_root
from .validation import ScorecastError

BADGES = {"reproduced": "#1a7f37", "partly": "#9a6700", "not reproduced": "#cf222e", "no paper number": "#57606a"}  # badge -> colour

_MARKER = re.compile(r"<!-- verdict: ([\w\s-]+(?:\|[^>]*?)?) -->(.*?)(?=\n\s*\n|\n#|<!-- verdict:|\Z)", re.S)
_MARKER_FORMAT = "<!-- verdict: <notebook> [<notebook> ...] | <badge> | <one-line reason> -->"


@dataclass(frozen=True)
class Verdict:
    """A verdict of REPRODUCTION.md: its full text (Markdown), its badge (one of :data:`BADGES`) and its one-line reason."""

    text: str
    badge: str
    reason: str


def verdicts(path: str | Path | None = None) -> dict[str, Verdict]:
    """notebook -> its :class:`Verdict` from ``REPRODUCTION.md`` (default: the project's).

    Each verdict starts with ``<!-- verdict: <notebook> [<notebook> ...] | <badge> | <one-line reason> -->``
    and runs to the end of its paragraph or list (a blank line, a heading or the next marker); a leading
    ``Verdict:`` is dropped. A marker without a known badge or a reason is an error naming it.
    """
    path = Path(path or project_root() / "REPRODUCTION.md")
    out = {}
    for head, block in _MARKER.findall(path.read_text()):
        fields = [f.strip() for f in head.split("|")]
        if len(fields) != 3 or fields[1] not in BADGES or not fields[0] or not fields[2]:
            raise ScorecastError(f"{path}: the verdict marker '<!-- verdict: {head} -->' must read '{_MARKER_FORMAT}' "
                                 f"with a badge out of {', '.join(BADGES)}")
        text = re.sub(r"^Verdict:\s*", "", block.strip())
        for name in fields[0].split():
            out[name] = Verdict(text, fields[1], fields[2])
    return out


def _markdown_inline(text: str) -> str:
    """Escape ``text`` for HTML, keeping **bold** and `code`."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def markdown_html(text: str) -> str:
    """A verdict's Markdown as HTML: text before a list as a paragraph, ``- `` items as a list."""
    head, *items = re.split(r"(?m)^\s*- ", text)
    join = lambda part: _markdown_inline(re.sub(r"\s+", " ", part).strip())
    out = f"<p>{join(head)}</p>" if head.strip() else ""
    return out + (f"<ul>{''.join(f'<li>{join(i)}</li>' for i in items)}</ul>" if items else "")


def badge_html(badge: str) -> str:
    """``badge`` (one of :data:`BADGES`) as a coloured HTML label."""
    return f'<span class="badge" style="background:{BADGES[badge]}">{html.escape(badge)}</span>'

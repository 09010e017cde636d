"""Browser check of the rendered results: headless Chromium (Debian package) opens results/smoke/index.html
and the rendered notebooks; every image must load, every link must resolve, and no page may show stderr
output, an absolute machine path or a table printed as text.

Chromium is driven over the DevTools protocol with websocket-client; ./run_all.sh --tests installs
Debian's chromium when it is missing.

Screenshots for reviewers (index and the fig2/tab2/fig3 pages at 1400 px width, the whole page: a page taller
than MAX_HEIGHT is cut into <page>.png, <page>-2.png, ... in order), run once on final results:
    .venv/bin/python tests/test_browser.py results/cpu      # writes results/cpu/screens/*.png
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import websocket

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("SCORECAST_BROWSER_RESULTS", ROOT / "results" / "smoke"))  # another folder: to check fresh pages
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENS = ("index", "fig2_accuracy_vs_pruning_rate", "tab2_extrapolation_correlation", "fig3_time_vs_accuracy")
WIDTH = 1400
MAX_HEIGHT = 12000  # px per screenshot; a longer page is cut into several (Chromium cannot capture arbitrarily tall images)
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:home|root|work|tmp|Users|opt|usr|var)/[\w.-]+")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def chromium():
    """A headless Chromium; yields the base URL of its DevTools endpoint."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed: run ./run_all.sh --tests (it installs Debian's chromium)"
    port = _free_port()
    profile = tempfile.mkdtemp()
    proc = subprocess.Popen([binary, *FLAGS, f"--remote-debugging-port={port}", f"--remote-allow-origins=http://127.0.0.1:{port}",
                             f"--user-data-dir={profile}", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/json/version", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield base
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """One tab, navigated to ``url`` at ``WIDTH`` px and loaded; ``evaluate`` runs JavaScript in it."""

    def __init__(self, base: str, url: str):
        request = urllib.request.Request(f"{base}/json/new?about:blank", method="PUT")
        target = json.load(urllib.request.urlopen(request, timeout=10))
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=60)
        self.next_id = 0
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        self.call("Page.navigate", {"url": url})
        while json.loads(self.ws.recv()).get("method") != "Page.loadEventFired":
            pass

    def call(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, f"{method}: {message['error']}"
                return message["result"]

    def evaluate(self, expression: str):
        reply = self.call("Runtime.evaluate", {"expression": f"JSON.stringify({expression})"})
        return json.loads(reply["result"]["value"])

    def screenshot(self, path: Path) -> list[Path]:
        """The whole page at ``WIDTH`` px as PNGs of at most ``MAX_HEIGHT`` px: ``path``, then ``<stem>-2.png``, ...;
        stale tiles of an earlier, longer capture are removed."""
        height = int(self.call("Page.getLayoutMetrics")["cssContentSize"]["height"] + 0.999)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f"{path.stem}-*.png"):
            if stale.stem.removeprefix(f"{path.stem}-").isdigit():
                stale.unlink()
        out = []
        for i, top in enumerate(range(0, height, MAX_HEIGHT)):
            clip = {"x": 0, "y": top, "width": WIDTH, "height": min(MAX_HEIGHT, height - top), "scale": 1}
            shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
            tile = path if i == 0 else path.with_name(f"{path.stem}-{i + 1}.png")
            tile.write_bytes(base64.b64decode(shot["data"]))
            out.append(tile)
        return out

    def close(self):
        self.ws.close()


@contextmanager
def page(base: str, path: Path):
    tab = Page(base, path.resolve().as_uri())
    try:
        yield tab
    finally:
        tab.close()


def broken_links(tab: Page) -> list[str]:
    """Links of the page (a href, img src) to local files that do not exist; web links are not fetched."""
    urls = tab.evaluate("[...Array.from(document.links).map(a => a.href), ...Array.from(document.images).map(i => i.src)]")
    broken = []
    for url in urls:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "file" and not Path(urllib.parse.unquote(parsed.path)).exists():
            broken.append(url)
    return broken


def screenshots(folder: Path, base: str | None = None) -> list[Path]:
    """Write ``<folder>/screens/<page>.png`` (and ``<page>-2.png``, ... for a tall page) for the index and the
    fig2/tab2/fig3 pages (those present)."""
    if base is None:
        with chromium() as started:
            return screenshots(folder, started)
    out = []
    for name in SCREENS:
        html = folder / f"{name}.html"
        if html.exists():
            with page(base, html) as tab:
                out += tab.screenshot(folder / "screens" / f"{name}.png")
    return out


def page_problems(html: Path) -> list[str]:
    """What a rendered notebook page must not contain: stderr output, absolute machine paths, tables printed as text."""
    text = html.read_text()
    problems = []
    if 'data-mime-type="application/vnd.jupyter.stderr"' in text:  # an output element (the stylesheet names it too)
        problems.append("stderr output")
    outputs = "".join(re.findall(r'<div class="jp-OutputArea-output.*?</div>', text, re.S))
    paths = sorted(set(ABSOLUTE_PATH.findall(outputs)))
    if paths:
        problems.append(f"absolute paths {paths[:3]}")
    printed = re.findall(r'data-mime-type="(?:text/plain|application/vnd.jupyter.stdout)"[^>]*>\s*<pre>(.*?)</pre>', text, re.S)
    if any(sum(len(re.findall(r"\d\.\d{2,}", line)) >= 2 for line in block.splitlines()) >= 4 for block in printed):
        problems.append("a table printed as text")  # four or more printed lines of numbers
    return problems


@pytest.fixture(scope="module")
def browser():
    with chromium() as base:
        yield base


def test_index_images_load_and_links_resolve(browser):
    index = RESULTS / "index.html"
    assert index.exists(), "results/smoke/index.html is missing: run ./run_all.sh"
    with page(browser, index) as tab:
        images = tab.evaluate("Array.from(document.images).map(i => ({src: i.src, width: i.naturalWidth}))")
        assert not broken_links(tab)
    figures = sorted(RESULTS.rglob("*.png"))
    assert figures, "results/smoke has no figures"
    assert len(images) == len([f for f in figures if "screens" not in f.parts])
    assert not [i["src"] for i in images if i["width"] <= 0], "images that did not load"


def test_index_opens_with_the_summary_and_shows_figures_at_most_at_natural_width(browser):
    with page(browser, RESULTS / "index.html") as tab:
        first = tab.evaluate("document.querySelector('h2') && document.querySelector('h2').id")
        rows = tab.evaluate("Array.from(document.querySelectorAll('table.summary tbody tr')).map(r => r.cells.length)")
        before = tab.evaluate("!!document.querySelector('table.summary') && "
                              "!!(document.querySelector('table.summary').compareDocumentPosition(document.querySelector('section')) & 4)")
        badges = tab.evaluate("Array.from(document.querySelectorAll('table.summary .badge')).map(b => b.textContent)")
        images = tab.evaluate("Array.from(document.images).map(i => ({src: i.src, shown: i.clientWidth, natural: i.naturalWidth}))")
    assert first == "summary", "the index must open with the claim -> verdict summary"
    assert rows and set(rows) == {6} and before, "the summary table (artefact, claim, paper, ours, verdict, why) comes before the entries"
    assert badges and set(badges) <= {"reproduced", "partly", "not reproduced", "no paper number"}
    upscaled = [f"{i['src']}: {i['shown']} > {i['natural']} px" for i in images if i["shown"] > i["natural"]]
    assert not upscaled, f"figures stretched beyond their natural width: {upscaled}"


def test_rendered_pages_show_their_figure_and_nothing_they_should_not(browser):
    pages = sorted(RESULTS.glob("*.html"))
    assert len(pages) > 1
    problems = {p.name: page_problems(p) for p in pages if p.name != "index.html"}
    assert not {k: v for k, v in problems.items() if v}
    with page(browser, RESULTS / "quickstart.html") as tab:
        widths = tab.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        tables = tab.evaluate("document.querySelectorAll('.jp-OutputArea-output table').length")
    assert widths and all(w > 0 for w in widths), "the rendered quick-start notebook shows no figure"
    assert tables >= 1, "the rendered quick-start notebook holds no HTML table"


def test_page_checks_catch_what_they_look_for(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<div class="jp-OutputArea-output" data-mime-type="application/vnd.jupyter.stderr">'
                   "<pre>/work/main/.venv/lib/x.py:1: FutureWarning</pre></div>"
                   '<div class="jp-RenderedText" data-mime-type="text/plain" tabindex="0"><pre>a top1 spearman\n'
                   + "".join(f"m{i} 0.51{i} 0.30{i}\n" for i in range(4)) + "</pre></div>")
    assert len(page_problems(bad)) == 3
    good = tmp_path / "good.html"
    good.write_text('<div class="jp-OutputArea-output"><table><tr><td>results/smoke/x.csv 0.5</td></tr></table></div>')
    assert page_problems(good) == []


def _size(png: Path) -> tuple[int, int]:
    header = png.read_bytes()[16:24]  # PNG IHDR: width, height (big-endian)
    return int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")


def test_screenshots_are_taken_at_reviewer_width_and_cover_the_whole_page(browser, tmp_path):
    tall = MAX_HEIGHT + 3000
    (tmp_path / "index.html").write_text(f"<!doctype html><body style='margin:0'><div style='height:{tall}px;background:#eee'>x</div></body>")
    (tmp_path / "tab2_extrapolation_correlation.html").write_text("<p>table</p>")
    (tmp_path / "screens").mkdir()
    (tmp_path / "screens" / "index-3.png").write_bytes(b"stale")
    shots = screenshots(tmp_path, browser)
    assert [s.name for s in shots] == ["index.png", "index-2.png", "tab2_extrapolation_correlation.png"]
    assert _size(shots[0]) == (WIDTH, MAX_HEIGHT) and _size(shots[1]) == (WIDTH, tall - MAX_HEIGHT)
    assert not (tmp_path / "screens" / "index-3.png").exists(), "a tile of an earlier, longer capture was left behind"


if __name__ == "__main__":
    for shot in screenshots(Path(sys.argv[1] if len(sys.argv) > 1 else "results/smoke")):
        print(shot)

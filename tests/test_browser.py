"""Browser check: headless Chromium (Debian package) renders results/smoke/index.html and one
executed notebook's HTML; every figure image must be present and loaded (naturalWidth > 0).

Chromium is driven over the DevTools protocol with websocket-client; ./run_all.sh --tests installs
Debian's chromium when it is missing."""

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import websocket

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "smoke"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed: run ./run_all.sh --tests (it installs Debian's chromium)"
    port = _free_port()
    profile = tempfile.mkdtemp()
    proc = subprocess.Popen([binary, *FLAGS, f"--remote-debugging-port={port}", f"--remote-allow-origins=http://127.0.0.1:{port}",
                             f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/json/version", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    yield base
    proc.kill()
    shutil.rmtree(profile, ignore_errors=True)


def _images_after_load(base: str, url: str) -> list[dict]:
    """Navigate a new tab to ``url``, wait for its load event, return [{src, naturalWidth}] of every <img>."""
    request = urllib.request.Request(f"{base}/json/new?about:blank", method="PUT")
    target = json.load(urllib.request.urlopen(request, timeout=10))
    ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30)

    def call(message_id: int, method: str, params: dict | None = None) -> dict:
        ws.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(ws.recv())
            if message.get("id") == message_id:
                return message

    try:
        call(1, "Page.enable")
        call(2, "Page.navigate", {"url": url})
        while json.loads(ws.recv()).get("method") != "Page.loadEventFired":
            pass
        expression = "JSON.stringify(Array.from(document.images).map(i => ({src: i.src, naturalWidth: i.naturalWidth})))"
        reply = call(3, "Runtime.evaluate", {"expression": expression})
        return json.loads(reply["result"]["result"]["value"])
    finally:
        ws.close()


def test_index_shows_every_figure(browser):
    index = RESULTS / "index.html"
    assert index.exists(), "results/smoke/index.html is missing: run ./run_all.sh"
    images = _images_after_load(browser, index.as_uri())
    figures = sorted(RESULTS.glob("*.png"))
    assert figures, "results/smoke has no figures"
    assert len(images) == len(figures)
    broken = [i["src"] for i in images if i["naturalWidth"] <= 0]
    assert not broken, f"images that did not load: {broken}"


def test_rendered_notebook_shows_its_figure(browser):
    page = RESULTS / "quickstart.html"
    assert page.exists(), "results/smoke/quickstart.html is missing: run ./run_all.sh"
    images = _images_after_load(browser, page.as_uri())
    assert images, "the rendered quick-start notebook holds no images"
    assert all(i["naturalWidth"] > 0 for i in images)

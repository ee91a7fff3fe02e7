"""End to end: the real server on 127.0.0.1, Debian's Chromium driven by Playwright, the page's answers checked
against `medclass predict` on the same file.

Needs Chromium at /usr/bin/chromium (Debian package `chromium`; `.ci/run` installs it) or at $MEDCLASS_CHROMIUM.
Playwright only drives that browser: it never downloads one.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medclass.cli import app
from medclass.serve import AuditLog

CHROMIUM = os.environ.get("MEDCLASS_CHROMIUM", "/usr/bin/chromium")
# Headless, and nothing that would reach out to Google's services from a machine with no internet.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the dev extra)")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason=f"no Chromium at {CHROMIUM}: apt-get install chromium (or set MEDCLASS_CHROMIUM)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(evaluated_run, youden_run, tmp_path_factory):
    """`medclass serve` in its own process, serving the three-class demo run and the calibrated binary run."""
    root = tmp_path_factory.mktemp("browser")
    models = root / "models"
    shutil.copytree(evaluated_run, models / "phantoms")
    shutil.copytree(youden_run, models / "malignancy")
    port, audit_db = free_port(), root / "audit.sqlite"
    log = open(root / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "medclass", "serve", "--models-dir", str(models),
                                "--port", str(port), "--audit-db", str(audit_db)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, root / "server.log")
        yield {"url": url, "models": models, "audit": audit_db}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"medclass serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.25)
    pytest.fail(f"medclass serve was not healthy within {timeout:.0f} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def upload(tmp_path) -> Path:
    """A freshly generated phantom with a lesion, larger than the models' input (the server resizes it)."""
    from medclass.data.demo import phantom

    pixels, _ = phantom(np.random.default_rng(2026), "malignant", size=48)
    path = tmp_path / "new scan.png"
    Image.fromarray(pixels).save(path)
    return path


def cli_probabilities(run: Path, image: Path, out: Path) -> tuple[str, dict[str, float]]:
    """`medclass predict RUN IMAGE --out CSV`: the label and class probabilities it writes (6 decimals)."""
    result = CliRunner().invoke(app, ["predict", str(run), str(image), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as f:
        row, = csv.DictReader(f)
    return row["prediction"], {k[2:]: float(v) for k, v in row.items() if k.startswith("p_")}


def page_answer(page) -> tuple[str, dict[str, float]]:
    """The label and the exact probability behind each bar, as the page shows them."""
    label = page.inner_text(".task .label")
    rows = page.eval_on_selector_all(".task .bar-row", "rows => rows.map(r => [r.dataset.class, "
                                                       "r.dataset.probability])")
    return label, {name: float(value) for name, value in rows}


def test_page_predicts_like_the_cli(server, browser, upload, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, problems = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(server["url"] + "/")
    assert "not a diagnosis" in page.inner_text("#notice")
    page.wait_for_selector("#model:not([disabled])")
    assert page.eval_on_selector_all("#model option", "o => o.map(x => x.value)") == ["malignancy", "phantoms"]

    audit_ids = []
    for model, explain in (("malignancy", True), ("phantoms", False)):
        page.select_option("#model", model)
        evaluated = "Test set (n = " if model == "phantoms" else "No test-set evaluation"
        assert evaluated in page.inner_text("#model-card")  # only the phantoms run was evaluated
        page.set_input_files("#file", str(upload))
        page.set_checked("#explain", explain)
        page.click("#predict")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        label, shown = page_answer(page)
        expected_label, expected = cli_probabilities(server["models"] / model, upload, tmp_path / f"{model}.csv")
        assert label == expected_label
        assert shown.keys() == expected.keys()
        for name, p in expected.items():
            assert shown[name] == pytest.approx(p, abs=5e-7), name  # the CSV keeps 6 decimals
        assert page.is_visible("#overlay") == explain
        audit_ids.append(int(page.get_attribute("#result", "data-audit-id")))
        if explain:
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

    screenshot = tmp_path / "page.png"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {screenshot}")
    origin = server["url"]
    assert all(url.startswith((origin, "data:", "blob:")) for url in requests), requests  # nothing from outside
    assert not problems, problems
    logged = {row["id"]: row for row in AuditLog(server["audit"], create=False).rows()}
    assert [logged[i]["model"] for i in audit_ids] == ["malignancy", "phantoms"]


def test_page_asks_for_the_api_key(evaluated_run, browser, tmp_path):
    """With a key set, the page shows the key field, refuses to list models without it, then works with it."""
    port = free_port()
    env = os.environ | {"MEDCLASS_API_KEY": "s3cret"}
    process = subprocess.Popen([sys.executable, "-m", "medclass", "serve", str(evaluated_run), "--port", str(port),
                                "--audit-db", str(tmp_path / "audit.sqlite")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, Path(os.devnull))
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#error:not([hidden])")
        assert "API key" in page.inner_text("#error")
        assert page.is_visible("#api-key") and page.is_disabled("#model")
        page.fill("#api-key", "s3cret")
        page.click("#key-apply")
        page.wait_for_selector("#model:not([disabled])")
        assert page.eval_on_selector_all("#model option", "o => o.map(x => x.value)") == [evaluated_run.name]
    finally:
        process.terminate()
        process.wait(timeout=30)

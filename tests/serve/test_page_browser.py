"""End to end: the real server on 127.0.0.1, Debian's Chromium driven by Playwright, the page's answers checked
against `medclass predict` on the same file.

Needs Chromium at /usr/bin/chromium (Debian package `chromium`; `.ci/run` installs it) or at $MEDCLASS_CHROMIUM.
Playwright only drives that browser: it never downloads one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medclass.cli import app
from medclass.inference.batch import column_guide_path
from medclass.serve import AuditLog

from .conftest import dicom_bytes, free_port

CHROMIUM = os.environ.get("MEDCLASS_CHROMIUM", "/usr/bin/chromium")
# Headless, and nothing that would reach out to Google's services from a machine with no internet.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the dev extra)")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}: apt-get install "
                                                                       "chromium (or set MEDCLASS_CHROMIUM)")


try:  # prediction sets came with the conformal work: without them the page's set lines go untested
    from medclass.core.prediction_sets import PredictionSets
    from medclass.core.heads import TaskHead as _Head

    HAS_SETS = hasattr(_Head, "__dataclass_fields__") and "prediction_sets" in _Head.__dataclass_fields__
except ImportError:
    HAS_SETS = False
FOREIGN = "This image does not look like the images this model was trained on"

LONG_CLASS = "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)"  # BloodMNIST's
DESCRIPTION = "Untrained test model: organ, malignancy and findings of 32 px X-ray-like images"


def three_task_model(folder: Path) -> Path:
    """An untrained smallcnn answering organ (multiclass, calibrated to a flattening temperature, one class named
    as long as BloodMNIST's), malignancy (binary, tuned threshold; prediction sets whose quantile 0.5 leaves one
    class in each set) and findings (multilabel, one threshold each): every kind of task the page draws; with a
    description and a modality, and no input guard."""
    import torch

    from medclass.core.heads import TaskHead
    from medclass.inference import ModelArtifact
    from medclass.models import create_model
    from medclass.core.preprocessing import Preprocessing

    sets = {"prediction_sets": PredictionSets(0.9, (0.5,), images=20)} if HAS_SETS else {}
    heads = [TaskHead("organ", "multiclass", ("Brain", "Breast", LONG_CLASS), temperature=16.7),
             TaskHead("malignancy", "binary", ("benign", "malignant"), 1, 0.3, "val, youden", **sets),
             TaskHead("findings", "multilabel", ("Mass", "Nodule"), threshold=(0.2, 0.7))]
    torch.manual_seed(0)
    outputs = [head.outputs for head in heads]
    model = create_model("smallcnn", sum(outputs), 1, task_outputs=outputs)
    folder.mkdir(parents=True)
    ModelArtifact("smallcnn", heads, Preprocessing(32, 1, (0.5,), (0.25,)), model.state_dict(),
                  model_kwargs={"task_outputs": outputs}, modality="xray", description=DESCRIPTION).save(folder)
    return folder


@pytest.fixture(scope="module")
def server(evaluated_run, youden_run, tmp_path_factory):
    """`medclass serve` in its own process, serving the three-class demo run, the calibrated binary run and a
    three-task model."""
    root = tmp_path_factory.mktemp("browser")
    models = root / "models"
    shutil.copytree(evaluated_run, models / "phantoms")
    shutil.copytree(youden_run, models / "malignancy")
    three_task_model(models / "three_tasks")
    audit_db = root / "audit.sqlite"
    with serving(["--models-dir", str(models), "--audit-db", str(audit_db)], root / "server.log") as url:
        yield {"url": url, "models": models, "audit": audit_db, "log": root / "server.log"}


@contextmanager
def serving(args: list[str], log: Path, env: dict | None = None) -> Iterator[str]:
    """`medclass serve ARGS` in its own process on a free port of 127.0.0.1: its URL once /health says ready."""
    port = free_port()
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-m", "medclass", "serve", *args, "--port", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process, log)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"medclass serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as answer:  # 503: loading, or the load failed (then say why at once)
            body = answer.read().decode()
            if '"failed"' in body:
                pytest.fail(f"medclass serve could not load its models: {body}")
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


def cli_answer(run: Path, image: Path, out: Path) -> dict[str, tuple[str, dict[str, float]]]:
    """`medclass predict RUN IMAGE --out CSV`: per task, the label and class probabilities it writes (6 decimals;
    columns `prediction`, `p_CLASS`, or `TASK:prediction`, `TASK:p_CLASS` for several tasks), each probability
    under its exact class name as the CSV's column guide gives it."""
    result = CliRunner().invoke(app, ["predict", str(run), str(image), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as f:
        row, = csv.DictReader(f)
    guide = {c["name"]: c for c in json.loads(column_guide_path(out).read_text())["columns"]}
    labels, probabilities = {}, {}
    for column, value in row.items():
        task, _, name = column.rpartition(":")
        if name == "prediction":
            labels[guide[column]["task"]] = value
        elif name.startswith("p_"):
            probabilities.setdefault(guide[column]["task"], {})[guide[column]["class"]] = float(value)
    return {task: (label, probabilities[task]) for task, label in labels.items()}


def page_answer(page) -> dict[str, tuple[str, dict[str, float]]]:
    """Per task card: the label (as the CLI writes it: findings joined by '|') and the exact probability behind
    each bar, as the page shows them."""
    return {task: (label, {name: float(p) for name, p in bars}) for task, label, bars in page.eval_on_selector_all(
        ".task", "cards => cards.map(c => [c.dataset.task, c.querySelector('.label').dataset.label, "
                 "[...c.querySelectorAll('.bar-row')].map(r => [r.dataset.class, r.dataset.probability])])")}


def test_page_predicts_like_the_cli(server, browser, upload, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, problems = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(server["url"] + "/")
    assert "not a diagnosis" in page.inner_text("#notice")
    page.wait_for_selector("#model:not([disabled])")
    assert page.eval_on_selector_all("#model option", "o => o.map(x => x.value)") == ["malignancy", "phantoms",
                                                                                      "three_tasks"]
    audit_ids = []
    for model, explain in (("malignancy", "gradcam"), ("phantoms", "otsu"), ("three_tasks", "")):
        page.select_option("#model", model)
        evaluated = "Test set (n = " if model == "phantoms" else "No test-set evaluation recorded"
        assert evaluated in page.inner_text("#model-card")  # only the phantoms run was evaluated
        page.set_input_files("#file", str(upload))
        page.select_option("#explain", explain)
        page.click("#predict")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        check_boxes_drawn(page, explain)
        shown = page_answer(page)
        expected = cli_answer(server["models"] / model, upload, tmp_path / f"{model}.csv")
        assert shown.keys() == expected.keys()
        for task, (label, proba) in expected.items():
            assert shown[task][0] == label
            assert shown[task][1].keys() == proba.keys()
            for name, p in proba.items():
                assert shown[task][1][name] == pytest.approx(p, abs=5e-7), (task, name)  # the CSV keeps 6 decimals
        assert page.is_visible("#overlay") == bool(explain)
        audit_ids.append(int(page.get_attribute("#result", "data-audit-id")))
        page.screenshot(path=str(tmp_path / f"page-{model}.png"), full_page=True)
        assert (tmp_path / f"page-{model}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshots: {tmp_path}/page-*.png")

    # the same file dragged onto the drop zone instead of chosen: the same answer, logged again
    page.evaluate("""([bytes, name]) => {
        const files = new DataTransfer();
        files.items.add(new File([new Uint8Array(bytes)], name, { type: "image/png" }));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: files, bubbles: true,
                                                                              cancelable: true }));
    }""", [list(upload.read_bytes()), "dropped.png"])
    assert "dropped.png" in page.inner_text("#drop-text") and page.is_hidden("#result")
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert page_answer(page) == shown
    assert hashlib.sha256(upload.read_bytes()).hexdigest() in page.inner_text("#meta")
    audit_ids.append(int(page.get_attribute("#result", "data-audit-id")))

    # DICOM, which a browser cannot show: the server sends the decoded picture back; answers as the CLI's
    scan = tmp_path / "scan.dcm"
    scan.write_bytes(dicom_bytes(np.asarray(Image.open(upload)).astype(np.uint16) * 256))
    page.select_option("#model", "phantoms")
    page.set_input_files("#file", str(scan))
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert page.get_attribute("#image", "src").startswith("data:image/png;base64,")
    assert page.eval_on_selector("#image", "image => image.naturalWidth") == 48
    shown, expected = page_answer(page), cli_answer(server["models"] / "phantoms", scan, tmp_path / "dicom.csv")
    assert shown["label"][0] == expected["label"][0]
    for name, p in expected["label"][1].items():
        assert shown["label"][1][name] == pytest.approx(p, abs=5e-7), name
    audit_ids.append(int(page.get_attribute("#result", "data-audit-id")))

    origin = server["url"]
    assert all(url.startswith((origin, "data:", "blob:")) for url in requests), requests  # nothing from outside
    assert not problems, problems
    logged = {row["id"]: row for row in AuditLog(server["audit"], create=False).rows()}
    assert [logged[i]["model"] for i in audit_ids] == ["malignancy", "phantoms", "three_tasks", "three_tasks",
                                                        "phantoms"]


def check_boxes_drawn(page, method: str) -> None:
    """The answer's boxes are drawn over the image, each at the coordinates the JSON gives (the image's pixels)."""
    drawn = page.eval_on_selector_all("#boxes rect", "rects => rects.map(r => ['x', 'y', 'width', 'height']"
                                                     ".map(k => Number(r.getAttribute(k))))")
    if not method:
        assert page.is_hidden("#boxes") and not drawn
        return
    answer = page.evaluate("window.lastAnswer")
    boxes = answer["explanation"]["boxes"][:3]  # the page draws the best three
    assert drawn and len(drawn) == len(boxes)
    assert drawn == [[b["x0"], b["y0"], b["x1"] - b["x0"], b["y1"] - b["y0"]] for b in boxes]
    assert page.get_attribute("#boxes", "viewBox") == "0 0 48 48"  # the upload's own size
    inside = page.evaluate("""() => { const i = document.getElementById('image').getBoundingClientRect();
        const b = document.querySelector('#boxes rect.best').getBoundingClientRect();
        const within = b.left >= i.left - 1 && b.right <= i.right + 1 && b.top >= i.top - 1 && b.bottom <= i.bottom + 1;
        return within && b.width > 0 ? true : [i.left, i.right, i.top, i.bottom, b.left, b.right, b.top, b.bottom]; }""")
    assert inside is True, inside  # drawn, over the image
    assert method in page.inner_text("#image-caption").lower().replace("grad-cam", "gradcam")


def bar_colours(page, task: str) -> dict[str, str]:
    return dict(page.eval_on_selector_all(
        f".task[data-task='{task}'] .bar-row",
        "rows => rows.map(r => [r.dataset.class, getComputedStyle(r.querySelector('.fill')).backgroundColor])"))


def test_page_says_what_a_model_is_for_and_colours_bars_by_meaning(server, browser, upload, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server["url"] + "/")
    page.wait_for_selector("#model:not([disabled])")
    page.select_option("#model", "three_tasks")
    card = page.inner_text("#model-card")
    assert DESCRIPTION in card and "xray" in card and "32 × 32 px, 1 channel (grayscale)" in card
    assert "Task findings" in card and "multilabel: Mass, Nodule" in card
    assert "calibration temperature 16.7" in page.inner_text("#model-card .warning")  # at chance: said so
    assert "calibration temperature 16.7" in server["log"].read_text()  # and on serve's stderr
    page.select_option("#explain", "otsu")
    assert "polarity: bright (model's modality)" in page.inner_text("#polarity")
    page.select_option("#explain", "")
    page.set_input_files("#file", str(upload))
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    red, grey, blue = (page.evaluate(f"getComputedStyle(document.documentElement).getPropertyValue('--{name}')")
                       for name in ("positive", "negative", "accent"))
    rgb = {name: page.evaluate("c => { const e = document.createElement('i'); e.style.color = c; "
                               "document.body.append(e); const v = getComputedStyle(e).color; e.remove(); "
                               "return v; }", value.strip()) for name, value in
           (("red", red), ("grey", grey), ("blue", blue))}
    # a binary task: its positive class red and the other grey, whichever was answered
    assert bar_colours(page, "malignancy") == {"malignant": rgb["red"], "benign": rgb["grey"]}
    assert set(bar_colours(page, "organ").values()) == {rgb["blue"]}  # multiclass: no class is "the bad one"
    assert set(bar_colours(page, "findings").values()) == {rgb["red"]}  # every finding is a finding
    long_name = page.query_selector(f".task[data-task='organ'] .bar-row[data-class='{LONG_CLASS}'] .name")
    assert long_name.get_attribute("title") == LONG_CLASS
    assert page.evaluate("n => n.scrollWidth > n.clientWidth", long_name)  # cut with an ellipsis, not spilling
    spill = page.evaluate("""() => { const s = document.getElementById('result').getBoundingClientRect();
        return [...document.querySelectorAll('.bar-row')].filter(r => r.getBoundingClientRect().right > s.right)
        .length; }""")
    assert spill == 0
    page.screenshot(path=str(tmp_path / "page-about.png"), full_page=True)
    print(f"screenshot: {tmp_path}/page-about.png")


def test_page_asks_for_the_api_key(evaluated_run, browser, tmp_path):
    """With a key set, the page shows the key field, refuses to list models without it, then works with it."""
    env = os.environ | {"MEDCLASS_API_KEY": "s3cret"}
    with serving([str(evaluated_run), "--audit-db", str(tmp_path / "audit.sqlite")], tmp_path / "server.log",
                 env) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#error:not([hidden])")
        assert "API key" in page.inner_text("#error")
        assert page.is_visible("#api-key") and page.is_disabled("#model")
        page.fill("#api-key", "s3cret")
        page.click("#key-apply")
        page.wait_for_selector("#model:not([disabled])")
        assert page.eval_on_selector_all("#model option", "o => o.map(x => x.value)") == [evaluated_run.name]


def shown_guard(page) -> dict:
    return page.evaluate("""() => { const g = document.getElementById('guard');
        return { visible: !g.hidden, text: g.innerText, ood: g.classList.contains('ood'), role: g.getAttribute('role'),
                 flagged: document.getElementById('tasks').classList.contains('flagged'),
                 fills: [...document.querySelectorAll('#tasks .fill')].map(f => getComputedStyle(f).backgroundColor),
                 notes: document.querySelectorAll('#tasks .flag-note').length,
                 sets: Object.fromEntries([...document.querySelectorAll('.task')].map(c => [c.dataset.task,
                       c.querySelector('.prediction-set') && [c.querySelector('.prediction-set').dataset.predictionSet,
                                                              c.querySelector('.prediction-set').innerText]])) }; }""")


def predict_on_page(page, model: str, image: Path) -> dict:
    page.select_option("#model", model)
    page.set_input_files("#file", str(image))
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    return shown_guard(page)


def test_page_warns_of_foreign_images_and_shows_prediction_sets(server, browser, png_path, tmp_path):
    """A training-like phantom passes the guard quietly; a colour photo of noise is flagged with its reasons and
    its bars greyed; a model without a guard says so; each task's prediction set is put in words."""
    foreign = tmp_path / "holiday photo.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(foreign)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(server["url"] + "/")
    page.wait_for_selector("#model:not([disabled])")
    page.select_option("#model", "phantoms")
    assert "Input guard: knn" in page.inner_text("#model-card")

    calm = predict_on_page(page, "phantoms", png_path)
    assert calm["visible"] and not calm["ood"] and not calm["flagged"] and calm["role"] is None
    assert FOREIGN not in calm["text"] and "in distribution" in calm["text"] and not calm["notes"]
    answer = page.evaluate("window.lastAnswer")
    assert answer["extras"]["input_guard"]["in_distribution"] is True
    page.screenshot(path=str(tmp_path / "page-in-distribution.png"), full_page=True)

    flagged = predict_on_page(page, "phantoms", foreign)
    assert flagged["ood"] and flagged["flagged"] and flagged["role"] == "alert"
    assert FOREIGN in flagged["text"] and "colour picture" in flagged["text"]
    assert page.is_visible("#guard .ood-title")
    grey = page.evaluate("c => { const e = document.createElement('i'); e.style.color = c; document.body.append(e); "
                         "const v = getComputedStyle(e).color; e.remove(); return v; }", "#b6bdc6")
    assert set(flagged["fills"]) == {grey} and flagged["notes"] == 1  # greyed, and said so in words
    assert len(page_answer(page)["label"][1]) == 3  # the probabilities are still shown
    assert page.evaluate("window.lastAnswer")["extras"]["input_guard"]["in_distribution"] is False
    page.screenshot(path=str(tmp_path / "page-foreign.png"), full_page=True)
    print(f"screenshots: {tmp_path}/page-in-distribution.png, page-foreign.png")

    unguarded = predict_on_page(page, "three_tasks", png_path)
    assert "No input guard is fitted" in page.inner_text("#model-card")
    assert not unguarded["ood"] and "No input guard is fitted" in unguarded["text"]
    assert not problems, problems

    if not HAS_SETS:
        pytest.skip("TaskHead has no prediction_sets yet: the page's set lines are not checked")
    answer = page.evaluate("window.lastAnswer")
    chosen = answer["tasks"]["malignancy"]["prediction_set"]
    assert len(chosen) == 1  # quantile 0.5: a binary set holds the more probable class alone
    assert unguarded["sets"]["malignancy"] == [chosen[0], f"Prediction set (90% coverage): {chosen[0]}"]
    assert unguarded["sets"]["organ"] is None and unguarded["sets"]["findings"] is None  # no sets: no line
    many = predict_on_page(page, "phantoms", png_path)["sets"]["label"]  # too few calibration images: all three
    names = page.evaluate("window.lastAnswer")["tasks"]["label"]["prediction_set"]
    assert many[0] == "|".join(names) and len(names) > 1
    assert many[1].startswith("Prediction set (90% coverage): " + ", ".join(names[:-1]) + f" or {names[-1]}")
    assert many[1].endswith("the model cannot tell these apart for this image")

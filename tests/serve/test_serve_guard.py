"""The input guard through the server: each answer's `extras.input_guard`, the model card's account of the guard
and of prediction sets, the audit log's columns (old logs migrated), and a model without a guard."""

from __future__ import annotations

import io
import shutil
import sqlite3

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medclass.inference import load_predictor
from medclass.inference.guard import NOT_FITTED
from medclass.serve import AuditLog, create_app
from medclass.serve.audit import GUARD_COLUMNS

from .conftest import wait_ready


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def noise_photo() -> bytes:
    """A colour picture of noise: nothing like the grayscale phantoms the model learnt from."""
    return png(Image.fromarray(np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)))


def blank() -> bytes:
    return png(Image.new("L", (32, 32), 128))


def predict(client, data: bytes) -> dict:
    response = client.post("/predict", files={"file": ("upload.png", data, "image/png")})
    assert response.status_code == 200, response.text
    return response.json()


def test_served_answers_flag_foreign_uploads(client, evaluated_run, png_path, audit_db):
    data = png_path.read_bytes()
    expected, = load_predictor(evaluated_run).predictions([png_path])
    answers = {"phantom": predict(client, data), "noise": predict(client, noise_photo()),
               "blank": predict(client, blank())}
    guards = {name: answer["extras"]["input_guard"] for name, answer in answers.items()}
    wanted = expected.extras["input_guard"]  # as the Predictor assesses the same file
    assert guards["phantom"] | {"score": 0} == wanted | {"score": 0}
    assert guards["phantom"]["score"] == pytest.approx(wanted["score"], rel=1e-5)
    assert guards["phantom"]["fitted"] is True and guards["phantom"]["in_distribution"] is True
    assert guards["phantom"]["reasons"] == [] and guards["phantom"]["detector"] == "knn"
    for name in ("noise", "blank"):
        guard = guards[name]
        assert guard["in_distribution"] is False, (name, guard)
        assert guard["reasons"] and guard["message"].startswith("this image does not look like")
        assert set(answers[name]["tasks"]["label"]["probabilities"]) == {"benign", "malignant", "normal"}
    assert any("colour picture" in reason for reason in guards["noise"]["reasons"])
    assert any("blank" in reason for reason in guards["blank"]["reasons"])

    rows = {row["id"]: row for row in AuditLog(audit_db, create=False).rows()}
    for name, answer in answers.items():
        row = rows[answer["audit_id"]]
        assert row["guard_score"] == pytest.approx(guards[name]["score"])
        assert row["in_distribution"] is guards[name]["in_distribution"]
        assert row["guard_reasons"] == guards[name]["reasons"]
        assert row["outputs"]["extras"]["input_guard"] == guards[name]
        sets = {task: t["prediction_set"] for task, t in answer["tasks"].items() if "prediction_set" in t}
        assert row["prediction_sets"] == (sets or None)
    with sqlite3.connect(audit_db) as db:  # plain SQL: the columns are there to be counted
        flagged, = db.execute("SELECT count(*) FROM predictions WHERE in_distribution = 0").fetchone()
    assert flagged == 2


def test_model_card_describes_the_guard_and_the_sets(client, evaluated_run):
    model, = client.get("/models").json()["models"]
    guard = load_predictor(evaluated_run).guard
    assert model["input_guard"] | {"description": None} == {
        "fitted": True, "detector": "knn", "description": None, "threshold": pytest.approx(guard.threshold),
        "accept": pytest.approx(guard.accept), "val_accepted": pytest.approx(guard.record["val_accepted"]),
        "colour_trained": guard.stats.colour_trained}
    answer = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["responses"]["200"]["description"]
    assert "extras.input_guard" in answer and "prediction_set" in answer  # the schema says what an answer holds
    task, = model["tasks"]
    head = load_predictor(evaluated_run).heads[0]
    sets = getattr(head, "prediction_sets", None)
    if sets is None:
        assert task["prediction_sets"] is None
    else:
        assert task["prediction_sets"]["coverage"] == pytest.approx(sets.coverage)
        assert f"{sets.coverage:.0%} coverage" in task["prediction_sets"]["description"]


@pytest.fixture(scope="module")
def unguarded_run(evaluated_run, tmp_path_factory):
    """The evaluated run with its input guard removed, as an artefact trained before the guard existed."""
    from medclass.core.artifact import ModelArtifact

    run = shutil.copytree(evaluated_run, tmp_path_factory.mktemp("unguarded") / "old")
    artifact = ModelArtifact.load(run)
    artifact.guard, artifact.guard_tensors = None, {}
    artifact.save(run)
    return run


def test_a_model_without_a_guard_says_so(unguarded_run, png_path, tmp_path):
    with TestClient(create_app({"old": unguarded_run}, audit_url=tmp_path / "audit.sqlite")) as client:
        assert wait_ready(client).status_code == 200
        assert client.get("/models").json()["models"][0]["input_guard"] == {"fitted": False, "message": NOT_FITTED}
        guard = predict(client, png_path.read_bytes())["extras"]["input_guard"]
        assert guard == {"fitted": False, "in_distribution": None, "reasons": [], "message": NOT_FITTED}
        flagged = predict(client, blank())["extras"]["input_guard"]  # the cheap checks still run
    assert flagged["fitted"] is False and flagged["in_distribution"] is False and flagged["reasons"]
    first, second = AuditLog(tmp_path / "audit.sqlite", create=False).rows()
    assert first["guard_score"] is None and first["in_distribution"] is None
    assert second["guard_score"] is None and second["in_distribution"] is False


OLD_SCHEMA = """CREATE TABLE predictions (id INTEGER NOT NULL PRIMARY KEY, time DATETIME, model VARCHAR,
    model_version VARCHAR(64), input_sha256 VARCHAR(64), outputs JSON, latency_ms FLOAT, client VARCHAR)"""


def test_an_old_audit_log_still_opens_and_is_migrated(tmp_path):
    """A log written before the guard columns: `medclass log` reads it as it is; the server adds the columns."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(OLD_SCHEMA)
        db.execute("INSERT INTO predictions VALUES (1, '2024-01-02 03:04:05.000000', 'demo', ?, ?, ?, 1.5, NULL)",
                   ("a" * 64, "b" * 64, '{"tasks": {"label": {"label": "benign"}}}'))
    old, = AuditLog(path, create=False).rows()  # reading writes nothing
    assert old["outputs"] == {"tasks": {"label": {"label": "benign"}}} and old["in_distribution"] is None
    with sqlite3.connect(path) as db:
        assert not {r[1] for r in db.execute("PRAGMA table_info(predictions)")} & set(GUARD_COLUMNS)

    audit = AuditLog(path)  # as the server opens it
    outputs = {"tasks": {"label": {"label": "benign", "prediction_set": ["benign", "normal"]}},
               "extras": {"input_guard": {"fitted": True, "in_distribution": False, "score": 2.5,
                                          "reasons": ["blank or near-constant image"]}}}
    audit.record("demo", "a" * 64, "c" * 64, outputs, 2.0)
    audit.dispose()
    first, second = AuditLog(path, create=False).rows()
    assert first["model"] == "demo" and first["guard_score"] is None and first["prediction_sets"] is None
    assert (second["guard_score"], second["in_distribution"]) == (2.5, False)
    assert second["guard_reasons"] == ["blank or near-constant image"]
    assert second["prediction_sets"] == {"label": ["benign", "normal"]}
    out = tmp_path / "log.csv"
    assert AuditLog(path, create=False).export_csv(out) == 2
    assert out.read_text().splitlines()[0].endswith(",".join(GUARD_COLUMNS))

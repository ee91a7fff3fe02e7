"""`medclass log` prints and exports the audit log; `medclass serve` checks its runs before opening a port."""

from __future__ import annotations

import csv
import json
import shutil

from typer.testing import CliRunner

from medclass.cli import app

runner = CliRunner()


def test_log_prints_and_exports(client, png_path, audit_db, tmp_path):
    answers = [client.post("/predict", files={"file": ("a.png", png_path.read_bytes())}).json() for _ in range(2)]
    result = runner.invoke(app, ["log", str(audit_db)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "2 prediction(s)" and len(lines) == 3
    label = answers[0]["tasks"]["label"]["label"]
    assert f"demo\t{answers[0]['model_version'][:12]}\t{answers[0]['input_sha256'][:12]}\tlabel={label}" in lines[0]

    out = tmp_path / "log.csv"
    result = runner.invoke(app, ["log", f"sqlite:///{audit_db}", "--csv", str(out)])
    assert result.exit_code == 0 and "2 prediction(s) written" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert [int(r["id"]) for r in rows] == [a["audit_id"] for a in answers]
    assert json.loads(rows[0]["outputs"])["tasks"] == answers[0]["tasks"]

    served_here = tmp_path / "served_here"  # the folder serve ran in: its default medclass-audit.sqlite
    served_here.mkdir()
    shutil.copy(audit_db, served_here / "medclass-audit.sqlite")
    result = runner.invoke(app, ["log", str(served_here)])
    assert result.exit_code == 0 and result.stdout.strip().splitlines()[-1] == "2 prediction(s)"


def test_log_of_a_missing_database(tmp_path):
    result = runner.invoke(app, ["log", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2 and "no such audit database" in result.output


def test_serve_starts_uvicorn_on_the_runs(evaluated_run, tmp_path, monkeypatch):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: started.update(app=app, host=host, port=port))
    models = tmp_path / "models"
    shutil.copytree(evaluated_run, models / "breast")
    (models / "notes").mkdir()  # not a run: skipped
    result = runner.invoke(app, ["serve", "--models-dir", str(models), "--port", "8123", "--max-upload-mb", "1",
                                 "--decode-memory-mb", "1024", "--upload-timeout", "5",
                                 "--audit-db", str(tmp_path / "a.sqlite")], env={"MEDCLASS_API_KEY": "k"})
    assert result.exit_code == 0, result.output
    assert "serving breast on http://127.0.0.1:8123" in result.stdout and "API key required" in result.stdout
    assert started["port"] == 8123 and started["app"].title == "medclass"
    assert started["app"].state.decode_slots == 2 and started["app"].state.upload_timeout == 5  # 1024 / 512 MiB


def test_serve_refuses_bad_runs(tmp_path):
    assert "give run folders or --models-dir" in runner.invoke(app, ["serve"]).output
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 2 and "holds no model.safetensors" in result.output
    result = runner.invoke(app, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such run folder" in result.output
    result = runner.invoke(app, ["serve", str(tmp_path), "--upload-timeout", "0"])
    assert result.exit_code == 2 and "--upload-timeout must be positive; got 0" in result.output
    result = runner.invoke(app, ["serve", str(tmp_path), "--decode-memory-mb", "100"])
    assert result.exit_code == 2 and "at least 512 MiB" in result.output

"""The audit log on a real PostgreSQL server, started by the fixture below in a temporary data directory.

Skipped, naming what is missing, where PostgreSQL's server binaries or the psycopg driver are not installed
(`apt-get install postgresql`, `pip install 'psycopg[binary]'`). The server runs as the `postgres` user when the
tests run as root (initdb and postgres refuse root), listens on 127.0.0.1 on a free port, trusts every local
connection and is stopped at teardown; the system's own cluster is never touched.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from medclass.cli import app as cli
from medclass.core.errors import MedclassError
from medclass.serve import create_app
from medclass.serve.audit import AuditLog

from .conftest import free_port, wait_ready

# Not UTC on purpose: a production server's time zone is often local, and the log must still read back in UTC.
SERVER_TIMEZONE = "Asia/Kolkata"  # +05:30, no daylight saving time
runner = CliRunner()
_databases = itertools.count()


def pg_bindir() -> Path | None:
    """PostgreSQL's server binaries: `pg_config --bindir`, else Debian's /usr/lib/postgresql/N/bin (newest N)."""
    candidates = []
    if shutil.which("pg_config"):
        done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if done.returncode == 0:
            candidates.append(Path(done.stdout.strip()))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    return next((d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()), None)


def server_user() -> tuple[list[str], tuple[int, int] | None]:
    """The prefix that runs a command as a user PostgreSQL accepts, and that user's (uid, gid) to chown to
    (None: ourselves). Skips when we are root and there is no `postgres` user or no runuser."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return [], None
    import pwd

    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and no 'postgres' user to run the PostgreSQL server as (initdb refuses root)")
    if not shutil.which("runuser"):
        pytest.skip("running as root and no runuser to start the PostgreSQL server as 'postgres'")
    return ["runuser", "-u", "postgres", "--"], (user.pw_uid, user.pw_gid)


@pytest.fixture(scope="module")
def postgres_server():
    """A throw-away PostgreSQL server: yields its base URL (no database name); stopped and deleted afterwards."""
    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver) is not installed: "
                                          "pip install 'psycopg[binary]'")
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: no pg_config and no "
                    "/usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
    as_user, owner = server_user()
    # Not pytest's tmp_path: its parent is private to root, and the server runs as 'postgres'.
    root = Path(tempfile.mkdtemp(prefix="medclass-pg-"))
    data, log, port = root / "data", root / "server.log", free_port()
    if owner:
        os.chown(root, *owner)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=60)

    try:
        done = run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-locale", "--no-sync")
        assert done.returncode == 0, f"initdb failed: {done.stderr.strip()}"
        options = (f"-h 127.0.0.1 -p {port} -k {shlex.quote(str(root))} -F -c full_page_writes=off "
                   f"-c timezone={SERVER_TIMEZONE}")  # -F: no fsync, the data is thrown away
        done = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "30", "-o", options, "start")
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"PostgreSQL did not start on port {port}: {done.stderr.strip()}\n{tail}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server):
    """A fresh, empty database on the server (CREATE DATABASE takes milliseconds), so each test sees only its rows."""
    name = f"medclass_{next(_databases)}"
    admin = create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return f"{postgres_server}/{name}"


def _query(url: str, sql: str) -> list[dict]:
    """Rows of plain SQL on `url`, not read through AuditLog."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(text(sql)).mappings()]
    finally:
        engine.dispose()


# Floats that a lossy JSON path would change: shortest repr needing 17 digits, repeating, tiny, subnormal, huge.
OUTPUTS = [
    {"tasks": {"label": {"label": "benign", "probabilities": {"benign": 0.1 + 0.2, "malignant": 1 / 3,
                                                             "normal": 1 - (0.1 + 0.2) - 1 / 3},
                         "threshold": None, "calibrated": True}}},
    {"tasks": {"findings": {"label": ["effusion", "nodule"], "probabilities": {"effusion": 5e-324, "nodule": 1e-300},
                            "thresholds": [0.5, 0.123456789012345678]}}, "explain": "gradcam"},
    {"tasks": {"findings": {"label": [], "probabilities": {"épanchement": 1.7976931348623157e308, "肺": 0.0}}}},
]


def test_audit_log_round_trips_on_postgres(pg_url, tmp_path):
    audit = AuditLog(pg_url)
    long_name = "m" * 250  # a run folder name can be 255 bytes; PostgreSQL enforces VARCHAR lengths, SQLite not
    before = datetime.now(timezone.utc)
    ids = [audit.record(long_name if i == 2 else "demo", "a" * 64, f"{i:064x}", outputs, 12.345678901234567 + i,
                        client="127.0.0.1" if i else None) for i, outputs in enumerate(OUTPUTS)]
    after = datetime.now(timezone.utc)
    audit.dispose()
    assert ids == sorted(ids) and len(set(ids)) == 3

    rows = list(AuditLog(pg_url, create=False).rows())  # a second log on the same database reads what was written
    assert [row["id"] for row in rows] == ids
    assert [row["outputs"] for row in rows] == OUTPUTS  # exact float equality, nested dicts and lists, unicode
    assert [row["latency_ms"] for row in rows] == [12.345678901234567 + i for i in range(3)]
    assert [row["model"] for row in rows] == ["demo", "demo", long_name]
    assert [row["client"] for row in rows] == [None, "127.0.0.1", "127.0.0.1"]
    for row in rows:
        when = datetime.fromisoformat(row["time"])
        assert when.utcoffset() == timedelta(0), row["time"]  # UTC, though the server's time zone is +05:30
        assert before - timedelta(seconds=1) <= when <= after + timedelta(seconds=1)

    out = tmp_path / "log.csv"
    assert AuditLog(pg_url).export_csv(out) == 3  # opening again with create=True keeps the rows
    exported = list(csv.DictReader(out.open()))
    assert [int(r["id"]) for r in exported] == ids
    assert [json.loads(r["outputs"]) for r in exported] == OUTPUTS
    assert all(r["time"].endswith("+00:00") for r in exported)

    columns = {r["column_name"]: r["data_type"] for r in _query(pg_url, "SELECT column_name, data_type FROM "
                                                                        "information_schema.columns WHERE "
                                                                        "table_name = 'predictions'")}
    assert columns["time"] == "timestamp with time zone" and columns["latency_ms"] == "double precision"


def test_served_predictions_land_in_postgres(evaluated_run, demo_data, pg_url):
    images = [path.read_bytes() for path in sorted(demo_data.rglob("*.png"))[:6]]
    with TestClient(create_app({"demo": evaluated_run}, audit_url=pg_url)) as client:
        assert wait_ready(client).status_code == 200

        def post(data: bytes) -> dict:
            response = client.post("/predict", files={"file": ("x.png", data)})
            assert response.status_code == 200, response.text
            return response.json()

        answers = [post(images[0]), post(images[1])]
        with ThreadPoolExecutor(4) as pool:  # concurrent audit writes share the engine's connection pool
            answers += list(pool.map(post, images))
    sent = images[:2] + images

    stored = {row["id"]: row for row in _query(pg_url, "SELECT * FROM predictions")}
    assert sorted(stored) == sorted(answer["audit_id"] for answer in answers)  # one row per answer, no other
    for answer, data in zip(answers, sent):
        row = stored[answer["audit_id"]]
        assert row["model"] == "demo" and row["model_version"] == answer["model_version"]
        assert row["input_sha256"] == answer["input_sha256"] == hashlib.sha256(data).hexdigest()
        assert row["outputs"] == {"tasks": answer["tasks"], "extras": answer["extras"]}
        guard = answer["extras"]["input_guard"]  # the guard's verdict in its own columns too
        assert row["guard_score"] == guard["score"] and row["in_distribution"] is guard["in_distribution"]
        assert row["guard_reasons"] == guard["reasons"]
        sets = {task: t["prediction_set"] for task, t in answer["tasks"].items() if "prediction_set" in t}
        assert row["prediction_sets"] == (sets or None)
        assert row["client"] == "testclient" and row["latency_ms"] > 0
        assert row["time"].utcoffset() is not None  # timestamptz: an instant, not a wall-clock reading
    assert [row["id"] for row in AuditLog(pg_url, create=False).rows()] == sorted(stored)


def test_an_old_postgres_log_is_migrated(pg_url):
    """A log made before the guard columns: read as it is, then given them (nullable) when a server opens it."""
    engine = create_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE predictions (id SERIAL PRIMARY KEY, time TIMESTAMPTZ, model VARCHAR, "
                                "model_version VARCHAR(64), input_sha256 VARCHAR(64), outputs JSON, "
                                "latency_ms DOUBLE PRECISION, client VARCHAR)"))
        connection.execute(text("INSERT INTO predictions (time, model, model_version, input_sha256, outputs, "
                                "latency_ms) VALUES (now(), 'demo', 'a', 'b', '{\"tasks\": {}}', 1.0)"))
    engine.dispose()
    old, = AuditLog(pg_url, create=False).rows()
    assert old["outputs"] == {"tasks": {}} and old["guard_score"] is None
    audit = AuditLog(pg_url)
    outputs = {"tasks": {"label": {"label": "x", "prediction_set": ["x", "y"]}},
               "extras": {"input_guard": {"score": 0.25, "in_distribution": False, "reasons": ["blank"]}}}
    audit.record("demo", "a", "c", outputs, 2.0)
    audit.dispose()
    AuditLog(pg_url).dispose()  # a second server opening it finds nothing left to add
    rows = _query(pg_url, "SELECT guard_score, in_distribution, guard_reasons, prediction_sets FROM predictions "
                          "ORDER BY id")
    assert rows == [{"guard_score": None, "in_distribution": None, "guard_reasons": None, "prediction_sets": None},
                    {"guard_score": 0.25, "in_distribution": False, "guard_reasons": ["blank"],
                     "prediction_sets": {"label": ["x", "y"]}}]


def test_log_command_reads_postgres(pg_url, tmp_path):
    audit = AuditLog(pg_url)
    ids = [audit.record("demo", "b" * 64, f"{i:064x}", outputs, 3.25, "10.0.0.1") for i, outputs in enumerate(OUTPUTS)]
    audit.dispose()

    result = runner.invoke(cli, ["log", pg_url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "3 prediction(s)" and len(lines) == 4
    assert lines[0].split("\t")[0].endswith("+00:00")
    assert "\tdemo\tbbbbbbbbbbbb\t000000000000\tlabel=benign\t3.2 ms\t10.0.0.1" in lines[0]
    assert "\tfindings=effusion|nodule\t" in lines[1] and "\tfindings=(no finding)\t" in lines[2]

    out = tmp_path / "log.csv"
    result = runner.invoke(cli, ["log", pg_url, "--csv", str(out)])
    assert result.exit_code == 0 and f"3 prediction(s) written to {out}" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert [int(r["id"]) for r in rows] == ids and [json.loads(r["outputs"]) for r in rows] == OUTPUTS


def test_database_errors_name_the_database(postgres_server, pg_url):
    closed = f"postgresql+psycopg://medclass:s3cret@127.0.0.1:{free_port()}/medclass"  # nothing listens there
    tic = time.perf_counter()
    with pytest.raises(MedclassError, match="cannot open the audit database") as error:
        AuditLog(closed)
    message = str(error.value)
    assert "127.0.0.1" in message and "\n" not in message and "s3cret" not in message  # password never shown
    assert time.perf_counter() - tic < 10
    with pytest.raises(MedclassError, match="cannot open the audit database"):
        create_app({"demo": "unused"}, audit_url=closed)

    result = runner.invoke(cli, ["log", closed])
    assert result.exit_code == 2 and "cannot open the audit database" in result.output
    assert "Traceback" not in result.output and "s3cret" not in result.output

    result = runner.invoke(cli, ["log", pg_url])  # reachable, but serve never wrote there: no table
    assert result.exit_code == 2 and "not a medclass audit log" in result.output
    result = runner.invoke(cli, ["log", f"{postgres_server}/missing_database"])
    assert result.exit_code == 2 and "missing_database" in result.output and "Traceback" not in result.output


def test_serve_on_postgres_hides_the_password(evaluated_run, pg_url, monkeypatch):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: started.update(app=app))
    with_password = pg_url.replace("postgres@", "postgres:s3cret@")  # trust auth: accepted, password unused
    result = runner.invoke(cli, ["serve", str(evaluated_run), "--audit-db", with_password])
    assert result.exit_code == 0, result.output
    assert "audit log: postgresql+psycopg://postgres:***@127.0.0.1:" in result.stdout and "s3cret" not in result.stdout
    assert started["app"].state.audit.url == with_password  # shown hidden, connected with it
    assert _query(pg_url, "SELECT count(*) AS n FROM predictions") == [{"n": 0}]  # the table, made by serve

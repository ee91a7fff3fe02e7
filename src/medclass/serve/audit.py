"""The audit log of served predictions: one row per answered /predict, in any database SQLAlchemy reaches.

A row records what was asked and answered, never the image: UTC time, model name and version (sha256 of what
answers: the weights or exported network and the metadata that changes an answer), sha256 of the uploaded bytes,
the outputs as JSON, latency and the client. Only requests that produced a prediction are logged; refused uploads
(bad type, too large, corrupt, unauthorised) are answered with their error and leave no row, so every row is a
prediction someone received.

The input guard's verdict (score, in-distribution flag, reasons) and each task's prediction set are in the outputs
JSON as answered, and also in columns of their own, so an auditor can count flagged answers in plain SQL. Those
columns came later: a database made before them gets them added (nullable, old rows NULL) when the server opens it,
and reading (`medclass log`, which never writes) reads whichever columns the table has.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, create_engine, inspect, make_url, select, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from medclass.core.errors import MedclassError

DEFAULT_DB = "medclass-audit.sqlite"
# the columns added after the first release, each nullable: what an older table is migrated with
GUARD_COLUMNS = ("guard_score", "in_distribution", "guard_reasons", "prediction_sets")
COLUMNS = ("id", "time", "model", "model_version", "input_sha256", "outputs", "latency_ms", "client", *GUARD_COLUMNS)


class AuditUnavailable(MedclassError):
    """The database refused a row: the server withholds that prediction rather than answer unrecorded."""


class Base(DeclarativeBase):
    pass


class Prediction(Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # Names and clients unbounded: PostgreSQL enforces VARCHAR(n) (SQLite ignores it), and a run folder's name,
    # which names its model, may be up to 255 bytes: a bounded column would turn a long name into failed predictions.
    model: Mapped[str] = mapped_column(String, index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    input_sha256: Mapped[str] = mapped_column(String(64), index=True)
    outputs: Mapped[dict] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    client: Mapped[str | None] = mapped_column(String, nullable=True)
    # the input guard's score (NULL: no guard fitted) and verdict (NULL: not assessed), and why it flagged
    guard_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    in_distribution: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    guard_reasons: Mapped[list | None] = mapped_column(JSON, nullable=True)
    prediction_sets: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # {task: [classes]}, tasks with sets


def database_url(target: str | Path | None) -> str:
    """An SQLAlchemy URL as given (it has "://"), else a path to an SQLite file (default: DEFAULT_DB here)."""
    target = str(target or DEFAULT_DB)
    return target if "://" in target else f"sqlite:///{Path(target).resolve()}"


def shown_url(url: str) -> str:
    """The URL fit for messages and the console: its password, if any, as ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class AuditLog:
    """Append and read prediction rows. `target`: an SQLAlchemy URL or an SQLite file path. `create`: make the
    table when missing (the server); reading (`medclass log`) refuses a database that holds no log."""

    def __init__(self, target: str | Path | None = None, create: bool = True):
        self.url = database_url(target)
        self.name = shown_url(self.url) if "://" in str(target or "") else str(target or DEFAULT_DB)
        if not create and self.url.startswith("sqlite:///") and not Path(self.url[len("sqlite:///"):]).is_file():
            raise MedclassError(f"{self.name}: no such audit database")
        try:
            self.engine = create_engine(self.url)
            if create:
                Base.metadata.create_all(self.engine)
                add_missing_columns(self.engine)
            else:  # connect now: an unreachable server is told apart from a database that holds no log
                has_log = inspect(self.engine).has_table(Prediction.__tablename__)
        except (SQLAlchemyError, ImportError) as exc:  # ImportError: the URL's database driver is not installed
            raise MedclassError(f"{self.name}: cannot open the audit database ({_first_line(exc)})") from None
        if not create and not has_log:
            self.engine.dispose()
            raise MedclassError(f"{self.name}: not a medclass audit log (no table {Prediction.__tablename__!r})")
        self.present = table_columns(self.engine)  # what `rows` reads: an old log lacks GUARD_COLUMNS

    def record(self, model: str, model_version: str, input_sha256: str, outputs: dict, latency_ms: float,
               client: str | None = None) -> int:
        """Store one served prediction; returns its row id. AuditUnavailable when the database refuses it."""
        row = Prediction(time=datetime.now(timezone.utc), model=model, model_version=model_version,
                         input_sha256=input_sha256, outputs=outputs, latency_ms=latency_ms, client=client,
                         **screening(outputs))
        try:
            with Session(self.engine) as session, session.begin():
                session.add(row)
                session.flush()
                return row.id
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"{self.name}: the audit log could not record the prediction "
                                   f"({_first_line(exc)})") from None

    def rows(self) -> Iterator[dict]:
        """Every row, oldest first, as plain values (time in ISO 8601 UTC); columns the table lacks (an old log)
        read as None."""
        table = Prediction.__table__
        read = [table.c[name] for name in COLUMNS if name in self.present]
        try:
            with Session(self.engine) as session:
                for row in session.execute(select(*read).order_by(table.c.id)).mappings():
                    yield {name: row.get(name) for name in COLUMNS} | {"time": _utc(row["time"]).isoformat()}
        except SQLAlchemyError as exc:
            raise MedclassError(f"{self.name}: not a medclass audit log ({_first_line(exc)})") from None

    def export_csv(self, path: str | Path) -> int:
        """Write every row to a CSV (outputs as JSON text); returns the number of rows."""
        count = 0
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            for row in self.rows():
                as_json = {name: json.dumps(row[name], sort_keys=True) for name in ("outputs", "guard_reasons",
                                                                                   "prediction_sets")
                           if row[name] is not None}
                writer.writerow(row | as_json)
                count += 1
        return count

    def dispose(self) -> None:
        self.engine.dispose()


def screening(outputs: dict) -> dict:
    """The GUARD_COLUMNS' values of one answer's outputs: the input guard's verdict (`extras.input_guard`) and
    each task's prediction set; None where the answer has none (outputs logged without them)."""
    guard = (outputs.get("extras") or {}).get("input_guard") or {}
    sets = {task: answer["prediction_set"] for task, answer in (outputs.get("tasks") or {}).items()
            if isinstance(answer, dict) and answer.get("prediction_set") is not None}
    return {"guard_score": guard.get("score"), "in_distribution": guard.get("in_distribution"),
            "guard_reasons": guard.get("reasons"), "prediction_sets": sets or None}


def table_columns(engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(Prediction.__tablename__)}


def add_missing_columns(engine) -> None:
    """Bring a log made before GUARD_COLUMNS up to date: add each one missing (nullable, so old rows read NULL)."""
    missing = [name for name in GUARD_COLUMNS if name not in table_columns(engine)]
    if not missing:
        return
    # PostgreSQL: IF NOT EXISTS, so two servers opening one old log at once do not fail on each other's column
    guard = " IF NOT EXISTS" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as connection:
        for name in missing:
            kind = Prediction.__table__.c[name].type.compile(dialect=engine.dialect)
            connection.execute(text(f"ALTER TABLE {Prediction.__tablename__} ADD COLUMN{guard} {name} {kind}"))


def _utc(time: datetime) -> datetime:
    # SQLite keeps no time zone: what was written as UTC comes back naive. PostgreSQL's timestamptz comes back in
    # the session's time zone (the server's TimeZone setting, often local): convert, or the log reads +05:30.
    return time.astimezone(timezone.utc) if time.tzinfo else time.replace(tzinfo=timezone.utc)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {lines[0] if lines else ''}"


"""Seeded mutants of PNG, JPEG and DICOM files through /predict: every answer is a 200 with finite probabilities or
a JSON 4xx with a one-line reason, never a 500 (benchmarks/fuzz.py runs thousands)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from medclass.harness.fuzz import fuzz_server
from medclass.serve import create_app

from .conftest import wait_ready


def test_no_mutant_upload_gets_a_500_or_a_malformed_answer(evaluated_run, audit_db):
    app = create_app({"demo": evaluated_run}, audit_url=audit_db)
    with TestClient(app, raise_server_exceptions=False) as client:  # a 500 is counted, not raised
        assert wait_ready(client).status_code == 200
        statuses = fuzz_server(client, seed=27, count=240)
    assert set(statuses) <= {200, 413, 415, 422}, statuses
    # the mutants reach both the model and the refusals
    assert statuses[200] > 10 and statuses[422] > 50 and sum(statuses.values()) == 240

"""Micro-batching: requests waiting together share a forward, each gets its own rows, failures reach every caller."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medclass.inference import load_predictor
from medclass.serve import create_app
from medclass.serve.batching import MicroBatcher

from .conftest import wait_ready


def slow_identity(sizes: list[int], delay: float = 0.05):
    """Work returning each item (a number) as its logit (views=1), after `delay`; records batch sizes."""
    def work(items: list[float]) -> np.ndarray:
        sizes.append(len(items))
        time.sleep(delay)
        return np.array(items, np.float32).reshape(1, -1, 1)

    return work


def test_waiting_requests_share_a_forward_and_get_their_own_rows():
    sizes: list[int] = []
    batcher = MicroBatcher(slow_identity(sizes), max_batch=8, lock=threading.Lock())
    try:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: batcher([float(i)]), range(12)))
    finally:
        batcher.close()
    assert [float(a[0, 0, 0]) for a in answers] == list(range(12))
    assert all(a.shape == (1, 1, 1) for a in answers)
    assert sum(sizes) == 12 and max(sizes) > 1 and max(sizes) <= 8  # they waited together, never above max_batch
    assert batcher.stats() == {"max_batch": 8, "forwards": len(sizes), "images": 12}


def test_max_batch_one_runs_one_forward_per_request():
    sizes: list[int] = []
    batcher = MicroBatcher(slow_identity(sizes, 0.01), max_batch=1, lock=threading.Lock())
    try:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda i: batcher([0.0]), range(6)))
    finally:
        batcher.close()
    assert sizes == [1] * 6


def test_a_failed_forward_reaches_every_waiting_caller_and_the_batcher_goes_on():
    calls = []

    def flaky(items: list) -> np.ndarray:
        calls.append(len(items))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return np.zeros((1, len(items), 1), np.float32)

    batcher = MicroBatcher(flaky, max_batch=4, lock=threading.Lock())
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            batcher([0.0])
        assert batcher([0.0, 1.0]).shape == (1, 2, 1)
    finally:
        batcher.close()


def test_concurrent_uploads_get_the_predictors_answers(evaluated_run, demo_data, audit_db):
    """Batched through the server, each upload's probabilities are those the Predictor gives that file alone."""
    paths = sorted(demo_data.rglob("*.png"))[:10]
    expected = load_predictor(evaluated_run).predict_proba(paths)
    with TestClient(create_app({"demo": evaluated_run}, audit_url=audit_db, max_batch=4)) as client:
        assert wait_ready(client).status_code == 200

        def post(path):
            response = client.post("/predict", files={"file": (path.name, path.read_bytes())})
            assert response.status_code == 200, response.text
            return list(response.json()["tasks"]["label"]["probabilities"].values())

        with ThreadPoolExecutor(10) as pool:
            got = list(pool.map(post, paths))
        stats = client.get("/models").json()["models"][0]["batching"]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert stats["images"] == len(paths) and stats["max_batch"] == 4 and stats["forwards"] <= len(paths)


def test_max_batch_must_be_positive(evaluated_run, audit_db):
    from medclass.core.errors import MedclassError

    with pytest.raises(MedclassError, match="max_batch"):
        create_app({"demo": evaluated_run}, audit_url=audit_db, max_batch=0)


def test_outputs_with_take_are_split_per_request():
    """The server's work returns NetworkOutputs (logits, features, cheap-check findings): each request gets its own
    images of all three."""
    from medclass.inference.predictor import NetworkOutputs

    def work(items: list[float]) -> NetworkOutputs:
        time.sleep(0.02)
        values = np.array(items, np.float32)
        return NetworkOutputs(values.reshape(1, -1, 1), values.reshape(-1, 1) * 10, [[f"item {v:g}"] for v in items])

    batcher = MicroBatcher(work, max_batch=8, lock=threading.Lock())
    try:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda i: batcher([float(i), float(i) + 0.5]), range(6)))
    finally:
        batcher.close()
    for i, part in enumerate(answers):
        assert part.logits[0, :, 0].tolist() == [i, i + 0.5] and part.features[:, 0].tolist() == [10 * i, 10 * i + 5]
        assert part.problems == [[f"item {i:g}"], [f"item {i + 0.5:g}"]]

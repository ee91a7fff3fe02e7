"""Shared fixtures: tiny generated data and one short training run reused by the model-level tests."""

from __future__ import annotations

import numpy as np
import pytest

from medclass.data.demo import generate_demo_data


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """Three-class ultrasound-like phantoms, 14 per class, 32 px."""
    return generate_demo_data(tmp_path_factory.mktemp("demo") / "data", n_per_class=14, size=32, seed=3)


@pytest.fixture(scope="session")
def trained_run(demo_data, tmp_path_factory):
    """A 2-epoch smallcnn run on the demo phantoms (seconds on a CPU)."""
    from medclass.training import TrainConfig, train

    run_dir = tmp_path_factory.mktemp("runs") / "demo"
    train(TrainConfig(data=str(demo_data), out=str(run_dir), model="smallcnn", epochs=2, batch_size=16, seed=0))
    return run_dir


def write_npz(path, shape=(8, 28, 28), n_classes=2, seed=0, **overrides):
    """A MedMNIST-layout npz with train/val/test, every class present in every split."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", shape[0]), ("val", max(4, shape[0] // 2)), ("test", max(4, shape[0] // 2))):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *shape[1:]), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % n_classes).reshape(-1, 1).astype(np.uint8)
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path

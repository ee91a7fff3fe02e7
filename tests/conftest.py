"""Shared fixtures: tiny generated data and one short training run reused by the model-level tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medclass.data.demo import generate_demo_data

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two pytest-xdist workers on a 2-core machine: each gets one core's worth of threads, as do the
    # processes its tests start (servers, DDP ranks), instead of two workers each spinning threads on both cores.
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


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


def kermany_like(root: Path, n_children: int = 24, layout: str = "flat") -> Path:
    """Chest X-ray folders whose file names carry the child: person<N>_<bacteria|virus>_<k>.jpeg, 1-3 per child.

    `layout="split"` ships train/test folders; test holds whole children, as in the real dataset.
    """
    for child in range(n_children):
        label = "PNEUMONIA" if child % 2 else "NORMAL"
        split = ("test" if child % 6 in (0, 1) else "train") if layout == "split" else None
        folder = root / split / label if split else root / label
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(1 + child % 3):
            kind = ("bacteria", "virus")[k % 2] if label == "PNEUMONIA" else "normal"
            value = (child * 7 + k * 3) % 256
            Image.fromarray(np.full((8, 8), value, np.uint8)).save(folder / f"person{child}_{kind}_{k}.jpeg")
    return root


MULTI_CANCER = {"Brain Cancer": ("brain", "Brain"), "Breast Cancer": ("breast", "Breast"),
                "Lung Cancer": ("lung", "Lung")}


def multi_cancer_like(root: Path, n_per_class: int = 12, size: int = 32, seed: int = 0) -> tuple[Path, Path]:
    """The Kaggle Multi Cancer layout, ROOT/<Organ Cancer>/<organ>_<benign|malignant>/*.png, and a mapping YAML
    giving each class folder its organ and malignancy. Organs differ in their background (stripes in one
    direction each), malignancy as in the demo phantoms (smooth oval vs spiculated lesion)."""
    from medclass.data.demo import phantom

    rng = np.random.default_rng(seed)
    mapping = []
    for k, (folder, (prefix, organ)) in enumerate(MULTI_CANCER.items()):
        stripes = np.sin(np.arange(size) * (0.6 + 0.5 * k))
        background = stripes[:, None] if k == 0 else stripes[None, :] if k == 1 else np.add.outer(stripes, stripes) / 2
        for malignancy in ("benign", "malignant"):
            out = root / folder / f"{prefix}_{malignancy}"
            out.mkdir(parents=True, exist_ok=True)
            mapping.append(f"{prefix}_{malignancy}: {{organ: {organ}, malignancy: {malignancy}}}")
            for i in range(n_per_class):
                pixels, _ = phantom(rng, malignancy, size)
                image = np.clip(pixels * 0.7 + 60 * (1 + background), 0, 255).astype(np.uint8)
                Image.fromarray(image).save(out / f"{prefix}_{malignancy}_{i:03d}.png")
    mapping_file = root.parent / f"{root.name}_mapping.yaml"
    mapping_file.write_text("\n".join(mapping) + "\n")
    return root, mapping_file


@pytest.fixture(scope="session")
def multi_cancer(tmp_path_factory):
    return multi_cancer_like(tmp_path_factory.mktemp("multicancer") / "Multi Cancer")


@pytest.fixture(scope="session")
def binary_data(tmp_path_factory):
    """Benign vs malignant phantoms (two classes of the demo data), 40 each, 32 px."""
    import shutil

    full = generate_demo_data(tmp_path_factory.mktemp("binary") / "full", n_per_class=40, size=32, seed=4)
    root = full.parent / "benign_malignant"
    for name in ("benign", "malignant"):
        shutil.copytree(full / name, root / name)
    return root


@pytest.fixture(scope="session")
def youden_run(binary_data, tmp_path_factory):
    """A short binary run whose threshold Youden's J chose on validation, temperature-scaled."""
    from medclass.training import TrainConfig, train

    run_dir = tmp_path_factory.mktemp("runs") / "youden"
    train(TrainConfig(data=str(binary_data), out=str(run_dir), model="smallcnn", epochs=4, batch_size=16, seed=0,
                      operating_point="youden", audit=False))
    return run_dir


def sixteen_bit_png(width: int, height: int, row: np.ndarray | None = None) -> bytes:
    """A valid 16-bit grayscale PNG of `height` copies of `row` (uint16, zeros by default), compressed as it is
    written: 10000 x 10000 takes ~190 KB and under a second, and never 200 MB of memory here."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = np.zeros(width, dtype=np.uint16) if row is None else row
    scanline = b"\x00" + row.astype(">u2").tobytes()  # filter type 0, big-endian samples
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(scanline) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)  # bit depth 16, colour type 0 (gray)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")

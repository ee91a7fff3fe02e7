"""Class folders, with and without split folders, and the demo phantoms."""

import numpy as np
import pytest
from PIL import Image

from medclass.data import open_dataset
from medclass.data.demo import generate_demo_data
from medclass.core.errors import DataError


def _png(path, value=0, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)


def test_flat_class_folders_have_no_split(tmp_path):
    for c in ("cyst", "tumour"):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", value=i)
    ds = open_dataset(tmp_path)
    assert ds.classes == ["cyst", "tumour"] and len(ds) == 6 and not ds.has_splits


def test_split_folders_with_aliases(tmp_path):
    for split in ("Training", "Testing"):
        for c in ("a", "b"):
            _png(tmp_path / split / c / "x.png")
    ds = open_dataset(tmp_path)
    assert {s.split for s in ds.samples} == {"train", "test"}


def test_empty_folder_and_single_class_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="no images found"):
        open_dataset(tmp_path)
    _png(tmp_path / "only" / "x.png")
    with pytest.raises(DataError, match="only one class"):
        open_dataset(tmp_path)
    with pytest.raises(DataError, match="nowhere: no such file or folder"):
        open_dataset(tmp_path / "nowhere")


def test_demo_data_is_deterministic_and_boxes_fit(tmp_path):
    a = generate_demo_data(tmp_path / "a", n_per_class=5, size=48, seed=7)
    b = generate_demo_data(tmp_path / "b", n_per_class=5, size=48, seed=7)
    img_a = np.array(Image.open(a / "malignant" / "malignant_0003.png"))
    assert np.array_equal(img_a, np.array(Image.open(b / "malignant" / "malignant_0003.png")))
    rows = (a / "boxes.csv").read_text().splitlines()[1:]
    assert len(rows) == 10  # one box per benign and malignant image, none for normal
    for row in rows:
        name, label, *box = row.split(",")
        x0, y0, x1, y1 = map(int, box)
        assert label in name and 0 <= x0 < x1 <= 48 and 0 <= y0 < y1 <= 48
    ds = open_dataset(a)
    assert ds.classes == ["benign", "malignant", "normal"] and len(ds) == 15

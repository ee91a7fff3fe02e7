"""MedMNIST .npz files (class indices, or 0/1 columns of findings) and medmnist:NAME lookup."""

import numpy as np
import pytest

from medclass.data import open_dataset
from medclass.data.npz import locate_medmnist, parse_medmnist_spec
from medclass.core.errors import DataError
from tests.conftest import write_npz


def test_grayscale_npz_keeps_splits_pixels_and_labels(tmp_path):
    path = write_npz(tmp_path / "toy.npz", shape=(6, 28, 28), n_classes=3)
    ds = open_dataset(path)
    assert ds.counts()["train"] == {"0": 2, "1": 2, "2": 2}
    assert {s.split for s in ds.samples} == {"train", "val", "test"}
    expected = np.load(path)["train_images"][4]
    image = ds.load_image(4)
    assert image.mode == "L" and np.array_equal(np.array(image), expected)
    assert ds.label_index(ds.samples[4]) == 1


def test_rgb_npz_of_another_size(tmp_path):
    ds = open_dataset(write_npz(tmp_path / "rgb.npz", shape=(4, 64, 64, 3)))
    image = ds.load_image(0)
    assert image.mode == "RGB" and image.size == (64, 64)


def test_known_medmnist_file_gets_class_names(tmp_path):
    pytest.importorskip("medmnist")
    ds = open_dataset(write_npz(tmp_path / "breastmnist.npz"))
    assert ds.classes == ["malignant", "normal, benign"]


def test_npz_without_expected_keys_names_file_and_keys(tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(DataError, match=r"odd\.npz: expected keys train_images.*found x"):
        open_dataset(path)


def test_labels_not_matching_images_is_an_error(tmp_path):
    path = write_npz(tmp_path / "bad.npz", train_labels=np.zeros((3, 1), np.uint8))
    with pytest.raises(DataError, match="train_labels has 3 labels for 8 images"):
        open_dataset(path)


def test_multilabel_train_labels_beside_single_label_splits_are_refused_clearly(tmp_path):
    path = write_npz(tmp_path / "multi.npz", train_labels=np.zeros((8, 14), np.uint8))  # val/test: (N, 1)
    with pytest.raises(DataError, match="train_labels has 14 findings per image \\(multi-label\\) but val_labels"):
        open_dataset(path)


def test_medmnist_spec_finds_local_file_in_data_root_or_env(tmp_path, monkeypatch):
    write_npz(tmp_path / "pneumoniamnist_64.npz", shape=(4, 64, 64))
    assert parse_medmnist_spec("medmnist:PneumoniaMNIST@64") == ("pneumoniamnist", 64)
    ds = open_dataset("medmnist:pneumoniamnist@64", data_root=str(tmp_path))
    assert ds.load_image(0).size == (64, 64)
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path))
    assert locate_medmnist("pneumoniamnist", 64) == tmp_path / "pneumoniamnist_64.npz"


def test_medmnist_offline_error_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDMNIST_ROOT", raising=False)
    with pytest.raises(DataError, match=rf"bloodmnist\.npz not found in {tmp_path}"):
        locate_medmnist("bloodmnist", 28, data_root=str(tmp_path), download=False)
    with pytest.raises(DataError, match="size must be one of"):
        parse_medmnist_spec("medmnist:bloodmnist@30")


def test_files_that_are_not_npz_archives_are_named_as_such(tmp_path):
    (tmp_path / "text.npz").write_text("train_images,train_labels\n")
    with pytest.raises(DataError, match=r"text.npz: not an .npz archive") as text_error:
        open_dataset(tmp_path / "text.npz")
    assert "allow_pickle" not in str(text_error.value)  # numpy's hint would point at an unsafe load
    np.save(tmp_path / "single.npy", np.zeros((2, 4, 4)))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(DataError, match=r"single.npz: a single .npy array, not an .npz archive"):
        open_dataset(tmp_path / "single.npz")
    np.savez(tmp_path / "objects.npz", train_images=np.array([{"a": 1}] * 2, dtype=object), train_labels=np.zeros(2))
    with pytest.raises(DataError, match=r"objects.npz: train_images holds pickled Python objects"):
        open_dataset(tmp_path / "objects.npz")


def multi_hot(n: int, width: int = 3) -> np.ndarray:
    """Row i has finding i % width, plus finding 0 on every fourth row, and none on rows 3, 7, ...; 0/1 uint8."""
    labels = np.zeros((n, width), np.uint8)
    for i in range(n):
        if i % 4 != 3:
            labels[i, i % width] = 1
        if i % 4 == 0:
            labels[i, 0] = 1
    return labels


def test_multi_hot_labels_become_a_multilabel_task(tmp_path):
    path = write_npz(tmp_path / "toy3.npz", train_labels=multi_hot(8), val_labels=multi_hot(4),
                     test_labels=multi_hot(4))
    ds = open_dataset(path)
    assert ds.classes == ["0", "1", "2"] and ds.multilabel == ("label",) and ds.kind() == "multilabel"
    train = [s.labels["label"] for s in ds.samples if s.split == "train"]
    assert train == [("0",), ("1",), ("2",), (), ("0", "1"), ("2",), ("0",), ()]
    assert ds.counts()["train"] == {"0": 3, "1": 2, "2": 2}  # images with each finding


def test_chestmnist_findings_get_their_names(tmp_path):
    pytest.importorskip("medmnist")
    labels = np.zeros((8, 14), np.uint8)
    labels[0, [2, 4]] = 1  # effusion and mass
    path = write_npz(tmp_path / "chestmnist.npz", train_labels=labels, val_labels=np.zeros((4, 14), np.uint8),
                     test_labels=np.zeros((4, 14), np.uint8))
    ds = open_dataset(path)
    assert ds.classes[:3] == ["atelectasis", "cardiomegaly", "effusion"] and len(ds.classes) == 14
    assert ds.samples[0].labels["label"] == ("effusion", "mass") and ds.samples[1].labels["label"] == ()


def test_multi_hot_values_other_than_0_and_1_name_the_key(tmp_path):
    bad = multi_hot(4)
    bad[1, 2] = 2
    path = write_npz(tmp_path / "bad.npz", train_labels=multi_hot(8), val_labels=bad, test_labels=multi_hot(4))
    with pytest.raises(DataError, match=r"bad.npz: val_labels is multi-label, shape \(4, 3\) .*expected only 0 and 1, "
                                        r"found 2"):
        open_dataset(path)
    mixed = write_npz(tmp_path / "mixed.npz", train_labels=multi_hot(8), test_labels=multi_hot(4, width=5))
    with pytest.raises(DataError, match=r"mixed.npz: train_labels has 3 findings per image \(multi-label\) but "
                                        r"val_labels has one class index per image"):
        open_dataset(mixed)


def test_retinamnist_grades_are_ordinal_and_the_model_is_scored_by_kappa(tmp_path):
    """MedMNIST describes RetinaMNIST as ordinal regression: its head is ordinal, so evaluation adds quadratic-
    weighted kappa; other sets are not."""
    from medclass.core.heads import heads_for

    retina = open_dataset(str(write_npz(tmp_path / "retinamnist.npz", shape=(10, 28, 28, 3), n_classes=5)))
    assert retina.meta["ordinal"] == ["label"] and heads_for(retina)[0].ordinal
    blood = open_dataset(str(write_npz(tmp_path / "bloodmnist.npz", shape=(10, 28, 28, 3), n_classes=8)))
    assert "ordinal" not in blood.meta and not heads_for(blood)[0].ordinal

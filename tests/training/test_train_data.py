"""What training does with the data before the first epoch: audit, unreadable files, given splits, multi-label."""

import shutil

import numpy as np
import pytest
import yaml

from medclass.data import open_dataset
from medclass.data.sources import data_root, portable_source
from medclass.data.splits import make_splits, save_splits
from medclass.core.errors import DataWarning, MedclassError
from medclass.core.rundir import RunDir
from medclass.training import TrainConfig, train
from medclass.data.run_data import run_dataset


@pytest.fixture
def demo_copy(demo_data, tmp_path):
    return shutil.copytree(demo_data, tmp_path / "data")


def _config(data, out, **kw):
    return TrainConfig(data=str(data), out=str(out), model="smallcnn", epochs=1, batch_size=16, **kw)


def test_unreadable_image_stops_the_run_before_training_and_is_named(demo_copy, tmp_path):
    (demo_copy / "benign" / "scan_bad.png").write_text("this is not a png")
    with pytest.raises(MedclassError, match=r"1 image\(s\) cannot be read, e.g. .*scan_bad\.png"):
        train(_config(demo_copy, tmp_path / "run"))
    assert (tmp_path / "run" / "audit.json").is_file() and not (tmp_path / "run" / "history.csv").exists()


def test_skip_unreadable_trains_without_them_and_names_every_one(demo_copy, tmp_path, capsys):
    for name in ("scan_bad.png", "scan_empty.png"):
        (demo_copy / "benign" / name).write_bytes(b"" if "empty" in name else b"this is not a png")
    run = tmp_path / "run"
    train(_config(demo_copy, run, skip_unreadable=True))
    err = capsys.readouterr().err
    assert "skipped unreadable image: " in err and "scan_bad.png" in err and "scan_empty.png" in err
    assert "2 unreadable image(s) left out" in err
    listed = (run / "excluded.csv").read_text().splitlines()
    assert listed[0] == "source,split,label,reason" and len(listed) == 3
    assert all(",benign,unreadable: " in row for row in listed[1:])
    recorded = {row.split(",")[0].rsplit("/", 1)[1]: row.split(",")[1] for row in
                (run / "splits.csv").read_text().splitlines()[1:]}
    assert recorded["scan_bad.png"] == recorded["scan_empty.png"] == "excluded"  # kept out of training and evaluation
    assert not any("scan_" in s.source for s in run_dataset(RunDir(run)).samples)  # later commands read the run alike
    assert yaml.safe_load((run / "config.yaml").read_text())["resolved"]["unreadable_images"] == 2
    with pytest.raises(MedclassError, match="--skip-unreadable needs the audit"):
        _config(demo_copy, run, skip_unreadable=True, audit=False)


def test_duplicate_with_another_label_is_warned_about(demo_copy, tmp_path):
    shutil.copy(demo_copy / "benign" / "benign_0000.png", demo_copy / "malignant" / "copy_of_benign.png")
    with pytest.warns(DataWarning, match="exact-duplicate groups carry different labels"):
        train(_config(demo_copy, tmp_path / "run"))


def test_given_kfold_splits_are_used(demo_data, tmp_path):
    folds = make_splits(open_dataset(demo_data), folds=3, seed=1)
    save_splits(folds, tmp_path / "splits.csv")
    train(_config(demo_data, tmp_path / "run", splits=str(tmp_path / "splits.csv"), fold=1))
    used = {line.split(",")[0]: line.split(",")[1] for line in
            (tmp_path / "run" / "splits.csv").read_text().splitlines()[1:]}
    expected_val = {portable_source(s.source, data_root(folds)) for s in folds.samples  # named from the data root
                    if folds.meta["folds"].get(s.source) == 1}
    assert {src for src, split in used.items() if split == "val"} == expected_val


def test_several_labels_in_a_single_label_task_ask_for_multilabel_or_a_binary_task(tmp_path, demo_data):
    rows = ["image,label", f"{demo_data}/benign/benign_0000.png,Mass|Effusion",
            f"{demo_data}/normal/normal_0000.png,No Finding", f"{demo_data}/benign/benign_0001.png,Mass"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    expected = r"labels.csv: row 2, column label: expected one class.*--multilabel.*--positive FINDING"
    with pytest.raises(MedclassError, match=expected):
        train(_config(tmp_path / "labels.csv", tmp_path / "run"))


def test_validation_carved_from_train_keeps_patients_whole():
    from medclass.data.base import ImageDataset, Sample
    from medclass.data.splits import carve_validation

    samples = [Sample(f"p{p}_{k}.png", {"label": "ab"[p % 2]}, split="train", patient=f"p{p}")
               for p in range(40) for k in range(3)]
    samples += [Sample(f"t{i}.png", {"label": "ab"[i % 2]}, split="test", patient=f"t{i}") for i in range(10)]
    ds = carve_validation(ImageDataset("toy", samples, {"label": ["a", "b"]}, loader=lambda s: None), 0.2, seed=0)
    splits_of_patient = {}
    for s in ds.samples:
        splits_of_patient.setdefault(s.patient, set()).add(s.split)
    assert all(len(v) == 1 for v in splits_of_patient.values())
    assert 12 <= sum(s.split == "val" for s in ds.samples) <= 36
    assert sum(s.split == "test" for s in ds.samples) == 10


def test_one_image_class_is_named_before_any_epoch_and_leaves_nothing(demo_copy, tmp_path):
    (demo_copy / "cyst").mkdir()
    shutil.copy(demo_copy / "benign" / "benign_0000.png", demo_copy / "cyst" / "only.png")
    with pytest.warns(DataWarning, match=r"too few to stratify into train/val/test: 'cyst' has 1 image"):
        with pytest.raises(MedclassError, match=r"cannot train: class 'cyst' has no (training|validation|training "
                                                r"or validation) image \(train \d, val \d, test \d\)"):
            train(_config(demo_copy, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_class_absent_from_training_is_named_with_its_counts(tmp_path):
    from tests.conftest import write_npz

    labels = {"train_labels": (np.arange(8) % 2).reshape(-1, 1).astype(np.uint8)}  # class 2 only in val/test
    npz = write_npz(tmp_path / "three.npz", n_classes=3, **labels)
    with pytest.raises(MedclassError, match=r"class '2' has no training image \(train 0, val 1, test 1\)"):
        train(_config(npz, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_csv_rows_skipped_for_missing_images_are_kept_in_the_run(demo_data, tmp_path):
    from medclass.evaluation import evaluate_run

    rows = ["image,label"] + [f"{demo_data}/{c}/{c}_{i:04d}.png,{c}" for c in ("benign", "normal") for i in range(10)]
    rows.append(f"{demo_data}/benign/gone.png,benign")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    with pytest.warns(DataWarning, match="1 of 21 images not found"):
        train(_config(tmp_path / "labels.csv", tmp_path / "run"))
    assert (tmp_path / "run" / "skipped.csv").read_text().splitlines()[1].startswith("22,")
    resolved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["resolved"]
    assert resolved["skipped_images"] == 1
    with pytest.warns(DataWarning):
        metrics, _ = evaluate_run(tmp_path / "run", n_boot=10)
    assert metrics["skipped"] == [{"row": 22, "image": f"{demo_data}/benign/gone.png", "reason": "file not found"}]

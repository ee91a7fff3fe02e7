"""Nested folders ROOT/<group>/<class>/: class and group tasks, mapping YAML (null: no label), --tasks, and which
layouts are claimed."""

from pathlib import Path

import pytest
from PIL import Image

from medclass.data import open_dataset
from medclass.data.nested import is_nested_layout
from medclass.core.errors import DataError

LAYOUT = {"Brain Cancer": ["brain_glioma", "brain_menin"], "Lung and Colon Cancer": ["lung_aca", "lung_n"]}


def make_tree(root: Path, layout: dict, per_class: int = 2) -> Path:
    for group, classes in layout.items():
        for name in classes:
            folder = root / group / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (8, 8)).save(folder / f"{name}_{i}.jpg")
    return root


def test_group_and_class_tasks_default_target_class(tmp_path):
    ds = open_dataset(make_tree(tmp_path / "Multi Cancer", LAYOUT))
    assert ds.meta["format"] == "nested-folders"
    assert ds.target == "class" and ds.classes == ["brain_glioma", "brain_menin", "lung_aca", "lung_n"]
    assert ds.tasks["group"] == ["Brain Cancer", "Lung and Colon Cancer"]
    assert len(ds) == 8
    sample = ds.samples[0]
    assert sample.labels == {"class": "brain_glioma", "group": "Brain Cancer"}


def test_target_group_and_binary_from_group(tmp_path):
    root = make_tree(tmp_path / "mc", LAYOUT)
    assert open_dataset(root, target="group").classes == ["Brain Cancer", "Lung and Colon Cancer"]
    binary = open_dataset(root, target="group", positive="Lung and Colon Cancer")
    assert binary.classes == ["no Lung and Colon Cancer", "Lung and Colon Cancer"]
    assert binary.targets().tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_mapping_adds_tasks(tmp_path):
    root = make_tree(tmp_path / "mc", LAYOUT)
    mapping = tmp_path / "malignancy.yaml"
    mapping.write_text("brain_glioma: {malignancy: malignant}\nbrain_menin: {malignancy: benign}\n"
                       "lung_aca: {malignancy: malignant}\nlung_n: {malignancy: benign}\nunused: {malignancy: x}\n")
    ds = open_dataset(root, mapping=str(mapping), target="malignancy")
    assert ds.tasks["malignancy"] == ["benign", "malignant"]
    assert [s.labels["malignancy"] for s in ds.samples[::2]] == ["malignant", "benign", "malignant", "benign"]


def test_mapping_missing_class_names_class_and_file(tmp_path):
    root = make_tree(tmp_path / "mc", LAYOUT)
    mapping = tmp_path / "partial.yaml"
    mapping.write_text("brain_glioma: {malignancy: malignant}\nbrain_menin: {malignancy: benign}\n"
                       "lung_aca: {malignancy: malignant}\n")
    with pytest.raises(DataError, match=r"partial.yaml: no entry for class 'lung_n'"):
        open_dataset(root, mapping=str(mapping))


def test_mapping_entry_without_a_task_value_is_an_error(tmp_path):
    root = make_tree(tmp_path / "mc", {"g": ["a", "b"]})
    mapping = tmp_path / "m.yaml"
    mapping.write_text("a: {malignancy: malignant}\nb: {stage: '2'}\n")
    with pytest.raises(DataError, match=r"m.yaml: class 'a': expected a value for stage, found only malignancy"):
        open_dataset(root, mapping=str(mapping))


def test_flat_and_split_folders_are_left_to_the_folder_reader(tmp_path):
    flat = tmp_path / "flat"
    for name in ("benign", "malignant"):
        (flat / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(flat / name / "x.png")
    split = make_tree(tmp_path / "split", {"train": ["a", "b"], "test": ["a", "b"]})
    class_then_split = make_tree(tmp_path / "cs", {"a": ["train", "test"], "b": ["train", "test"]})
    for root in (flat, split, class_then_split):
        assert not is_nested_layout(root)
        assert open_dataset(root).meta["format"] == "folders"


def test_null_in_the_mapping_is_no_label_and_tasks_selects_several(tmp_path):
    root = make_tree(tmp_path / "mc", {"Breast": ["breast_benign", "breast_malignant", "breast_normal"]})
    mapping = tmp_path / "m.yaml"
    mapping.write_text("breast_benign: {malignancy: benign}\nbreast_malignant: {malignancy: malignant}\n"
                       "breast_normal: {malignancy: null}\n")
    ds = open_dataset(root, mapping=str(mapping), tasks="group,malignancy")
    assert ds.target == "group" and ds.selected == ("group", "malignancy") and ds.learned == ["group", "malignancy"]
    assert ds.tasks["malignancy"] == ["benign", "malignant"]
    normal = [s for s in ds.samples if s.labels["class"] == "breast_normal"]
    assert len(normal) == 2 and all("malignancy" not in s.labels for s in normal)
    assert ds.targets("malignancy").tolist() == [0, 0, 1, 1, -1, -1]
    assert ds.counts("malignancy") == {"all": {"benign": 2, "malignant": 2}}
    assert open_dataset(root, mapping=str(mapping), tasks="class").selected == ()


def test_tasks_option_errors_name_the_task_and_the_alternative(tmp_path):
    root = make_tree(tmp_path / "mc", LAYOUT)
    with pytest.raises(DataError, match=r"mc: no task 'organ' \(named in --tasks\); tasks found: class, group"):
        open_dataset(root, tasks="group,organ")
    with pytest.raises(DataError, match=r"give either --tasks group,class or --target group, not both; --target is "
                                        r"the one-task form"):
        open_dataset(root, tasks="group,class", target="group")
    with pytest.raises(DataError, match=r"--tasks names class more than once"):
        open_dataset(root, tasks="class,group,class")


def test_binary_from_a_task_with_missing_labels_drops_and_counts_them(tmp_path):
    root = make_tree(tmp_path / "mc", {"Breast": ["breast_benign", "breast_malignant", "breast_normal"]})
    mapping = tmp_path / "m.yaml"
    mapping.write_text("breast_benign: {malignancy: benign}\nbreast_malignant: {malignancy: malignant}\n"
                       "breast_normal: {malignancy: ~}\n")
    ds = open_dataset(root, mapping=str(mapping), target="malignancy", positive="malignant")
    assert ds.classes == ["no malignant", "malignant"] and ds.targets().tolist() == [0, 0, 1, 1]
    assert ds.meta["binary"]["unlabelled"] == 2 and ds.meta["binary"]["dropped"] == 2
    assert ds.selected == () and ds.multilabel == ()

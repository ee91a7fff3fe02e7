"""CSV label files: columns, task columns (--tasks), multi-label cells and --multilabel, one row per box, conflicting and
repeated rows, patients, splits, missing images, binary tasks."""

from pathlib import Path

import pytest
from PIL import Image

from medclass.data import open_dataset
from medclass.data.base import Box
from medclass.data.tasks import check_single_label, is_multi_label
from medclass.core.errors import DataError, DataWarning


def write_images(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("L", (8, 8), 128).save(folder / name)


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_single_label_csv_beside_images(tmp_path):
    write_images(tmp_path, ["a.png", "b.png", "c.png"])
    csv = write_csv(tmp_path / "labels.csv", ["image,label", "a.png,cat", "b.png,dog", "c.png,cat"])
    ds = open_dataset(csv)
    assert ds.target == "label" and ds.classes == ["cat", "dog"]
    assert [s.labels["label"] for s in ds.samples] == ["cat", "dog", "cat"]
    assert ds.samples[0].source == str(tmp_path / "a.png")
    assert ds.meta["multi_label"] == [] and ds.meta["skipped"] == []
    assert ds.load_image(0).size == (8, 8)


def test_multi_label_cells_become_tuples_for_every_row(tmp_path):
    write_images(tmp_path / "images", ["1.png", "2.png", "3.png"])
    csv = write_csv(tmp_path / "labels.csv", ["Image Index,Finding Labels",
                                               "1.png,Effusion|Mass", "2.png,No Finding", "3.png,Mass"])
    ds = open_dataset(csv)
    assert ds.classes == ["Effusion", "Mass", "No Finding"]
    assert [s.labels["label"] for s in ds.samples] == [("Effusion", "Mass"), ("No Finding",), ("Mass",)]
    # issue 9: tuples alone no longer declare the task multi-label; --multilabel does
    assert ds.meta["multi_label"] == [] and ds.multilabel == () and ds.kind() == "multiclass"


def test_one_row_per_box_merges_into_one_sample_with_boxes(tmp_path):
    write_images(tmp_path / "images", ["00000001_000.png", "00000002_000.png"])
    csv = write_csv(tmp_path / "labels.csv", [
        "filename,height,width,label,xmin,ymin,xmax,ymax,view",
        "00000001_000.png,100,100,Mass,1,2,3,4,PA",
        "00000002_000.png,100,100,Effusion,5,5,9,9,AP",
        "00000001_000.png,100,100,Nodule,10,20,30,40,PA",
    ])
    ds = open_dataset(csv)
    assert len(ds) == 2
    first = ds.samples[0]
    assert first.labels["label"] == ("Mass", "Nodule")
    assert first.boxes == (Box("Mass", 1, 2, 3, 4), Box("Nodule", 10, 20, 30, 40))
    assert ds.samples[1].labels["label"] == ("Effusion",)


def test_xywh_boxes_are_converted_to_corners(tmp_path):
    write_images(tmp_path, ["a.png", "b.png"])
    csv = write_csv(tmp_path / "boxes.csv", ["filename,label,x,y,w,h", "a.png,Mass,10,20,5,6", "b.png,Normal,,,,"])
    ds = open_dataset(csv)
    assert ds.samples[0].boxes == (Box("Mass", 10, 20, 15, 26),)
    assert ds.samples[1].boxes == ()


def test_patient_from_column_and_from_file_name_pattern(tmp_path):
    write_images(tmp_path, ["00000007_001.png", "00000007_002.png", "00000009_000.png"])
    rows = ["00000007_001.png,A,p7", "00000007_002.png,B,p7", "00000009_000.png,A,p9"]
    csv = write_csv(tmp_path / "labels.csv", ["filename,label,subject"] + rows)
    by_column = open_dataset(csv, patient_col="subject")
    assert [s.patient for s in by_column.samples] == ["p7", "p7", "p9"]
    by_pattern = open_dataset(csv, patient_pattern=r"^(\d{8})_")
    assert [s.patient for s in by_pattern.samples] == ["00000007", "00000007", "00000009"]
    with pytest.raises(DataError, match=r"row 2, column filename: .*does not match"):
        open_dataset(csv, patient_pattern=r"^(\d{3})-")


def test_split_column_aliases_and_unknown_value_names_row_and_column(tmp_path):
    write_images(tmp_path, ["a.png", "b.png", "c.png"])
    csv = write_csv(tmp_path / "labels.csv", ["filename,label,fold_name",
                                               "a.png,x,Training", "b.png,y,valid", "c.png,x,testing"])
    ds = open_dataset(csv, split_col="fold_name")
    assert [s.split for s in ds.samples] == ["train", "val", "test"]
    bad = write_csv(tmp_path / "bad.csv", ["filename,label,split", "a.png,x,train", "b.png,y,holdout"])
    with pytest.raises(DataError, match=r"bad.csv: row 3, column split: expected train/val/test.*'holdout'"):
        open_dataset(bad)


def test_missing_column_names_file_column_and_columns_found(tmp_path):
    write_images(tmp_path, ["a.png"])
    csv = write_csv(tmp_path / "labels.csv", ["filename,finding", "a.png,x"])
    with pytest.raises(DataError, match=r"labels.csv: no label column.*columns found: filename, finding"):
        open_dataset(csv)
    with pytest.raises(DataError, match=r"labels.csv: no column 'diagnosis'.*columns found: filename, finding"):
        open_dataset(csv, label_col="diagnosis")


def test_empty_required_cell_names_the_row(tmp_path):
    write_images(tmp_path, ["a.png", "b.png"])
    csv = write_csv(tmp_path / "labels.csv", ["filename,label", "a.png,x", "b.png,"])
    with pytest.raises(DataError, match=r"row 3, column label"):
        open_dataset(csv)


def test_missing_images_are_reported_and_all_missing_is_fatal(tmp_path):
    write_images(tmp_path, ["a.png", "b.png"])
    csv = write_csv(tmp_path / "labels.csv", ["filename,label", "a.png,x", "gone1.png,y", "b.png,y", "gone2.png,x"])
    with pytest.warns(UserWarning, match=r"2 of 4 images not found.*rows 3, 5"):
        ds = open_dataset(csv)
    assert len(ds) == 2
    assert ds.meta["skipped"] == [{"row": 3, "image": "gone1.png", "reason": "file not found"},
                                 {"row": 5, "image": "gone2.png", "reason": "file not found"}]
    none = write_csv(tmp_path / "none.csv", ["filename,label", "gone1.png,x", "gone2.png,y"])
    with pytest.raises(DataError, match=r"none of the 2 images"):
        open_dataset(none)


def test_rows_of_one_image_with_different_splits_are_an_error(tmp_path):
    write_images(tmp_path, ["a.png"])
    csv = write_csv(tmp_path / "labels.csv", ["filename,label,split", "a.png,x,train", "a.png,y,test"])
    with pytest.raises(DataError, match=r"rows 2 and 3 .*different split"):
        open_dataset(csv)


def nih_like(tmp_path: Path) -> Path:
    write_images(tmp_path / "images", [f"{i}.png" for i in range(5)])
    return write_csv(tmp_path / "labels.csv", ["filename,label", "0.png,Mass|Effusion", "1.png,No Finding",
                                                "2.png,Effusion", "3.png,Mass", "4.png,No Finding"])


def test_positive_finding_becomes_binary_target(tmp_path):
    ds = open_dataset(nih_like(tmp_path), positive="Mass")
    assert ds.target == "Mass vs rest" and ds.classes == ["no Mass", "Mass"]
    assert ds.targets().tolist() == [1, 0, 0, 1, 0]
    assert ds.meta["binary"]["dropped"] == 0


def test_negative_keeps_only_images_labelled_exactly_negative(tmp_path):
    ds = open_dataset(nih_like(tmp_path), positive="Mass", negative="No Finding")
    assert ds.classes == ["No Finding", "Mass"]
    assert [Path(s.source).name for s in ds.samples] == ["0.png", "1.png", "3.png", "4.png"]
    assert ds.targets().tolist() == [1, 0, 1, 0]
    assert ds.meta["binary"]["dropped"] == 1


def test_unknown_positive_or_target_lists_what_exists(tmp_path):
    with pytest.raises(DataError, match=r"positive class 'Hernia'.*classes found: Effusion, Mass, No Finding"):
        open_dataset(nih_like(tmp_path), positive="Hernia")
    with pytest.raises(DataError, match=r"no task 'group'; tasks found: label"):
        open_dataset(nih_like(tmp_path), target="group")


def organ_csv(tmp_path: Path, rows: list[str]) -> Path:
    write_images(tmp_path, [f"{i}.png" for i in range(len(rows))])
    return write_csv(tmp_path / "labels.csv", ["filename,organ,malignancy,note"] + rows)


def test_tasks_are_label_columns_and_an_empty_cell_is_no_label(tmp_path):
    csv = organ_csv(tmp_path, ["0.png,liver,benign,x", "1.png,lung,,y", "2.png,liver,malignant,z"])
    ds = open_dataset(csv, tasks="organ,malignancy")
    assert ds.tasks == {"organ": ["liver", "lung"], "malignancy": ["benign", "malignant"]}
    assert ds.target == "organ" and ds.selected == ("organ", "malignancy") and ds.learned == ["organ", "malignancy"]
    assert ds.samples[1].labels == {"organ": "lung"}  # absent, not '' nor None
    assert ds.targets("malignancy").tolist() == [0, -1, 1]
    assert ds.kind("organ") == "binary" and ds.kind("malignancy") == "binary" and ds.multilabel == ()
    assert ds.meta["rows"][str(tmp_path / "1.png")] == 3
    reversed_order = open_dataset(csv, tasks=["malignancy", "organ"])
    assert reversed_order.target == "malignancy" and reversed_order.selected == ("malignancy", "organ")
    assert open_dataset(csv, tasks="note").selected == ()  # one task is the same as --target


def test_tasks_errors_name_the_column_or_the_row(tmp_path):
    csv = organ_csv(tmp_path, ["0.png,liver,benign,x", "1.png,,,y"])
    with pytest.raises(DataError, match=r"labels.csv: row 3: no label in any task column \(organ, malignancy\)"):
        open_dataset(csv, tasks="organ,malignancy")
    with pytest.raises(DataError, match=r"labels.csv: no column 'stage' \(named in --tasks\); "
                                        r"columns found: filename, organ, malignancy, note"):
        open_dataset(csv, tasks="organ,stage")
    with pytest.raises(DataError, match=r"give either --tasks organ,malignancy or --target organ"):
        open_dataset(csv, tasks="organ,malignancy", target="organ")
    with pytest.raises(DataError, match=r"--positive benign .*cannot go with --tasks"):
        open_dataset(csv, tasks="organ,malignancy", positive="benign")


def test_one_image_with_different_labels_on_two_rows_names_both_rows(tmp_path):
    write_images(tmp_path, ["a.png", "b.png"])
    csv = write_csv(tmp_path / "labels.csv", ["filename,label", "a.png,benign", "b.png,normal", "a.png,malignant"])
    with pytest.raises(DataError, match=r"labels.csv: rows 2 and 4 name the same image 'a.png' with different "
                                        r"labels in column label \('benign' vs 'malignant'\)"):
        open_dataset(csv)
    tasks = organ_csv(tmp_path, ["0.png,liver,benign,x", "0.png,liver,malignant,y"])
    with pytest.raises(DataError, match=r"rows 2 and 3 .*'0.png' .*column malignancy \('benign' vs 'malignant'\)"):
        open_dataset(tasks, tasks="organ,malignancy")


def test_identical_repeated_rows_are_merged_with_one_warning(tmp_path):
    write_images(tmp_path, ["a.png", "b.png"])
    csv = write_csv(tmp_path / "labels.csv", ["filename,label", "a.png,x", "b.png,y", "a.png,x", "b.png,y",
                                               "a.png,x"])
    with pytest.warns(DataWarning) as caught:
        ds = open_dataset(csv)
    assert [str(w.message) for w in caught] == [
        f"{csv}: 3 repeated rows merged into the rows they repeat (rows 4, 5, 6)"]
    assert [s.labels["label"] for s in ds.samples] == ["x", "y"] and ds.meta["rows"][str(tmp_path / "b.png")] == 3


def test_multilabel_reads_findings_and_no_finding_is_the_empty_set(tmp_path):
    write_images(tmp_path / "images", [f"{i}.png" for i in range(4)])
    csv = write_csv(tmp_path / "labels.csv", ["Image Index,Finding Labels", "0.png,Mass|Effusion",
                                               "1.png,No Finding", "2.png,no finding", "3.png,Nodule",
                                               "3.png,Mass"])  # with --multilabel, rows of one image unite
    ds = open_dataset(csv, multilabel=True)
    assert ds.classes == ["Effusion", "Mass", "Nodule"] and ds.multilabel == ("label",)
    assert ds.kind() == "multilabel" and ds.meta["multi_label"] == ["label"]
    assert [s.labels["label"] for s in ds.samples] == [("Effusion", "Mass"), (), (), ("Mass", "Nodule")]
    assert ds.counts() == {"all": {"Effusion": 1, "Mass": 2, "Nodule": 1}}
    check_single_label(ds)  # declared multi-label: nothing to refuse
    binary = open_dataset(csv, multilabel=True, positive="Mass", negative="No Finding")
    assert binary.classes == ["No Finding", "Mass"] and binary.targets().tolist() == [1, 0, 0, 1]
    assert binary.selected == () and binary.multilabel == ("label",) and binary.kind() == "binary"
    bad = write_csv(tmp_path / "bad.csv", ["Image Index,Finding Labels", "0.png,Mass|No Finding"])
    with pytest.raises(DataError, match=r"bad.csv: row 2, column Finding Labels: expected findings or 'No Finding' "
                                        r"alone, found 'Mass\|No Finding'"):
        open_dataset(bad, multilabel=True)


def test_several_labels_without_multilabel_are_refused_naming_the_row(tmp_path):
    write_images(tmp_path, ["a.png", "b.png", "c.png"])
    csv = write_csv(tmp_path / "labels.csv", ["filename,label", "a.png,Mass", "b.png,Mass|Effusion", "c.png,Nodule"])
    ds = open_dataset(csv)
    assert is_multi_label(ds) and not is_multi_label(open_dataset(csv, positive="Mass"))
    with pytest.raises(DataError, match=r"labels.csv: row 3, column label: expected one class for the single-label "
                                        r"task 'label', found 2 \('Effusion\|Mass'\); pass --multilabel .*"
                                        r"--positive FINDING"):
        check_single_label(ds)
    check_single_label(open_dataset(csv, positive="Mass"))

"""`medclass split` through typer's CliRunner on a tiny NIH-like CSV."""

import csv
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from medclass.cli import app

runner = CliRunner()


def invoke(args):
    # Typer runs a lone command without its name; while `split` may still be the only command, call it bare.
    alone = len(app.registered_commands) == 1 and app.registered_callback is None
    return runner.invoke(app, args if alone else ["split", *args])


def nih_like(root: Path, n_patients: int = 40) -> Path:
    (root / "images").mkdir(parents=True)
    lines = ["filename,label,xmin,ymin,xmax,ymax"]
    for p in range(n_patients):
        finding = ["Mass", "Effusion", "Nodule"][p % 3]
        for visit in range(1 + p % 3):
            name = f"{p:08d}_{visit:03d}.png"
            Image.new("L", (8, 8)).save(root / "images" / name)
            lines.append(f"{name},{finding},1,1,4,4")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_split_by_patient_writes_every_image_once(tmp_path):
    labels = nih_like(tmp_path)
    out = tmp_path / "s.csv"
    result = invoke([str(labels), "--by", "patient", "--patient-pattern", r"^(\d{8})_", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "grouped by patient" in result.output and "patients in more than one split: 0" in result.output
    rows = read_rows(out)
    n_images = len(labels.read_text().splitlines()) - 1
    assert len(rows) == len({r["source"] for r in rows}) == n_images
    splits_of_patient = {}
    for r in rows:
        splits_of_patient.setdefault(r["patient"], set()).add(r["split"])
    assert len(splits_of_patient) == 40 and all(len(s) == 1 for s in splits_of_patient.values())
    assert {r["split"] for r in rows} == {"train", "val", "test"}


def test_k_fold_and_binary_target(tmp_path):
    out = tmp_path / "s.csv"
    result = invoke([str(nih_like(tmp_path)), "--patient-pattern", r"^(\d{8})_", "--folds", "3",
                     "--positive", "Mass", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "fold 2" in result.output and "no Mass" in result.output
    rows = read_rows(out)
    assert {r["fold"] for r in rows if r["split"] == "train"} == {"0", "1", "2"}
    assert {r["label"] for r in rows} == {"no Mass", "Mass"}


def test_data_error_is_one_line_naming_row_and_column(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "labels.csv").write_text("filename,label,split\na.png,x,train\na.png,x,holdout\n")
    result = invoke([str(tmp_path / "labels.csv"), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2
    assert "row 3, column split" in result.output and "Traceback" not in result.output


def test_split_keeps_duplicate_clusters_together_unless_told_not_to(tmp_path):
    from tests.data.test_split_groups import folder_with_copies

    clusters = folder_with_copies(tmp_path / "data")
    out = tmp_path / "s.csv"
    for seed in ("0", "1", "2"):
        result = invoke([str(tmp_path / "data"), "--seed", seed, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "grouped by near-duplicate clusters (28 groups, 6 with more than one image)" in result.output
        split_of = {Path(r["source"]).name: r["split"] for r in read_rows(out)}
        assert all(len({split_of[n] for n in cluster}) == 1 for cluster in clusters), seed
    result = invoke([str(tmp_path / "data"), "--no-group-duplicates", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "grouped by none (36 groups, 0 with more than one image)" in result.output


def test_several_tasks_print_one_table_per_task(tmp_path):
    (tmp_path / "images").mkdir()
    lines = ["filename,organ,malignancy"]
    for i in range(30):
        Image.new("L", (8, 8)).save(tmp_path / "images" / f"{i}.png")
        malignancy = "" if i % 3 == 0 else ["benign", "malignant"][i % 4 // 2]
        lines.append(f"{i}.png,{['liver', 'lung'][i % 2]},{malignancy}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "s.csv"
    result = invoke([str(tmp_path / "labels.csv"), "--tasks", "organ,malignancy", "--no-group-duplicates",
                     "--out", str(out)])  # the images are blank copies of each other
    assert result.exit_code == 0, result.output
    text = result.stdout.splitlines()
    assert "tasks organ, malignancy (main 'organ')" in text[0]
    assert text[1].split() == ["split", "images", "patients", "liver", "lung"]
    at = text.index("task 'malignancy' (binary):")
    assert text[at + 1].split() == ["split", "images", "patients", "benign", "malignant", "(no", "label)"]
    rows = [line.split() for line in text[at + 2:at + 5]]
    assert [r[0] for r in rows] == ["train", "val", "test"]
    assert sum(int(r[5]) for r in rows) == 10 and all(int(r[1]) == sum(map(int, r[3:6])) for r in rows)
    assert {r["label"] for r in read_rows(out)} == {"liver", "lung"}  # the split file keeps the main task

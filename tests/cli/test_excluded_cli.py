"""Images a run leaves out (duplicates, segmentation masks, unreadable files) are recorded with their reason, and
every later command reads the run the same way: split --dedupe -> train --splits -> evaluate/compare/sample, and a
BUSI-like folder (masks beside their images) trained without its masks."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from medclass.cli import app
from medclass.data.run_data import run_dataset

runner = CliRunner()
TRAIN = ["--model", "smallcnn", "--epochs", "1", "--batch-size", "16"]


def ok(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def with_duplicates(demo_data: Path, root: Path) -> tuple[Path, list[str]]:
    data = shutil.copytree(demo_data, root)
    copies = []
    for label in ("benign", "malignant", "normal"):
        copy = data / label / f"copy_of_{label}_0002.png"
        shutil.copy(data / label / f"{label}_0002.png", copy)
        copies.append(str(copy))
    return data, copies


def test_split_dedupe_then_train_on_it_then_every_later_command_reads_the_run(demo_data, tmp_path):
    data, copies = with_duplicates(demo_data, tmp_path / "data")
    split_file = tmp_path / "s.csv"
    ok(["split", str(data), "--dedupe", "--out", str(split_file)])
    excluded = {r["source"]: r for r in rows(split_file) if r["split"] == "excluded"}
    assert len(excluded) == 3 and all(r["reason"].startswith("duplicate of ") for r in excluded.values())

    run = tmp_path / "run"
    ok(["train", "--data", str(data), "--splits", str(split_file), *TRAIN, "--out", str(run)])
    recorded = {r["source"]: r["split"] for r in rows(run / "splits.csv")}
    assert len(recorded) == sum(1 for _ in data.rglob("*.png"))  # every image of the data accounted for
    assert {src for src, split in recorded.items() if split == "excluded"} == set(excluded)
    listed = rows(run / "excluded.csv")
    assert {r["source"] for r in listed} == set(excluded) and all("duplicate of" in r["reason"] for r in listed)

    ok(["evaluate", str(run), "--n-boot", "10"])
    second = shutil.copytree(run, tmp_path / "second")  # a second run on the same split
    ok(["compare", str(run), str(second), "--n-boot", "10"])
    ok(["sample", str(run), "--n", "4", "--seed", "1", "--out", str(tmp_path / "g.png")])


def test_a_run_from_before_excluded_csv_still_loads_without_its_unlisted_images(demo_data, tmp_path):
    """Older runs wrote no row for the images they left out, and no excluded.csv: those images stay out."""
    import pytest

    from medclass.core.errors import DataError, DataWarning
    from medclass.core.rundir import RunDir

    data, copies = with_duplicates(demo_data, tmp_path / "data")
    run = tmp_path / "run"
    ok(["train", "--data", str(data), *TRAIN, "--no-audit", "--out", str(run)])
    kept = [line for line in (run / "splits.csv").read_text().splitlines() if "copy_of_" not in line]
    (run / "splits.csv").write_text("\n".join(kept) + "\n")
    (run / "excluded.csv").unlink()
    with pytest.warns(DataWarning, match=r"3 image\(s\) of .* have no row in .*splits.csv"):
        loaded = run_dataset(RunDir(run))
    assert not {s.source for s in loaded.samples} & set(copies)
    (run / "excluded.csv").write_text("source,split,label,reason\n")  # a run of today: every image has a row
    with pytest.raises(DataError, match=r"has no split for 3 image\(s\)"):
        run_dataset(RunDir(run))


def busi_like(demo_data: Path, root: Path) -> tuple[Path, dict[str, list[tuple[int, ...]]]]:
    """BUSI as downloaded: `<class> (N).png` with `<class> (N)_mask.png` beside it (all black for normal images),
    a second mask `_mask_1.png` for some, and one mask whose image is missing. Returns the folder and the boxes each
    lesion image's masks outline (x0, y0, x1, y1)."""
    truth = {r["filename"]: tuple(int(r[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
             for r in rows(demo_data / "boxes.csv")}
    boxes = {}
    for label in ("normal", "benign", "malignant"):
        (root / label).mkdir(parents=True)
        for i, source in enumerate(sorted((demo_data / label).glob("*.png"))):
            image = Image.open(source)
            stem = f"{label} ({i + 1})"
            image.save(root / label / f"{stem}.png")
            mask = np.zeros((image.height, image.width), np.uint8)
            found = truth.get(f"{label}/{source.name}")
            if found:
                x0, y0, x1, y1 = found
                mask[y0:y1, x0:x1] = 255
                boxes[str(root / label / f"{stem}.png")] = [found]
            Image.fromarray(mask).save(root / label / f"{stem}_mask.png")
            if found and i % 4 == 0:  # a second lesion, in a mask of its own
                second = np.zeros_like(mask)
                second[0:3, 0:4] = 255
                Image.fromarray(second).save(root / label / f"{stem}_mask_1.png")
                boxes[str(root / label / f"{stem}.png")].append((0, 0, 4, 3))
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(root / "benign" / "benign (99)_mask.png")
    return root, boxes


def test_busi_like_folder_trains_without_its_masks_and_reports_the_orphan(demo_data, tmp_path):
    data, _ = busi_like(demo_data, tmp_path / "busi")
    run = tmp_path / "run"
    result = ok(["train", "--data", str(data), *TRAIN, "--out", str(run)])
    masks = {p.relative_to(data).as_posix() for p in data.rglob("*_mask*.png")}  # split files name them from the root
    recorded = {r["source"]: r for r in rows(run / "splits.csv")}
    assert len(recorded) == sum(1 for _ in data.rglob("*.png"))
    assert all(recorded[m]["split"] == "excluded" for m in masks)
    assert not any("_mask" in Path(src).name for src, r in recorded.items() if r["split"] in ("train", "val", "test"))
    listed = {r["source"]: r["reason"] for r in rows(run / "excluded.csv")}
    assert set(listed) == masks
    assert listed["benign/benign (3)_mask.png"] == "segmentation mask of benign (3).png"
    assert "image missing" in listed["benign/benign (99)_mask.png"]
    n_masks = len(masks)
    assert f"left out {n_masks} segmentation masks" in result.stderr and "--keep-masks" in result.stderr
    assert "benign (99)_mask.png" in result.stderr  # the orphan is named
    audit = json.loads((run / "audit.json").read_text())
    assert audit["summary"]["masks"] == 0  # none left to train on

    ok(["evaluate", str(run), "--n-boot", "10"])

    split_file = tmp_path / "s.csv"
    result = ok(["split", str(data), "--out", str(split_file)])
    assert f"left out {n_masks} segmentation masks" in result.output
    assert {r["source"] for r in rows(split_file) if r["split"] == "excluded"} == masks

    result = ok(["audit", str(data)])
    assert f"--keep-masks keeps them): {n_masks}" in result.output and "image missing" in result.output


def test_keep_masks_trains_on_them(demo_data, tmp_path):
    data, _ = busi_like(demo_data, tmp_path / "busi")
    run = tmp_path / "run"
    ok(["train", "--data", str(data), *TRAIN, "--keep-masks", "--no-audit", "--out", str(run)])
    recorded = rows(run / "splits.csv")
    assert not any(r["split"] == "excluded" for r in recorded)
    assert sum("_mask" in Path(r["source"]).name for r in recorded) == sum(1 for _ in data.rglob("*_mask*.png"))
    ok(["evaluate", str(run), "--n-boot", "10"])  # read again with the masks


def test_localize_eval_takes_the_ground_truth_boxes_from_the_masks(demo_data, tmp_path):
    data, boxes = busi_like(demo_data, tmp_path / "busi")
    run = tmp_path / "run"
    ok(["train", "--data", str(data), *TRAIN, "--no-audit", "--out", str(run)])
    out = tmp_path / "loc"
    ok(["localize-eval", str(run), str(data), "--method", "otsu", "--overlays", "0", "--out", str(out)])
    tested = {r["source"] for r in rows(run / "splits.csv") if r["split"] == "test"}
    saved = json.loads((out / "localization.json").read_text())
    assert saved["n_images"] == len(tested & {Path(s).relative_to(data).as_posix() for s in boxes}) > 0

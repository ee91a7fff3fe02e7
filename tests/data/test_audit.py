"""audit_dataset on tiny folders written to tmp_path: each finding comes from exactly the file made for it."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from medclass.data import open_dataset
from medclass.data.audit import MASK_NAME, audit_dataset, exact_duplicate_groups
from medclass.data.base import ImageDataset, Sample
from medclass.data.image_hashes import _BYTE_POPCOUNT, _popcount, near_pairs


def pattern(seed: int, side: int = 64) -> np.ndarray:
    """A blocky random picture: distinct seeds give unrelated images (phash ~32 bits apart)."""
    grid = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((side, side), Image.Resampling.NEAREST))


def save(root, relative: str, pixels: np.ndarray) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def members(group: dict) -> set[str]:
    return {m["path"].rsplit("/", 1)[-1] for m in group["members"]}


@pytest.fixture
def messy(tmp_path):
    """train/test class folders holding one example of every problem the audit looks for."""
    for k in range(6):
        save(tmp_path, f"train/a/a{k}.png", pattern(k))
        save(tmp_path, f"train/b/b{k}.png", pattern(100 + k))
    save(tmp_path, "train/b/same_as_a0.png", pattern(0))  # conflicting labels
    save(tmp_path, "test/a/seen_in_train.png", pattern(1))  # crosses splits, same label
    save(tmp_path, "test/b/t0.png", pattern(200))
    save(tmp_path, "train/a/a2_copy.bmp", pattern(2))  # other encoding, same pixels
    noisy = pattern(3).astype(int) + np.random.default_rng(7).integers(-4, 5, (64, 64))
    save(tmp_path, "train/a/a3_noisy.png", np.clip(noisy, 0, 255).astype(np.uint8))
    # no image of its stem beside it: only the audit names it (a mask beside its image is left out, data/masks.py)
    save(tmp_path, "train/a/lesion_mask.png", np.where(pattern(4) > 128, 255, 0).astype(np.uint8))
    (tmp_path / "train/b/broken.png").write_bytes(b"this is not a png")
    (tmp_path / "notes.csv").write_text("not,an,image\n")  # not an image suffix: ignored quietly
    return tmp_path


@pytest.fixture
def report(messy):
    return audit_dataset(open_dataset(messy))


def test_report_is_json_serialisable_with_all_keys(report):
    keys = {"corrupt", "duplicates", "cross_split_duplicates", "conflicting_label_duplicates", "near_duplicates",
            "masks", "size_artefacts", "patient_leaks", "summary", "counts", "images"}
    assert keys <= set(json.loads(json.dumps(report)))


def test_counts_per_split_and_class(report):
    assert report["counts"]["train"] == {"a": 9, "b": 8}
    assert report["counts"]["test"] == {"a": 1, "b": 1}


def test_corrupt_file_is_reported_and_the_audit_goes_on(report):
    assert [c["path"].rsplit("/", 1)[-1] for c in report["corrupt"]] == ["broken.png"]
    assert "not a readable image" in report["corrupt"][0]["reason"]
    assert report["summary"]["readable"] == report["summary"]["images"] - 1


def test_duplicate_across_classes_conflicts(report):
    assert [members(g) for g in report["conflicting_label_duplicates"]] == [{"a0.png", "same_as_a0.png"}]
    assert report["conflicting_label_duplicates"][0]["labels"] == ["a", "b"]


def test_duplicate_across_splits(report):
    groups = report["cross_split_duplicates"]
    assert [members(g) for g in groups] == [{"a1.png", "seen_in_train.png"}]
    assert groups[0]["splits"] == ["test", "train"] and not groups[0]["conflicting_labels"]
    assert report["summary"]["cross_split_duplicate_images"] == {"test": 1, "train": 1}
    assert report["summary"]["leakage_found"]


def test_re_encoded_copy_is_an_exact_duplicate(report):
    assert {"a2.png", "a2_copy.bmp"} in [members(g) for g in report["duplicates"]]


def test_noised_copy_is_a_near_duplicate_and_not_an_exact_one(report):
    assert [members(g) for g in report["near_duplicates"]] == [{"a3.png", "a3_noisy.png"}]
    assert all("a3_noisy.png" not in members(g) for g in report["duplicates"])


def test_mask_found_by_name_and_by_binary_pixels(report):
    assert [m["path"].rsplit("/", 1)[-1] for m in report["masks"]] == ["lesion_mask.png"]
    assert "name" in report["masks"][0]["reason"] and "binary" in report["masks"][0]["reason"]


@pytest.mark.parametrize("name, is_mask", [("case1_mask", True), ("mask_003", True), ("lesion-mask", True),
                                           ("brain_seg", True), ("Tr-gl_0010", False), ("segment7", False),
                                           ("unmasked", False), ("benign (12)", False)])
def test_mask_name_pattern(name, is_mask):
    assert bool(MASK_NAME.search(name.lower())) == is_mask


def test_clean_folder_has_no_findings(tmp_path):
    for k in range(5):
        save(tmp_path, f"a/{k}.png", pattern(k))
        save(tmp_path, f"b/{k}.png", pattern(50 + k))
    summary = audit_dataset(open_dataset(tmp_path))["summary"]
    found = {k: v for k, v in summary.items() if k not in ("images", "readable") and v}
    assert found == {}


def test_class_dependent_size_and_mode_are_artefacts(tmp_path):
    for k in range(5):
        save(tmp_path, f"a/{k}.png", pattern(k, side=64))
        save(tmp_path, f"b/{k}.png", np.stack([pattern(50 + k, side=48)] * 2 + [pattern(90 + k, side=48)], -1))
    artefacts = audit_dataset(open_dataset(tmp_path))["size_artefacts"]
    assert {(a["attribute"], a["value"]) for a in artefacts} == {
        ("size", "48x48"), ("size", "64x64"), ("mode", "L"), ("mode", "RGB")}
    assert next(a for a in artefacts if a["value"] == "64x64")["share_by_class"] == {"a": 1.0, "b": 0.0}


def test_patient_in_two_splits_is_a_leak():
    pixels = {name: Image.fromarray(pattern(seed)) for seed, name in enumerate(["p1_x", "p1_y", "p2_x", "p3_x"])}
    samples = [Sample("p1_x", {"label": "a"}, "train", "p1"), Sample("p1_y", {"label": "b"}, "test", "p1"),
               Sample("p2_x", {"label": "a"}, "train", "p2"), Sample("p3_x", {"label": "b"}, "test", "p3")]
    dataset = ImageDataset("patients", samples, {"label": ["a", "b"]}, loader=lambda s: pixels[s.source])
    report = audit_dataset(dataset)
    assert report["patient_leaks"] == [{"patient": "p1", "splits": {"test": 1, "train": 1}, "images": 2}]
    assert report["summary"]["leakage_found"]


def test_exact_duplicate_groups_lists_sources(messy):
    groups = exact_duplicate_groups(open_dataset(messy))
    names = sorted(sorted(p.rsplit("/", 1)[-1] for p in g) for g in groups)
    assert names == [["a0.png", "same_as_a0.png"], ["a1.png", "seen_in_train.png"], ["a2.png", "a2_copy.bmp"]]


def test_progress_is_called_once_per_image(messy):
    calls = []
    dataset = open_dataset(messy)
    audit_dataset(dataset, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(dataset), len(dataset)) and len(calls) == len(dataset)


def test_near_pairs_matches_brute_force():
    rng = random.Random(0)
    base = [rng.getrandbits(64) for _ in range(40)]
    hashes = base + [h ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)) for h in base[:10]]
    brute = {(i, j, bin(a ^ b).count("1")) for i, a in enumerate(hashes) for j, b in enumerate(hashes)
             if i < j and bin(a ^ b).count("1") <= 3}
    assert set(near_pairs(hashes, 3)) == brute and len(brute) >= 10


def test_popcount_lookup_table_agrees_with_numpy():
    words = np.array([0, 1, 2**64 - 1, 0xF0F0_0000_0000_0001], dtype=np.uint64)
    by_table = _BYTE_POPCOUNT[words.view(np.uint8).reshape(-1, 8)].sum(axis=-1)
    assert by_table.tolist() == _popcount(words).tolist() == [0, 1, 64, 9]


def test_tasks_section_and_copies_differing_only_in_the_second_task_conflict():
    seeds = {"x1": 1, "x2": 1, "y1": 2, "y2": 2, "z": 3, "w": 4}  # x1/x2 and y1/y2: the same pixels
    pixels = {name: Image.fromarray(pattern(seed)) for name, seed in seeds.items()}
    samples = [Sample("x1", {"organ": "liver", "malignancy": "benign"}, "train"),
               Sample("x2", {"organ": "liver", "malignancy": "malignant"}, "train"),
               Sample("y1", {"organ": "lung", "malignancy": "benign"}, "train"),
               Sample("y2", {"organ": "lung", "malignancy": "benign"}, "train"),
               Sample("z", {"organ": "lung"}, "test"),
               Sample("w", {"organ": "liver", "malignancy": "malignant"}, "test")]
    dataset = ImageDataset("two tasks", samples, {"organ": ["liver", "lung"], "malignancy": ["benign", "malignant"]},
                           loader=lambda s: pixels[s.source], target="organ", selected=("organ", "malignancy"))
    report = audit_dataset(dataset)
    assert report["tasks"] == {
        "organ": {"kind": "binary", "classes": ["liver", "lung"], "unlabelled": 0,
                  "counts": {"train": {"liver": 2, "lung": 2}, "test": {"liver": 1, "lung": 1}}},
        "malignancy": {"kind": "binary", "classes": ["benign", "malignant"], "unlabelled": 1,
                       "counts": {"train": {"benign": 3, "malignant": 1}, "test": {"benign": 0, "malignant": 1}}}}
    assert json.loads(json.dumps(report))["tasks"] == report["tasks"]
    [conflict] = report["conflicting_label_duplicates"]
    assert [m["path"] for m in conflict["members"]] == ["x1", "x2"]
    assert conflict["labels"] == ["liver / benign", "liver / malignant"]
    assert conflict["members"][1]["label"] == "liver"
    assert conflict["members"][1]["labels"] == {"organ": "liver", "malignancy": "malignant"}
    assert len(report["duplicates"]) == 2 and report["summary"]["conflicting_label_duplicate_groups"] == 1
    organ_only = audit_dataset(replace(dataset, selected=()))  # the organ alone: the copies agree
    assert organ_only["conflicting_label_duplicates"] == [] and list(organ_only["tasks"]) == ["organ"]

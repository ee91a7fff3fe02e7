"""Splits: grouped by patient, stratified on the main task, k-fold, dedupe, per-task summaries, and the split CSV
round trip."""

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from medclass.data import splits
from medclass.data.base import ImageDataset, Sample
from medclass.data.splits import (load_splits, make_splits, patients_in_several_splits, save_splits, select_fold,
                                  split_summary, stratified_split, stratify_keys)
from medclass.core.errors import DataError


def dataset(samples, classes=("a", "b", "c")) -> ImageDataset:
    return ImageDataset(name="toy", samples=samples, tasks={"label": list(classes)}, loader=lambda s: None)


def patient_dataset(n_patients=120, seed=0) -> ImageDataset:
    """Patients with 1-4 images each, all of one class; classes 60% / 30% / 10%."""
    rng = np.random.default_rng(seed)
    samples = []
    for p in range(n_patients):
        label = rng.choice(["a", "b", "c"], p=[0.6, 0.3, 0.1])
        samples += [Sample(f"img/{p}_{k}.png", {"label": str(label)}, patient=f"p{p}")
                    for k in range(rng.integers(1, 5))]
    return dataset(samples)


def split_of(ds) -> dict:
    return {s.source: s.split for s in ds.samples}


def test_every_image_once_and_no_patient_in_two_splits():
    ds = patient_dataset()
    out = make_splits(ds, val=0.15, test=0.15, seed=1)
    assert sorted(s.source for s in out.samples) == sorted(s.source for s in ds.samples)
    assert patients_in_several_splits(out) == []
    fractions = Counter(s.split for s in out.samples)
    assert set(fractions) == {"train", "val", "test"}
    assert 0.08 < fractions["test"] / len(out) < 0.25 and 0.08 < fractions["val"] / len(out) < 0.25
    assert out.meta["split"]["by"] == "patient"


def test_stratification_roughly_kept():
    ds = patient_dataset(n_patients=300)
    out = make_splits(ds, val=0.2, test=0.2, seed=0)
    overall = Counter(s.labels["label"] for s in ds.samples)
    for split in ("train", "val", "test"):
        part = Counter(s.labels["label"] for s in out.samples if s.split == split)
        for name in "abc":
            assert abs(part[name] / sum(part.values()) - overall[name] / len(ds)) < 0.06


def test_by_image_ignores_patients_and_seed_is_reproducible():
    ds = patient_dataset()
    assert split_of(make_splits(ds, seed=3, by_patient=False)) == split_of(make_splits(ds, seed=3, by_patient=False))
    assert make_splits(ds, by_patient=False).meta["split"]["by"] == "image"
    assert split_of(make_splits(ds, seed=3)) != split_of(make_splits(ds, seed=4))


def test_multi_label_stratifies_on_rarest_label():
    samples = [Sample("1", {"label": ("a", "c")}), Sample("2", {"label": ("a",)}), Sample("3", {"label": ("b", "a")})]
    assert stratify_keys(dataset(samples)) == ["c", "a", "b"]


def test_k_fold_folds_disjoint_and_cover_the_non_test_part(tmp_path):
    out = make_splits(patient_dataset(), test=0.2, folds=4, seed=0)
    folds = out.meta["folds"]
    non_test = {s.source for s in out.samples if s.split != "test"}
    assert set(folds) == non_test and set(folds.values()) == {0, 1, 2, 3}
    patient_folds = {}
    for s in out.samples:
        if s.source in folds:
            patient_folds.setdefault(s.patient, set()).add(folds[s.source])
    assert all(len(f) == 1 for f in patient_folds.values())
    val_sets = [{s.source for s in select_fold(out, i).samples if s.split == "val"} for i in range(4)]
    assert all(not (val_sets[i] & val_sets[j]) for i in range(4) for j in range(i + 1, 4))
    assert set().union(*val_sets) == non_test


def test_k_fold_file_needs_a_fold_to_load(tmp_path):
    ds = patient_dataset()
    out = make_splits(ds, test=0.2, folds=3)
    save_splits(out, tmp_path / "s.csv")
    with pytest.raises(DataError, match=r"folds 0, 1, 2 and no val rows"):
        load_splits(ds, tmp_path / "s.csv")
    loaded = load_splits(ds, tmp_path / "s.csv", fold=2)
    expected = {src for src, f in out.meta["folds"].items() if f == 2}
    assert {s.source for s in loaded.samples if s.split == "val"} == expected
    with pytest.raises(DataError, match=r"no fold 7"):
        load_splits(ds, tmp_path / "s.csv", fold=7)


def test_dedupe_keeps_one_of_agreeing_groups_and_drops_conflicting(tmp_path):
    samples = [Sample(f"s{i}", {"label": "abc"[i % 3]}) for i in range(30)]
    groups = [["s0", "s3", "s6"], ["s1", "s2"], ["s4", "not-in-dataset"]]  # s1 is 'b', s2 is 'c': conflict
    out = make_splits(dataset(samples), dedupe=groups)
    kept = {s.source for s in out.samples}
    assert "s0" in kept and not {"s3", "s6", "s1", "s2"} & kept and "s4" in kept
    assert out.meta["dedupe"] == {"groups": 3, "conflicting": 1, "dropped": 4}
    save_splits(out, tmp_path / "s.csv")
    reloaded = load_splits(dataset(samples), tmp_path / "s.csv")
    assert {s.source for s in reloaded.samples} == kept


def test_dedupe_true_asks_the_audits_duplicate_finder(monkeypatch):
    """dedupe drops what the audit's exact-duplicate finder (data/duplicates.py) reports."""
    monkeypatch.setattr(splits, "exact_duplicate_groups", lambda ds: [["s0", "s3"]])
    out = make_splits(dataset([Sample(f"s{i}", {"label": "abc"[i % 3]}) for i in range(30)]), dedupe=True)
    assert "s3" not in {s.source for s in out.samples} and out.meta["dedupe"]["dropped"] == 1


def test_old_api_round_trip_and_bad_split_value(tmp_path):
    ds = patient_dataset()
    out = stratified_split(ds, 0.15, 0.15, 0)
    assert patients_in_several_splits(out) == []
    save_splits(out, tmp_path / "s.csv")
    assert split_of(load_splits(ds, tmp_path / "s.csv")) == split_of(out)
    (tmp_path / "bad.csv").write_text("source,split\nimg/0_0.png,train\nimg/1_0.png,holdout\n")
    with pytest.raises(DataError, match=r"bad.csv: row 3, column split: .*'holdout'"):
        load_splits(ds, tmp_path / "bad.csv")


def test_fractions_are_checked():
    with pytest.raises(DataError, match=r"val=0.6, test=0.5"):
        make_splits(patient_dataset(), val=0.6, test=0.5)


def two_task_dataset(n=60) -> ImageDataset:
    """Main task organ on every image; malignancy missing on every third image, a finding set (multi-label) too."""
    samples = [Sample(f"s{i}", {"organ": "ab"[i % 2], **({"malignancy": "xy"[i % 4 // 2]} if i % 3 else {}),
                                "findings": ("f",) if i % 5 == 0 else ()}) for i in range(n)]
    return ImageDataset("toy", samples, {"organ": ["a", "b"], "malignancy": ["x", "y"], "findings": ["f"]},
                        loader=lambda s: None, target="organ", selected=("organ", "malignancy"),
                        multilabel=("findings",))


def test_strata_come_from_the_main_task_with_one_for_missing_labels():
    ds = two_task_dataset()
    assert stratify_keys(ds)[:4] == ["a", "b", "a", "b"]
    by_malignancy = replace(ds, target="malignancy", selected=("malignancy", "organ"))
    assert stratify_keys(by_malignancy)[:5] == ["(no label)", "x", "y", "(no label)", "x"]
    by_findings = replace(ds, target="findings", selected=())
    assert stratify_keys(by_findings)[:6] == ["f", "(no finding)", "(no finding)", "(no finding)", "(no finding)", "f"]


def test_split_summary_per_task_counts_images_without_a_label():
    out = make_splits(two_task_dataset(), seed=0, by_patient=False)
    main = split_summary(out)
    assert list(main[0]) == ["split", "images", "patients", "a", "b"]
    rows = split_summary(out, "malignancy")
    assert list(rows[0]) == ["split", "images", "patients", "x", "y", "(no label)"]
    for row in rows:
        part = [s for s in out.samples if s.split == row["split"]]
        assert row["(no label)"] == sum("malignancy" not in s.labels for s in part) and row["images"] == len(part)
        assert row["x"] + row["y"] + row["(no label)"] == len(part)
    assert sum(r["(no label)"] for r in rows) == 20
    findings = split_summary(out, "findings")
    assert sum(r["f"] for r in findings) == 12 and sum(r["(no finding)"] for r in findings) == 48

"""Split groups: near-duplicate clusters stay in one split, patients win over them, and one decode serves both the
grouping and the audit. The data are tiny class folders holding noised and re-encoded copies of a few images."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from medclass.data import open_dataset
from medclass.data.audit import audit_dataset
from medclass.data.groups import DUPLICATES, NONE, PATIENT, split_groups
from medclass.data.splits import carve_validation, make_splits, stratified_split
from medclass.training.config import TrainConfig

SEEDS = range(6)


def pattern(seed: int, side: int = 64) -> np.ndarray:
    """A blocky random picture: distinct seeds give unrelated images (phash ~32 bits apart)."""
    grid = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((side, side), Image.Resampling.NEAREST))


def noised(pixels: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-4, 5, pixels.shape)
    return np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8)


def folder_with_copies(root: Path, per_class: int = 14) -> list[set[str]]:
    """Classes a and b; per class: one image with a noised and a re-encoded (exact) copy, two with a noised copy.
    Returns the expected clusters as sets of file names."""
    clusters = []
    for c, label in enumerate("ab"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            pixels = pattern(100 * c + k)
            Image.fromarray(pixels).save(root / label / f"{label}{k}.png")
            if k < 3:
                Image.fromarray(noised(pixels, k)).save(root / label / f"{label}{k}_noisy.png")
                clusters.append({f"{label}{k}.png", f"{label}{k}_noisy.png"})
        Image.fromarray(pattern(100 * c)).save(root / label / f"{label}0_copy.bmp")
        clusters[-3].add(f"{label}0_copy.bmp")
    return clusters


def name(sample) -> str:
    return Path(sample.source).name


def crossing(dataset, clusters: list[set[str]]) -> list[set[str]]:
    """Clusters whose images sit in more than one split."""
    split_of = {name(s): s.split for s in dataset.samples}
    return [c for c in clusters if len({split_of[n] for n in c}) > 1]


def counting_loader(dataset):
    """The dataset with a loader that counts decodes, and the counter."""
    calls = []

    def load(sample):
        calls.append(sample.source)
        return dataset.loader(sample)

    return replace(dataset, loader=load), calls


@pytest.fixture
def copies(tmp_path):
    clusters = folder_with_copies(tmp_path / "data")
    return open_dataset(tmp_path / "data"), clusters


def test_exact_and_near_copies_form_one_group_each(copies):
    dataset, clusters = copies
    grouping = split_groups(dataset, group_duplicates=True)
    members = {}
    for sample, group in zip(dataset.samples, grouping.ids):
        members.setdefault(group, set()).add(name(sample))
    assert sorted(map(sorted, (m for m in members.values() if len(m) > 1))) == sorted(map(sorted, clusters))
    assert grouping.summary() == {"by": DUPLICATES, "groups": 28, "multi_image_groups": 6}


def test_no_cluster_crosses_splits_whatever_the_seed(copies):
    dataset, clusters = copies
    ungrouped = [crossing(make_splits(dataset, seed=seed), clusters) for seed in SEEDS]
    assert any(ungrouped)  # the data can fail the check below: a plain split does cut clusters
    for seed in SEEDS:
        split = stratified_split(dataset, 0.15, 0.15, seed, group_duplicates=True)
        assert crossing(split, clusters) == [], seed
        assert split.meta["split_grouping"] == {"by": DUPLICATES, "groups": 28, "multi_image_groups": 6}
        assert {s.split for s in split.samples} == {"train", "val", "test"}


def test_cv_folds_keep_clusters_too(copies):
    dataset, clusters = copies
    split = make_splits(dataset, test=0.2, folds=3, seed=1, group_duplicates=True)
    fold_of = {name(s): split.meta["folds"].get(s.source, "test") for s in split.samples}
    assert all(len({fold_of[n] for n in c}) == 1 for c in clusters)


def test_without_grouping_the_split_is_the_old_one_and_nothing_is_decoded(copies):
    dataset, _ = copies
    counted, calls = counting_loader(dataset)
    split = make_splits(counted, seed=2, group_duplicates=False)
    assert calls == [] and split.meta["split_grouping"] == {"by": NONE, "groups": 36, "multi_image_groups": 0}
    assert [s.split for s in split.samples] == [s.split for s in make_splits(dataset, seed=2).samples]


def test_patients_take_precedence_over_duplicate_clusters(copies):
    dataset, _ = copies
    # every file its own patient, except a0 and its copies, which are patient "x" (so one group of 3)
    samples = [replace(s, patient="x" if name(s).startswith("a0") else f"p{i}") for i, s in enumerate(dataset.samples)]
    counted, calls = counting_loader(dataset.with_samples(samples))
    grouping = split_groups(counted, group_duplicates=True)
    assert calls == []  # patients known: no image is decoded
    assert grouping.summary() == {"by": PATIENT, "groups": 34, "multi_image_groups": 1}
    split = make_splits(counted, seed=0, group_duplicates=True)
    assert split.meta["split_grouping"]["by"] == PATIENT and split.meta["split"]["by"] == "patient"


def test_carved_validation_keeps_clusters_together(tmp_path):
    clusters = folder_with_copies(tmp_path / "data" / "train")
    for label in "ab":
        for k in range(3):
            (tmp_path / "data" / "test" / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pattern(1000 + 10 * k + ord(label))).save(tmp_path / "data" / "test" / label / f"t{k}.png")
    dataset = open_dataset(tmp_path / "data")
    assert any(crossing(carve_validation(dataset, 0.3, seed), clusters) for seed in SEEDS)
    for seed in SEEDS:
        carved = carve_validation(dataset, 0.3, seed, group_duplicates=True)
        assert crossing(carved, clusters) == [], seed
        assert sum(s.split == "val" for s in carved.samples) > 0
        assert {name(s) for s in carved.samples if s.split == "test"} == {f"t{k}.png" for k in range(3)}
    assert carved.meta["split_grouping"] == {"by": DUPLICATES, "groups": 28, "multi_image_groups": 6}


def test_the_audit_reuses_the_decodes_of_the_grouping(copies):
    dataset, _ = copies
    counted, calls = counting_loader(dataset)
    scanned = {}
    split = make_splits(counted, seed=0, group_duplicates=True, scanned=scanned)
    assert len(calls) == len(dataset) == len(scanned)
    report = audit_dataset(split, scanned=scanned)
    assert len(calls) == len(dataset)  # not one more decode
    summary = report["summary"]
    assert summary["near_duplicate_groups"] == 6 and summary["near_duplicate_cross_split_groups"] == 0


def test_runs_saved_before_the_option_resume_without_grouping(tmp_path):
    config = TrainConfig(data="d", out="o")
    saved = config.to_dict()
    del saved["group_duplicates"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"config": saved}))
    assert config.group_duplicates is True and TrainConfig.load(tmp_path / "config.yaml").group_duplicates is False

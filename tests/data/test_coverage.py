"""Class coverage per task: every class (every finding, for a multi-label task) must reach the splits it needs."""

from medclass.data.base import ImageDataset, Sample
from medclass.data.coverage import counts_by_class, coverage_findings, missing_classes


def two_tasks(splits=("train", "val", "test")) -> ImageDataset:
    """organ on every image; malignancy 'malignant' only in train and test; findings: 'Mass' never in val."""
    samples = []
    for split in splits:
        for i in range(4):
            malignancy = "benign" if i % 2 or split == "val" else "malignant"
            labels = {"organ": "ab"[i % 2], "findings": ("Mass",) if split != "val" and i == 0 else ()}
            if i != 3:  # the fourth image of every split has no malignancy label
                labels["malignancy"] = malignancy
            samples.append(Sample(f"{split}{i}", labels, split=split))
    return ImageDataset("toy", samples, {"organ": ["a", "b"], "malignancy": ["benign", "malignant"],
                                         "findings": ["Mass", "Nodule"]},
                        loader=lambda s: None, target="organ", selected=("organ", "malignancy", "findings"),
                        multilabel=("findings",))


def test_counts_by_class_per_task_leave_unlabelled_images_out():
    ds = two_tasks()
    assert counts_by_class(ds) == {"a": {"train": 2, "val": 2, "test": 2}, "b": {"train": 2, "val": 2, "test": 2}}
    assert counts_by_class(ds, "malignancy") == {"benign": {"train": 1, "val": 3, "test": 1},
                                                 "malignant": {"train": 2, "val": 0, "test": 2}}
    assert counts_by_class(ds, "findings") == {"Mass": {"train": 1, "val": 0, "test": 1},
                                               "Nodule": {"train": 0, "val": 0, "test": 0}}


def test_missing_classes_name_the_task_unless_it_is_the_target():
    ds = two_tasks()
    assert missing_classes(ds, ("train", "val")) == []
    [malignant] = missing_classes(ds, ("train", "val"), "malignancy")
    assert malignant["task"] == "malignancy" and malignant["splits"] == ["val"]
    assert malignant["message"] == "task 'malignancy': class 'malignant' has no validation image (train 2, val 0, " \
                                   "test 2)"
    findings = missing_classes(ds, ("train", "val"), "findings")
    assert [(f["class"], f["splits"]) for f in findings] == [("Mass", ["val"]), ("Nodule", ["train", "val"])]
    assert findings[1]["message"].startswith("task 'findings': class 'Nodule' has no training or validation image")


def test_coverage_findings_cover_every_learned_task_and_only_those():
    ds = two_tasks()
    assert [(f["task"], f["class"]) for f in coverage_findings(ds)] == [
        ("malignancy", "malignant"), ("findings", "Mass"), ("findings", "Nodule")]
    only_organ = ImageDataset(ds.name, ds.samples, ds.tasks, ds.loader, target="organ", multilabel=ds.multilabel)
    assert coverage_findings(only_organ) == []


def test_coverage_before_any_split_counts_the_images_of_each_task():
    samples = [Sample(f"s{i}", {"organ": "ab"[i % 2], "findings": ("Mass",) if i < 2 else (),
                                **({"malignancy": "malignant" if i == 0 else "benign"} if i < 4 else {})})
               for i in range(6)]
    ds = ImageDataset("toy", samples, {"organ": ["a", "b"], "malignancy": ["benign", "malignant"],
                                       "findings": ["Mass", "Nodule"]}, loader=lambda s: None, target="organ",
                      selected=("organ", "malignancy", "findings"), multilabel=("findings",))
    assert [f["message"] for f in coverage_findings(ds)] == [
        "task 'malignancy': class 'malignant' has 1 image(s): too few to stratify into train/val/test",
        "task 'findings': class 'Mass' has 2 image(s): too few to stratify into train/val/test",
        "task 'findings': class 'Nodule' has 0 image(s): too few to stratify into train/val/test"]

"""Every reader option is used or refused; patient ids from file names in every layout; datasets pickle."""

import multiprocessing
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from medclass.data import open_dataset
from medclass.data.splits import carve_validation, make_splits, patients_in_several_splits
from medclass.core.errors import DataError
from medclass.training.datamodule import TorchImageDataset
from medclass.core.preprocessing import default_preprocessing
from tests.conftest import kermany_like, write_npz


def test_class_folders_get_patients_from_file_names_and_a_patient_level_split(tmp_path):
    ds = open_dataset(kermany_like(tmp_path / "xray"), patient_pattern=r"^(person\d+)_")
    assert all(s.patient and Path(s.source).name.startswith(s.patient + "_") for s in ds.samples)
    assert len({s.patient for s in ds.samples}) == 24
    split = make_splits(ds, seed=2)
    assert split.meta["split"]["by"] == "patient" and patients_in_several_splits(split) == []
    assert {s.split for s in split.samples} == {"train", "val", "test"}


def test_patient_from_path_reads_a_folder_of_the_path_in_nested_folders(tmp_path):
    for organ, cls in (("Lung", "lung_aca"), ("Lung", "lung_n"), ("Colon", "colon_aca")):
        for patient in ("p1", "p2"):
            folder = tmp_path / "mc" / organ / cls / f"{cls}-{patient}"
            folder.mkdir(parents=True)
            Image.new("L", (8, 8)).save(folder / "tile.png")
    ds = open_dataset(tmp_path / "mc", patient_pattern=r"^[^/]+/[^/]+/([^/]+)/", patient_from="path")
    assert ds.meta["format"] == "nested-folders"
    assert sorted(s.patient for s in ds.samples) == sorted(f"{c}-{p}" for c in ("lung_aca", "lung_n", "colon_aca")
                                                           for p in ("p1", "p2"))


def test_file_names_the_pattern_misses_are_listed_and_bad_patterns_refused(tmp_path):
    root = kermany_like(tmp_path / "xray", n_children=6)
    Image.new("L", (8, 8)).save(root / "NORMAL" / "IM-0001-0001.jpeg")
    with pytest.raises(DataError, match=r"1 of 13 image\(s\) do not match the patient pattern.*'IM-0001-0001.jpeg'"):
        open_dataset(root, patient_pattern=r"^(person\d+)_")
    with pytest.raises(DataError, match="expected exactly one capturing group"):
        open_dataset(root, patient_pattern=r"^person\d+_")
    with pytest.raises(DataError, match="--patient-from path needs --patient-pattern"):
        open_dataset(root, patient_from="path")
    with pytest.raises(DataError, match="--patient-from 'stem': expected one of name, path"):
        open_dataset(root, patient_pattern=r"(x)", patient_from="stem")


def test_an_option_the_reader_does_not_use_is_refused_naming_what_it_takes(tmp_path):
    folders = kermany_like(tmp_path / "xray", n_children=4)
    with pytest.raises(DataError, match=r"--image-col not used by the folders reader .*; it takes --patient-pattern, "
                                         r"--patient-from, --target, --positive, --negative"):
        open_dataset(folders, image_col="path")
    npz = write_npz(tmp_path / "tiny.npz")
    with pytest.raises(DataError, match=r"--patient-pattern, --mapping not used by the npz reader"):
        open_dataset(npz, patient_pattern=r"(\d+)", mapping="m.yaml")
    with pytest.raises(DataError, match=r"--colour not used by the npz reader"):
        open_dataset(npz, colour="red")
    assert len(open_dataset(npz, patient_pattern=None)) == 16  # None means "not given", as the CLI passes it


def test_validation_carved_from_shipped_train_is_stratified_and_grouped(tmp_path):
    root = kermany_like(tmp_path / "xray", n_children=120, layout="split")
    ds = open_dataset(root, patient_pattern=r"^(person\d+)_")
    carved = carve_validation(ds, 0.2, seed=0)
    assert patients_in_several_splits(carved) == []
    assert [s.source for s in carved.samples if s.split == "test"] == [s.source for s in ds.samples
                                                                        if s.split == "test"]
    val = Counter(s.labels["label"] for s in carved.samples if s.split == "val")
    assert val["NORMAL"] > 0 and val["PNEUMONIA"] > 0
    assert carved.meta["validation"] == {"carved_from": "train", "fraction": 0.2, "seed": 0, "by": "patient"}


def test_one_tiny_class_leaves_the_others_stratified(tmp_path):
    from medclass.data.base import ImageDataset, Sample

    samples = [Sample(f"{c}{i}.png", {"label": c}, split="train") for c, n in (("a", 60), ("b", 60), ("c", 1))
               for i in range(n)]
    ds = ImageDataset("toy", samples, {"label": ["a", "b", "c"]}, loader=lambda s: None)
    with pytest.warns(UserWarning, match=r"too few to stratify into train/val: 'c' has 1 image"):
        carved = carve_validation(ds, 0.2, seed=0)
    val = Counter(s.labels["label"] for s in carved.samples if s.split == "val")
    assert 10 <= val["a"] <= 14 and 10 <= val["b"] <= 14  # not 0 of one class, as an unstratified cut can give


@pytest.mark.parametrize("kind", ["folders", "npz"])
def test_dataset_loads_in_spawned_dataloader_workers(tmp_path, kind):
    path = kermany_like(tmp_path / "xray", n_children=6) if kind == "folders" else write_npz(tmp_path / "t.npz")
    ds = open_dataset(path)
    pickle.loads(pickle.dumps(ds))  # what `spawn` does to hand the dataset to a worker
    transform = default_preprocessing(8, 1).eval_transform()
    loader = DataLoader(TorchImageDataset(ds, transform), batch_size=4, num_workers=2,
                        multiprocessing_context=multiprocessing.get_context("spawn"))
    batches = list(loader)
    assert sum(len(y) for _, y in batches) == len(ds) and batches[0][0].shape[1:] == (1, 8, 8)

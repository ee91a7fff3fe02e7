"""A run does not depend on the folder it was trained from: every path it records is absolute, its split names
images relative to the data's root, and a run copied elsewhere with its data works once the data's new place is
given (`--run-data`)."""

import csv
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from medclass.cli import app
from medclass.core.errors import MedclassError
from medclass.evaluation import evaluate_run
from medclass.core.artifact import ModelArtifact
from medclass.evaluation.sample import sample_test_images
from medclass.core.rundir import RunDir
from medclass.training import TrainConfig, train
from medclass.data.run_data import run_dataset
from tests.conftest import multi_cancer_like

runner = CliRunner()
QUICK = dict(model="smallcnn", epochs=1, batch_size=16, audit=False, calibrate=False)


def _split_sources(run) -> list[str]:
    with open(RunDir(run).splits_file, newline="") as f:
        return [row["source"] for row in csv.DictReader(f)]


def test_a_run_trained_with_a_relative_mapping_is_evaluated_and_sampled_from_another_folder(tmp_path, monkeypatch):
    root, mapping = multi_cancer_like(tmp_path / "where" / "Multi Cancer", n_per_class=8)
    splits = tmp_path / "where" / "s.csv"
    monkeypatch.chdir(root.parent)  # everything typed relative to here, as a user does
    train(TrainConfig(data=root.name, out="runs/mc", reader_options={"mapping": mapping.name, "target": "malignancy"},
                      **QUICK))
    run = root.parent / "runs" / "mc"
    config = RunDir(run).settings()["config"]
    assert config["reader_options"]["mapping"] == str(mapping.resolve())
    assert config["out"] == str(run.resolve()) and config["data"] == str(root.resolve())
    provenance = ModelArtifact.load(run).provenance
    assert provenance["run_dir"] == str(run.resolve()) and provenance["data"] == str(root.resolve())
    shutil.copy(RunDir(run).splits_file, splits)
    train(TrainConfig(data=root.name, out="runs/given", splits=splits.name,
                      reader_options={"mapping": mapping.name, "target": "malignancy"}, **QUICK))
    assert RunDir(root.parent / "runs" / "given").settings()["config"]["splits"] == str(splits.resolve())

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    metrics, _ = evaluate_run(run, n_boot=10)
    assert metrics["n"] == len(run_dataset(RunDir(run), "test"))
    sampled, _ = sample_test_images(run, n=4, seed=0)
    assert len(sampled) == 4


def test_a_run_and_its_data_copied_elsewhere_work_when_the_data_path_is_given_again(tmp_path):
    root, mapping = multi_cancer_like(tmp_path / "old" / "Multi Cancer", n_per_class=8)
    inside = root / "mapping.yaml"  # a mapping kept with the data moves with it
    shutil.move(mapping, inside)
    run = tmp_path / "old" / "run"
    train(TrainConfig(data=str(root), out=str(run), reader_options={"mapping": str(inside), "target": "malignancy"},
                      **QUICK))
    sources = _split_sources(run)
    assert sources and not any(s.startswith("/") for s in sources)  # relative to the data root
    test_images = len(run_dataset(RunDir(run), "test"))

    new_run, new_data = tmp_path / "new" / "run", tmp_path / "new" / "data" / "MC"
    shutil.copytree(run, new_run)
    shutil.copytree(root, new_data)
    shutil.rmtree(tmp_path / "old")  # another machine: the old places are gone

    with pytest.raises(MedclassError, match=r"data .*Multi Cancer is not there.*--run-data"):
        run_dataset(RunDir(new_run), "test")
    result = runner.invoke(app, ["evaluate", str(new_run), "--json", "--n-boot", "10"])
    assert result.exit_code != 0 and "--run-data" in result.output

    assert len(run_dataset(RunDir(new_run, data=str(new_data)), "test")) == test_images
    result = runner.invoke(app, ["evaluate", str(new_run), "--run-data", str(new_data), "--json", "--n-boot", "10"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sample", str(new_run), "--run-data", str(new_data), "--n", "3", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "test image(s) right" in result.output


def test_an_older_run_whose_split_names_absolute_sources_still_loads_and_moves(tmp_path, demo_data):
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    run = tmp_path / "run"
    train(TrainConfig(data=str(data), out=str(run), **QUICK))
    splits = RunDir(run).splits_file
    with open(splits, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:  # as medclass wrote it before: absolute sources
        row["source"] = str(data / row["source"])
    with open(splits, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    expected = len(run_dataset(RunDir(run), "test"))
    moved = tmp_path / "moved"
    data.rename(moved)
    assert len(run_dataset(RunDir(run, data=str(moved)), "test")) == expected


def test_the_config_records_absolute_paths_for_a_weights_file(tmp_path, demo_data, monkeypatch):
    import timm
    import torch

    torch.save(timm.create_model("resnet18", num_classes=1000).state_dict(), tmp_path / "r18.pth")
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(data=str(demo_data), out="run", pretrained="r18.pth").with_absolute_paths()
    assert config.pretrained == str((tmp_path / "r18.pth").resolve()) and config.out == str((tmp_path / "run").resolve())
    saved = yaml.safe_load(yaml.safe_dump(config.to_dict()))
    assert TrainConfig(**saved).pretrained == config.pretrained

"""One short training run: what the run folder holds, resume, and refusal to overwrite."""

import pytest
import torch
import yaml

from medclass.core.errors import MedclassError
from medclass.training import TrainConfig, train
from medclass.training.history import HistoryWriter, read_history


def test_run_folder_holds_everything_to_reproduce_and_predict(trained_run):
    for name in ("config.yaml", "model.safetensors", "history.csv", "training_curves.png", "splits.csv",
                 "checkpoints/last.ckpt"):
        assert (trained_run / name).is_file(), name
    saved = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert saved["config"]["model"] == "smallcnn" and saved["config"]["seed"] == 0
    resolved = saved["resolved"]
    assert resolved["classes"] == ["benign", "malignant", "normal"]
    assert resolved["img_size"] == 32 and resolved["in_chans"] == 1  # from the grayscale 32-px data
    assert set(resolved["counts"]) == {"train", "val", "test"}
    assert resolved["in_memory"] is True and resolved["num_workers"] >= 0  # 42 small images: decoded once
    assert resolved["precision"] in ("bf16-mixed", "32-true") and resolved["channels_last"] is True
    rows = read_history(trained_run / "history.csv")
    assert [r["epoch"] for r in rows] == [1, 2] and all(0 <= r["val_auc"] <= 1 for r in rows)
    assert all(0 <= r["train_acc"] <= 1 for r in rows)  # training accuracy beside val_acc
    assert all(r["train_images_per_s"] > 0 and r["train_seconds"] > 0 for r in rows)


def test_auto_model_and_the_per_image_path_with_workers(demo_data, tmp_path):
    config = TrainConfig(data=str(demo_data), out=str(tmp_path / "run"), epochs=1, batch_size=16, in_memory="off",
                         num_workers="1", precision="32-true", audit=False)
    assert config.model == "auto"
    train(config)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["config"]["model"] == "smallcnn"  # 32-px images from scratch
    assert saved["resolved"] | {"in_memory": False, "num_workers": 1, "precision": "32-true"} == saved["resolved"]
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_split_is_recorded_and_disjoint(trained_run):
    lines = (trained_run / "splits.csv").read_text().splitlines()
    sources = [line.split(",")[0] for line in lines[1:]]
    assert len(sources) == len(set(sources)) == 42
    assert {line.split(",")[1] for line in lines[1:]} == {"train", "val", "test"}


class Crash(RuntimeError):
    pass


def test_crashed_run_resumes_where_it_stopped(demo_data, tmp_path, monkeypatch):
    config = TrainConfig(data=str(demo_data), out=str(tmp_path / "run"), model="smallcnn", epochs=3, batch_size=16)

    def crash_in_epoch_3(self, trainer, module):
        if trainer.current_epoch == 2:
            raise Crash("power cut")

    # epoch 2 scores worse than epoch 1, so the best checkpoint and the latest one differ
    val_aucs = iter([0.9, 0.5, 0.7])
    monkeypatch.setattr("medclass.evaluation.metrics.auc_score", lambda *args: next(val_aucs))
    monkeypatch.setattr(HistoryWriter, "on_train_epoch_start", crash_in_epoch_3, raising=False)
    with pytest.raises(Crash):
        train(config)
    monkeypatch.undo()
    assert not (tmp_path / "run" / "model.safetensors").exists()
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 1  # the latest finished epoch (0-based), not the best one (0)
    with pytest.raises(MedclassError, match="already holds a training run; pass --resume"):
        train(config)
    # only the run folder is needed to resume: data, model and schedule come from its config.yaml
    train(TrainConfig(data="", out=str(tmp_path / "run"), resume=True))
    history = read_history(tmp_path / "run" / "history.csv")
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert [round(r["val_auc"], 2) for r in history[:2]] == [0.9, 0.5]  # kept from before the crash
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_a_non_finite_loss_stops_the_run_naming_epoch_and_step_and_keeps_the_checkpoints(demo_data, tmp_path,
                                                                                         monkeypatch):
    epoch = {"now": 0}
    real_forward = torch.nn.CrossEntropyLoss.forward

    def diverge_in_epoch_2(self, logits, y):
        loss = real_forward(self, logits, y)
        return loss * float("nan") if epoch["now"] == 1 and torch.is_grad_enabled() else loss

    monkeypatch.setattr(HistoryWriter, "on_train_epoch_start",
                        lambda self, trainer, module: epoch.update(now=trainer.current_epoch), raising=False)
    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", diverge_in_epoch_2)
    run = tmp_path / "run"
    with pytest.raises(MedclassError, match=r"training loss is nan at epoch 2, step 1: stopped. Checkpoints"):
        train(TrainConfig(data=str(demo_data), out=str(run), model="smallcnn", epochs=3, batch_size=16, audit=False))
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    assert [r["epoch"] for r in read_history(run / "history.csv")] == [1]


def test_bad_options_are_refused_before_training(demo_data, tmp_path):
    with pytest.raises(MedclassError, match="optimizer must be"):
        TrainConfig(data=str(demo_data), out=str(tmp_path), optimizer="rmsprop")
    with pytest.raises(MedclassError, match="needs inputs of at least 32 px"):
        train(TrainConfig(data=str(demo_data), out=str(tmp_path / "r"), model="resnet18", img_size=16, epochs=1))
    with pytest.raises(MedclassError, match="nothing to resume"):
        train(TrainConfig(data=str(demo_data), out=str(tmp_path / "new"), resume=True))


def test_tensorboard_logs_into_the_run_folder_and_a_missing_mlflow_is_named(demo_data, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    train(TrainConfig(data=str(demo_data), out=str(run), model="smallcnn", epochs=2, batch_size=16, audit=False,
                      logger="tensorboard"))
    assert list((run / "tensorboard").glob("events.out.tfevents.*")) and len(read_history(run / "history.csv")) == 2
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else
                        real_find_spec(name, *a))
    with pytest.raises(MedclassError, match=r"--logger mlflow needs the mlflow package: pip install mlflow"):
        train(TrainConfig(data=str(demo_data), out=str(tmp_path / "other"), logger="mlflow"))
    assert not (tmp_path / "other").exists()


def test_modality_and_description_reach_the_artefact(demo_data, tmp_path):
    """What the server's page shows before an upload, and what Otsu boxes take their polarity from."""
    from medclass.inference import ModelArtifact

    train(TrainConfig(data=str(demo_data), out=str(tmp_path / "run"), model="smallcnn", epochs=1, batch_size=16,
                      audit=False, modality="ultrasound", description="phantom lesions, three classes"))
    artifact = ModelArtifact.load(tmp_path / "run", weights=False)
    assert (artifact.modality, artifact.description) == ("ultrasound", "phantom lesions, three classes")


def test_training_curves_plot_training_accuracy_beside_validation(tmp_path, monkeypatch):
    import csv

    import matplotlib.pyplot as plt

    from medclass.training.history import COLUMNS, plot_history

    with open(tmp_path / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({"epoch": e, "train_loss": 1 / e, "train_acc": 0.5 + e / 10, "val_loss": 1.2 / e,
                          "val_auc": 0.6, "val_acc": 0.5, "lr": 1e-3, "train_seconds": 1, "train_images_per_s": 9}
                         for e in (1, 2, 3))
    kept = []
    monkeypatch.setattr(plt, "close", kept.append)
    plot_history(tmp_path / "history.csv", tmp_path / "curves.png")
    drawn = {line.get_label(): line for ax in kept[0].axes for line in ax.get_lines()}
    assert {"train_acc", "val_acc", "train_loss", "val_loss", "val_auc"} <= set(drawn)
    assert list(drawn["train_acc"].get_ydata()) == pytest.approx([0.6, 0.7, 0.8])


def test_a_medmnist_set_trains_with_its_modality_unless_told_otherwise(tmp_path, capsys):
    """PneumoniaMNIST holds chest X-rays: no mirrored films, the X-ray jitter; `--modality other` keeps the generic
    augmentation, and data that names no modality gets a line saying its augmentation is generic."""
    from medclass.inference import ModelArtifact
    from tests.conftest import write_npz

    npz = write_npz(tmp_path / "pneumoniamnist.npz", shape=(16, 28, 28))
    options = dict(model="smallcnn", epochs=1, batch_size=16, audit=False)
    train(TrainConfig(data=str(npz), out=str(tmp_path / "xray"), **options))
    settings = yaml.safe_load((tmp_path / "xray" / "config.yaml").read_text())
    assert settings["config"]["modality"] == "xray" and settings["config"]["hflip"] is False
    assert settings["resolved"]["augmentation"]["brightness_contrast"] == 0.2
    assert ModelArtifact.load(tmp_path / "xray", weights=False).tta == []
    assert "modality: xray (pneumoniamnist.npz holds xray images)" in capsys.readouterr().err

    train(TrainConfig(data=str(npz), out=str(tmp_path / "other"), modality="other", **options))
    settings = yaml.safe_load((tmp_path / "other" / "config.yaml").read_text())
    assert settings["config"]["hflip"] is True and settings["resolved"]["augmentation"]["brightness_contrast"] == 0

    unnamed = write_npz(tmp_path / "mydata.npz", shape=(16, 28, 28))
    train(TrainConfig(data=str(unnamed), out=str(tmp_path / "generic"), **options))
    assert "augmentation: light, generic (horizontal flips on); --modality xray|" in capsys.readouterr().err


def test_the_temperature_rule_reaches_calibration_after_training(demo_data, tmp_path):
    import json

    train(TrainConfig(data=str(demo_data), out=str(tmp_path / "run"), model="smallcnn", epochs=1, batch_size=16,
                      audit=False, temperature_rule="out-of-fold"))
    chosen = json.loads((tmp_path / "run" / "calibration.json").read_text())["tasks"]["label"]["calibration"]
    assert chosen["chosen_by"]["rule"] == "out-of-fold"
    assert chosen["temperature"] == (chosen["chosen_by"]["fitted"] if chosen["chosen_by"]["kept"] else 1.0)
    with pytest.raises(MedclassError, match="temperature_rule must be one of no-sharpening, fitted, out-of-fold"):
        TrainConfig(data="d", out=str(tmp_path / "x"), temperature_rule="lowest")

"""A run folder is untrusted input: checkpoints planted in it are refused on resume, without running them."""

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medclass.cli import app
from medclass.core.errors import MedclassError
from medclass.training import TrainConfig, train
from medclass.training.checkpoints import best_checkpoint_named_in, load_checkpoint


class Payload:
    """Unpickling this opens (creates) the marker file: code run by merely loading a checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def interrupted_run(trained_run, tmp_path):
    """A copy of a finished 2-epoch run, made resumable again (as if it had stopped before its last epoch)."""
    run = shutil.copytree(trained_run, tmp_path / "run")
    (run / "model.safetensors").unlink()
    best = best_checkpoint_named_in(load_checkpoint(run / "checkpoints" / "last.ckpt"))
    _retarget_best(run, run / "checkpoints" / Path(best).name)  # the copy's records name the copy's own files
    return run


def plant(path, marker):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Payload(marker)}, path)


def test_planted_best_checkpoint_is_refused_before_any_epoch_and_never_runs(interrupted_run, tmp_path):
    planted = Path(best_checkpoint_named_in(load_checkpoint(interrupted_run / "checkpoints" / "last.ckpt")))
    assert planted.parent == interrupted_run / "checkpoints" and planted.is_file()
    marker = tmp_path / "payload_ran"
    plant(planted, marker)  # replaces the best checkpoint, which training reloads at the end
    history_before = (interrupted_run / "history.csv").read_text()

    refused = r"refused: not a checkpoint medclass wrote.*pickle asks to call (_?io|builtins)\.open"
    with pytest.raises(MedclassError, match=refused):
        load_checkpoint(planted)
    with pytest.raises(MedclassError, match="refused"):
        train(TrainConfig(data="", out=str(interrupted_run), resume=True, epochs=3))
    assert not marker.exists()  # the pickle's code did not run
    assert (interrupted_run / "history.csv").read_text() == history_before  # no epoch ran


def test_poisoned_last_checkpoint_is_one_line_on_the_command_line(interrupted_run, tmp_path):
    marker = tmp_path / "payload_ran"
    plant(interrupted_run / "checkpoints" / "last.ckpt", marker)
    result = CliRunner().invoke(app, ["train", "--out", str(interrupted_run), "--resume"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "last.ckpt: refused" in lines[0], lines
    assert not marker.exists()


def test_damaged_checkpoint_and_best_path_outside_the_run_are_refused(interrupted_run, tmp_path):
    last = interrupted_run / "checkpoints" / "last.ckpt"
    outside = tmp_path / "elsewhere.ckpt"
    shutil.copy(last, outside)
    _retarget_best(interrupted_run, outside)
    with pytest.raises(MedclassError, match="outside the run's checkpoints folder"):
        train(TrainConfig(data="", out=str(interrupted_run), resume=True))
    last.write_bytes(last.read_bytes()[:100])  # truncated
    with pytest.raises(MedclassError, match="last.ckpt: refused"):
        train(TrainConfig(data="", out=str(interrupted_run), resume=True))


def _retarget_best(run, best_path):
    """Rewrite last.ckpt so that its best-checkpoint record names `best_path` (what a tamperer would do)."""
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    for key, state in checkpoint["callbacks"].items():
        if key.startswith("ModelCheckpoint") and state.get("monitor"):
            state["best_model_path"] = str(best_path)
            state["dirpath"] = str(best_path.parent)
    torch.save(checkpoint, last)


def test_a_frozen_runs_checkpoints_hold_no_frozen_weights_yet_make_the_full_artefact_and_resume(demo_data, tmp_path):
    import timm
    import yaml

    from medclass.core.artifact import ModelArtifact
    from medclass.training.history import read_history
    from medclass.training.module import ClassifierModule

    torch.manual_seed(1)
    weights = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18", num_classes=1000).state_dict(), weights)
    run = tmp_path / "run"
    options = dict(model="resnet18", pretrained=str(weights), img_size=32, finetune="frozen", batch_size=16,
                   audit=False, scheduler="none", calibrate=False)
    train(TrainConfig(data=str(demo_data), out=str(run), epochs=1, **options))
    source = torch.load(weights, weights_only=True)
    full_bytes = sum(t.numel() * t.element_size() for t in source.values())
    checkpoints = sorted((run / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) == 2  # best and last
    for path in checkpoints:
        state = load_checkpoint(path)["state_dict"]
        assert "model.conv1.weight" not in state and "model.layer4.1.conv2.weight" not in state
        assert "model.fc.weight" in state and "model.bn1.running_var" in state  # what trains, and the statistics
        assert path.stat().st_size < full_bytes / 20

    artifact = ModelArtifact.load(run)
    best = load_checkpoint(best_checkpoint_named_in(load_checkpoint(run / "checkpoints" / "last.ckpt")))
    assert all(torch.equal(artifact.state_dict[k], v) for k, v in source.items() if not k.startswith("fc."))
    assert torch.equal(artifact.state_dict["fc.weight"], best["state_dict"]["model.fc.weight"])
    module = ClassifierModule(TrainConfig(data="", out=str(run), model="resnet18", pretrained=str(weights),
                                          finetune="frozen"), 3, 3)
    module.load_trained_state(best)
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(module.model.eval()(images), artifact.build_model().eval()(images))

    config = yaml.safe_load((run / "config.yaml").read_text())
    config["config"]["epochs"] = 2
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    train(TrainConfig(data="", out=str(run), resume=True))
    assert [r["epoch"] for r in read_history(run / "history.csv")] == [1, 2]

    config["config"]["epochs"] = 3
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    source["layer1.0.conv1.weight"] += 0.01  # the weights file changed since the run started
    torch.save(source, weights)
    with pytest.raises(MedclassError, match="frozen backbone.*differ.*r18.pth"):
        train(TrainConfig(data="", out=str(run), resume=True))

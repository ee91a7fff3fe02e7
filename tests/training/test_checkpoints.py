"""A run folder is untrusted input: checkpoints planted in it are refused on resume, without running them."""

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medclass.cli import app
from medclass.errors import MedclassError
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

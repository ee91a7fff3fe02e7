"""A real training process killed with SIGKILL mid-run (no handler, no cleanup) resumes and finishes its plan."""

import os
import signal
import subprocess
import sys
import time

import pytest

from medclass.data.demo import generate_demo_data
from medclass.training import TrainConfig, train
from medclass.training.history import read_history

EPOCHS = 4


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only")
def test_sigkilled_training_resumes_and_completes_the_planned_epochs(tmp_path):
    data = generate_demo_data(tmp_path / "data", n_per_class=60, size=64, seed=1)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "medclass", "train", "--data", str(data), "--out", str(run), "--model",
               "resnet18_small", "--epochs", str(EPOCHS), "--batch-size", "16", "--no-audit"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history, last = run / "history.csv", run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not (last.is_file() and history.is_file() and read_history(history)):  # epoch 1 finished and saved
        assert process.poll() is None and time.time() < deadline, "training ended or stalled before epoch 1"
        time.sleep(0.1)
    time.sleep(0.5)  # let the checkpoint write complete
    os.kill(process.pid, signal.SIGKILL)  # now inside epoch 2 (or its validation)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    before = read_history(history)
    assert 1 <= len(before) < EPOCHS and not (run / "model.safetensors").exists()

    train(TrainConfig(data="", out=str(run), resume=True))
    after = read_history(history)
    assert [r["epoch"] for r in after] == list(range(1, EPOCHS + 1))
    assert after[0] == before[0]  # the epoch finished before the kill is kept as it was
    assert (run / "model.safetensors").is_file()

"""Scale-out: a real two-process DDP run on the CPU (gloo) against a single-process run, and the rank helpers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import yaml

import medclass
from medclass.data.demo import generate_demo_data
from medclass.core.errors import MedclassError
from medclass.evaluation import evaluate_run
from medclass.training import TrainConfig, train
from medclass.training.checkpoints import load_checkpoint
from medclass.training.distributed import (RANK_VARIABLES, check_batch_split, is_global_zero, lightning_strategy,
                                           local_processes)
from medclass.training.history import read_history

EPOCHS = 5
# fp32 on both sides and no temperature scaling (a temperature moves a one-vs-rest AUC slightly), so that the DDP
# run's validation AUC can be checked against a plain evaluation of its model
COMMON = dict(model="smallcnn", epochs=EPOCHS, batch_size=32, num_workers="0", accelerator="cpu",
              precision="32-true", audit=False, calibrate=False, seed=0)


def ddp_command(data: Path, run: Path) -> list[str]:
    options = [f"--{key.replace('_', '-')}={value}" for key, value in COMMON.items()
               if key not in ("audit", "calibrate")]
    return [sys.executable, "-m", "medclass", "train", "--data", str(data), "--out", str(run), *options,
            "--no-audit", "--no-calibrate", "--devices", "2", "--strategy", "ddp"]


def child_environment() -> dict:
    """Lightning re-runs the command line for rank 1: it must import this checkout's medclass, and start as a
    fresh launch (no rank variables from whatever runs the tests)."""
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES + ("WORLD_SIZE", "MASTER_PORT")}
    src = str(Path(medclass.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def train_on_one_thread(config: TrainConfig):
    """As each DDP process runs (Lightning gives each its share of the cores); on a loaded 2-core machine two
    threads that wait on each other take 10x longer (56 s against 4 s for this run)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(config)
    finally:
        torch.set_num_threads(threads)


def test_two_process_ddp_on_the_cpu_completes_and_matches_a_single_process_run(tmp_path):
    # 3 classes x 100 images at 28 px: 45 validation images, an odd count, so the 2 ranks' shares are padded
    data = generate_demo_data(tmp_path / "data", n_per_class=100, size=28, seed=2)
    single = train_on_one_thread(TrainConfig(data=str(data), out=str(tmp_path / "single"), **COMMON))
    run = tmp_path / "ddp"
    done = subprocess.run(ddp_command(data, run), env=child_environment(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("best val AUC") == 1  # one summary, from rank 0

    assert sorted(p.name for p in run.glob("model.*")) == ["model.safetensors"] and not list(run.glob("*.partial"))
    resolved = yaml.safe_load((run / "config.yaml").read_text())["resolved"]
    assert resolved["processes"] == 2 and resolved["device_batch_size"] == 16  # the global batch stays 32
    history = read_history(run / "history.csv")
    assert [r["epoch"] for r in history] == list(range(1, EPOCHS + 1))
    ddp_auc = max(r["val_auc"] for r in history)

    # each validation image counted once: the gathered AUC is what the saved model scores on the val split
    metrics, _ = evaluate_run(run, split="val", n_boot=10)
    best = max(history, key=lambda r: r["val_auc"])
    assert metrics["auc"] == pytest.approx(ddp_auc, abs=1e-4) and metrics["accuracy"] == pytest.approx(
        best["val_acc"], abs=1e-4)
    # within noise of one process on the same data and seed: an easy task, 45 validation images
    assert single.best_val_auc > 0.8 and ddp_auc > 0.8 and abs(ddp_auc - single.best_val_auc) < 0.1


def run_frozen_resnet_under_ddp(data: Path, tmp_path: Path, *options: str, env: dict | None = None
                                ) -> tuple[Path, Path]:
    """A 2-epoch two-process run of resnet18 from a random 'pretrained' file; returns (run folder, weights file)."""
    torch.manual_seed(1)
    weights = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18", num_classes=1000).state_dict(), weights)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "medclass", "train", "--data", str(data), "--out", str(run), "--model",
               "resnet18", "--pretrained", str(weights), "--img-size", "32", "--epochs", "2", "--batch-size", "16",
               "--num-workers", "0", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--no-audit",
               "--no-calibrate", *options]
    done = subprocess.run(command, env=child_environment() | (env or {}), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return run, weights


def test_two_stage_fine_tuning_under_ddp_freezes_then_trains_the_backbone(demo_data, tmp_path):
    """DDP refuses parameters without a gradient unless told to look for them: the frozen first stage."""
    run, weights = run_frozen_resnet_under_ddp(demo_data, tmp_path, "--finetune", "two-stage", "--head-epochs", "1")
    assert [r["epoch"] for r in read_history(run / "history.csv")] == [1, 2]
    source = torch.load(weights, weights_only=True)["conv1.weight"]
    latest = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]["model.conv1.weight"]
    assert not torch.equal(latest, source)  # stage 2 trained the stem (model.safetensors holds the best epoch, maybe 1)


def test_cached_features_under_ddp_shard_like_images_and_score_what_the_saved_model_scores(demo_data, tmp_path):
    run, _ = run_frozen_resnet_under_ddp(demo_data, tmp_path, "--finetune", "frozen", "--augment", "none",
                                         "--precision", "32-true", env={"MEDCLASS_CACHE": str(tmp_path / "cache")})
    resolved = yaml.safe_load((run / "config.yaml").read_text())["resolved"]
    assert resolved["feature_cache"]["views"] == 2 and resolved["device_batch_size"] == 8
    history = read_history(run / "history.csv")
    metrics, _ = evaluate_run(run, split="val", n_boot=10)
    assert metrics["auc"] == pytest.approx(max(r["val_auc"] for r in history), abs=1e-4)


@pytest.mark.parametrize("env,zero", [
    ({}, True),
    ({"RANK": "0", "LOCAL_RANK": "0"}, True),  # torchrun, rank 0
    ({"RANK": "3", "LOCAL_RANK": "1"}, False),  # torchrun
    ({"SLURM_PROCID": "0"}, True),  # srun, task 0
    ({"SLURM_PROCID": "5"}, False),
    ({"SLURM_PROCID": "0", "LOCAL_RANK": "1", "NODE_RANK": "0"}, False),  # Lightning's child inside an sbatch script
    ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, False),  # Lightning's launcher, second machine
])
def test_global_rank_zero_from_the_launchers_environment(monkeypatch, env, zero):
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_global_zero() is zero


def test_processes_batch_split_and_strategy():
    assert local_processes("2", "cpu") == 2 and local_processes("0,1,3", "gpu") == 3
    assert local_processes("auto", "cpu") == 1
    check_batch_split(32, 4)
    with pytest.raises(MedclassError, match="use a multiple of 3"):
        check_batch_split(32, 3)
    assert lightning_strategy("ddp", "full", 2) == "ddp" and lightning_strategy("auto", "frozen", 1) == "auto"
    assert lightning_strategy("auto", "two-stage", 4)._ddp_kwargs == {"find_unused_parameters": True}
    with pytest.raises(MedclassError, match="strategy must be one of auto, ddp"):
        TrainConfig(data="x", out="y", strategy="fsdp")
    with pytest.raises(MedclassError, match="num_nodes must be >= 1"):
        TrainConfig(data="x", out="y", num_nodes=0)

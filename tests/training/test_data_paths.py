"""The two data paths (in memory, per image) hand the model the same batches; the speed settings resolve sanely."""

import pytest
import torch
from torch.utils.data import DataLoader

from medclass.data import open_dataset
from medclass.core.errors import MedclassError
from medclass.models import create_model
from medclass.training import datamodule as dm
from medclass.training import speed
from medclass.training.augment import BatchAugment
from medclass.core.preprocessing import Preprocessing
from tests.conftest import write_npz


@pytest.fixture
def npz_data(tmp_path):
    return open_dataset(str(write_npz(tmp_path / "tiny.npz", shape=(10, 12, 12))))


def _batches(module: dm.ImageDataModule) -> list:
    module.setup("fit")
    return [module.on_after_batch_transfer(batch, 0) for batch in module.val_dataloader()]


def test_in_memory_and_per_image_paths_give_identical_validation_batches(npz_data):
    prep = Preprocessing(16, 1, (0.5,), (0.5,))  # 12 px resized to 16 on both paths
    make = lambda in_memory: dm.ImageDataModule(npz_data, prep, BatchAugment(prep), batch_size=4, in_memory=in_memory)
    memory, per_image = _batches(make(True)), _batches(make(False))
    assert len(memory) == len(per_image) == 2
    for (x_mem, y_mem), (x_img, y_img) in zip(memory, per_image):
        torch.testing.assert_close(x_mem, x_img)
        assert torch.equal(y_mem, y_img)
    served = torch.stack([prep.eval_transform()(npz_data.subset("val").load_image(i)) for i in range(4)])
    torch.testing.assert_close(memory[0][0], served)


def test_in_memory_batches_are_whole_slices_of_one_uint8_tensor(npz_data):
    prep = Preprocessing(12, 1, (0.5,), (0.5,))
    images = dm.decode_all(npz_data.subset("train"), prep, num_workers=0)
    assert images.images.dtype == torch.uint8 and images.images.shape == (10, 1, 12, 12)
    x, y = next(iter(DataLoader(images, batch_size=4, shuffle=True, collate_fn=dm.keep_batch)))
    assert x.shape == (4, 1, 12, 12) and y.shape == (4,)


def test_memory_budget_decides_the_path(npz_data):
    prep = Preprocessing(100, 3, (0.5,) * 3, (0.5,) * 3)  # 15 train+val images x 30 kB
    assert dm.choose_in_memory("auto", npz_data, prep, budget_gb=1.0)
    assert not dm.choose_in_memory("auto", npz_data, prep, budget_gb=1e-5)
    assert not dm.choose_in_memory("off", npz_data, prep, budget_gb=1.0)
    with pytest.raises(MedclassError, match=r"tiny.npz: decoded images take 0\.0 GiB, over --memory-budget-gb 1e-05"):
        dm.choose_in_memory("on", npz_data, prep, budget_gb=1e-5)


@pytest.mark.parametrize("cpus,devices,expected", [(16, 1, 8), (16, 4, 3), (2, 1, 1), (1, 1, 0)])
def test_auto_workers_share_the_cpus_among_local_processes(monkeypatch, cpus, devices, expected):
    monkeypatch.setattr(dm.os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert dm.auto_workers(devices) == expected


def test_precision_auto_follows_the_hardware(monkeypatch):
    assert speed.resolve_precision("32-true", "auto") == "32-true"  # explicit settings pass through
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(speed, "_cpu_has_bf16", lambda: True)
    assert speed.resolve_precision("auto", "auto") == "bf16-mixed"
    monkeypatch.setattr(speed, "_cpu_has_bf16", lambda: False)
    assert speed.resolve_precision("auto", "cpu") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert speed.resolve_precision("auto", "gpu") == "16-mixed"  # e.g. a V100 or T4
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert speed.resolve_precision("auto", "auto") == "bf16-mixed"
    assert speed.resolve_precision("auto", "cpu") == "32-true"  # CPU asked for on a GPU machine; this CPU lacks bf16


def test_channels_last_and_compile_leave_the_weights_loadable():
    model = create_model("smallcnn", 2, 1)
    keys = list(model.state_dict())
    plan = speed.SpeedPlan("32-true", 0, True, channels_last=True, compile=True)
    prepared = speed.prepare_model(model, plan)
    conv = prepared.features[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert list(prepared.state_dict()) == keys  # in-place compile: checkpoints and artefacts keep their keys


def test_validation_probabilities_stay_valid_under_bf16_autocast():
    """bf16 softmax rows miss 1 by more than sklearn's multi-class AUC allows: validation AUC was NaN (logged 0)."""
    from medclass.evaluation.metrics import auc_score
    from medclass.training import TrainConfig
    from medclass.training.module import ClassifierModule

    module = ClassifierModule(TrainConfig(data="", out="", model="smallcnn", hflip=True), 5, 1).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        proba = module.predict_proba(torch.randn(40, 1, 16, 16))
    assert proba.dtype == torch.float32 and torch.allclose(proba.sum(1), torch.ones(40), atol=1e-6)
    assert 0 <= auc_score(torch.arange(40).numpy() % 5, proba.numpy()) <= 1

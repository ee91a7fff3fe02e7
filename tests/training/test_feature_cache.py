"""The feature cache: a frozen backbone's features computed once, reused across runs, invalidated by anything that
changes them, and training the head exactly as recomputing them every epoch does."""

import shutil

import numpy as np
import pytest
import timm
import torch
import yaml
from PIL import Image

from medclass.data import open_dataset
from medclass.core.artifact import ModelArtifact
from medclass.models import create_model, list_models, model_entry
from medclass.training.augment import BatchAugment
from medclass.training.augment_policy import resolve_policy
from medclass.training.module import ClassifierModule
from medclass.training import TrainConfig, train
from medclass.training.feature_cache import cached_features, pooled_features
from medclass.core.preprocessing import default_preprocessing


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCLASS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


def _weights(path, seed=1):
    torch.manual_seed(seed)
    torch.save(timm.create_model("resnet18", num_classes=1000).state_dict(), path)
    return path


def _frozen_run(data, out, weights, **options):
    options = {"augment": "none", "epochs": 3, **options}
    train(TrainConfig(data=str(data), out=str(out), model="resnet18", pretrained=str(weights), img_size=32,
                      finetune="frozen", batch_size=8, audit=False, precision="32-true", num_workers=0, **options))
    history = np.genfromtxt(out / "history.csv", delimiter=",", names=True)
    return history, yaml.safe_load((out / "config.yaml").read_text())["resolved"]


def test_cached_features_train_the_head_as_recomputing_them_does_and_are_reused(demo_data, tmp_path, cache_dir):
    weights = _weights(tmp_path / "w.pth")
    recomputed, plain = _frozen_run(demo_data, tmp_path / "recompute", weights, hflip=False, feature_cache=False)
    cached, first = _frozen_run(demo_data, tmp_path / "cache", weights, hflip=False)
    assert "feature_cache" not in plain
    for column in ("train_loss", "train_acc", "val_loss", "val_auc"):  # training accuracy logged on both paths
        assert np.allclose(recomputed[column], cached[column], atol=1e-5), column
    heads = [ModelArtifact.load(tmp_path / run).state_dict["fc.weight"] for run in ("recompute", "cache")]
    assert torch.allclose(*heads, atol=1e-5)
    n_images = sum(sum(first["counts"][split].values()) for split in ("train", "val"))
    assert first["feature_cache"]["computed"] == n_images and first["feature_cache"]["reused"] == 0
    again, second = _frozen_run(demo_data, tmp_path / "again", weights, hflip=False)
    assert second["feature_cache"]["computed"] == 0 and second["feature_cache"]["key"] == first["feature_cache"]["key"]
    assert np.array_equal(again["val_auc"], cached["val_auc"])
    assert len(list(cache_dir.glob("*.pt"))) == 1


def test_other_weights_or_preprocessing_make_a_new_key_and_an_edited_image_alone_is_recomputed(demo_data, tmp_path,
                                                                                             cache_dir):
    shutil.copytree(demo_data, tmp_path / "data")  # an image gets edited below
    dataset = open_dataset(str(tmp_path / "data"))
    splits = {"train": dataset.with_samples(dataset.samples[:10])}
    prep = default_preprocessing(32, 3)

    def run(weights, preprocessing=prep, data=splits):
        model = create_model("resnet18", 3, 3, pretrained=str(weights))
        return cached_features(model, data, preprocessing, "resnet18", {"head": "linear"}, 1, torch.device("cpu"),
                               "32-true", 0)[1]

    first = run(_weights(tmp_path / "a.pth", seed=1))
    assert (first.computed, run(tmp_path / "a.pth").reused) == (10, 10)
    assert run(_weights(tmp_path / "b.pth", seed=2)).key != first.key
    assert run(tmp_path / "a.pth", default_preprocessing(32, 3, {"mean": (0.4,) * 3, "std": (0.2,) * 3})).computed == 10
    edited = dataset.samples[3].source
    Image.fromarray(255 - np.asarray(Image.open(edited))).save(edited)
    assert run(tmp_path / "a.pth").computed == 1


def test_the_second_view_is_the_mirrored_image_and_flips_draw_between_views(demo_data, tmp_path, cache_dir):
    model = create_model("resnet18", 3, 3).eval()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    prep = default_preprocessing(32, 3)
    views = pooled_features(model, images, prep, 2, torch.device("cpu"), "32-true")
    mirrored = pooled_features(model, images.flip(-1), prep, 1, torch.device("cpu"), "32-true")
    assert views.shape == (4, 2, 512) and torch.allclose(views[:, 1], mirrored[:, 0], atol=1e-5)
    assert not torch.allclose(views[:, 0], views[:, 1])
    _, resolved = _frozen_run(demo_data, tmp_path / "flips", _weights(tmp_path / "w.pth"), hflip=True, epochs=2)
    assert resolved["feature_cache"]["views"] == 2


def test_no_cache_where_features_change_between_epochs(demo_data, tmp_path, cache_dir):
    weights = _weights(tmp_path / "w.pth")
    _, augmented = _frozen_run(demo_data, tmp_path / "light", weights, augment="light", epochs=1)
    assert "feature_cache" not in augmented and not cache_dir.exists()


# VGG's pre-logits block (fc6/fc7 as convolutions) holds its own dropout inside the frozen part: recomputing applies
# it, the cache (computed in eval mode) does not, so the two paths differ there by design.
DROPOUT_INSIDE_BACKBONE = {"vgg16_bn"}


@pytest.mark.parametrize("name", sorted(set(list_models()) - DROPOUT_INSIDE_BACKBONE))
def test_the_head_on_cached_features_is_the_models_own_forward_pass_dropout_included(name):
    module = ClassifierModule(TrainConfig(data="", out="", model=name, head="linear", drop_rate=0.3, hflip=False), 3,
                              3)
    module.freeze_backbone(True)
    module.train()
    size = max(model_entry(name).min_input, 32) if name != "inception_v3" else 75
    x = torch.randn(4, 3, size, size)
    with torch.no_grad():
        features = pooled_features(module.model, (x * 40 + 128).clamp(0, 255).to(torch.uint8), default_preprocessing(
            size, 3), 1, torch.device("cpu"), "32-true")
        normalised = BatchAugment(default_preprocessing(size, 3), resolve_policy("none", hflip=False))(
            (x * 40 + 128).clamp(0, 255).to(torch.uint8), train=False)
        module.train()
        torch.manual_seed(0)
        direct = module(normalised)
        module.on_features = True
        torch.manual_seed(0)
        cached = module(features[:, 0])
    assert torch.allclose(direct, cached, atol=1e-4), name

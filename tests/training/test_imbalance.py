"""Class-imbalance remedies: what each sampler draws, what focal loss weighs, and a run that uses them."""

import numpy as np
import pytest
import torch
import yaml

from medclass.core.errors import MedclassError
from medclass.training import TrainConfig, train
from medclass.training.imbalance import FocalLoss, OversampleSampler, balanced_class_weights, make_sampler

TARGETS = np.array([0] * 12 + [1] * 5 + [2] * 3)


def test_oversampling_repeats_minority_images_up_to_the_majority_count_and_keeps_every_image():
    sampler = OversampleSampler(TARGETS, seed=0)
    drawn = np.array(list(sampler))
    assert len(drawn) == len(sampler) == 36 and np.bincount(TARGETS[drawn]).tolist() == [12, 12, 12]
    assert set(drawn) == set(range(len(TARGETS)))
    counts = np.bincount(drawn, minlength=len(TARGETS))
    assert sorted(counts[12:17]) == [2, 2, 2, 3, 3]  # 5 images, 12 draws: two full rounds and 2 more, no repeats
    assert set(counts[17:]) == {4}  # 3 images, 12 draws: each exactly four times
    assert list(sampler) != list(drawn)  # a new order each epoch


def test_weighted_sampler_draws_classes_about_equally():
    drawn = np.array(list(make_sampler("weighted", np.repeat(TARGETS, 50), seed=0)))
    shares = np.bincount(np.repeat(TARGETS, 50)[drawn]) / len(drawn)
    assert np.allclose(shares, 1 / 3, atol=0.04)
    assert make_sampler("none", TARGETS, 0) is None


def test_focal_loss_is_cross_entropy_at_gamma_0_and_discounts_learnt_images():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.2, 0.0, 0.1], [0.0, 3.0, 0.0]])
    y = torch.tensor([0, 0, 2])
    weight = torch.tensor(balanced_class_weights(TARGETS, 3), dtype=torch.float32)
    for w, smoothing in ((None, 0.0), (weight, 0.1)):
        ce = torch.nn.CrossEntropyLoss(weight=w, label_smoothing=smoothing)(logits, y)
        assert torch.allclose(FocalLoss(0.0, w, smoothing)(logits, y), ce)
    per_image = [float(FocalLoss(2.0)(logits[i:i + 1], y[i:i + 1]) / torch.nn.functional.cross_entropy(
        logits[i:i + 1], y[i:i + 1])) for i in range(3)]
    assert per_image[0] < 0.01 < per_image[1] < per_image[2] < 1  # confident and right: almost no weight


def test_a_run_with_oversampling_and_focal_loss(demo_data, tmp_path):
    run = tmp_path / "run"
    train(TrainConfig(data=str(demo_data), out=str(run), model="smallcnn", epochs=1, batch_size=16,
                      sampler="oversample", loss="focal", audit=False))
    saved = yaml.safe_load((run / "config.yaml").read_text())["config"]
    assert saved["sampler"] == "oversample" and saved["loss"] == "focal" and (run / "model.safetensors").is_file()
    with pytest.raises(MedclassError, match="sampler must be one of none, weighted, oversample; got 'smote'"):
        TrainConfig(data="x", out="y", sampler="smote")

"""Batched augmentation on uint8 batches: validation equals the serving transform; training warps and mirrors."""

import numpy as np
import pytest
import torch
from PIL import Image

from medclass.errors import MedclassError
from medclass.training.augment import BatchAugment
from medclass.transforms import Preprocessing


def _images(n=6, size=20, mode="L"):
    rng = np.random.default_rng(0)
    shape = (size + 3, size - 2) if mode == "L" else (size + 3, size - 2, 3)  # not square: resize runs too
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode) for _ in range(n)]


@pytest.mark.parametrize("in_chans,mode", [(1, "L"), (3, "RGB")])
def test_validation_batch_equals_the_serving_transform(in_chans, mode):
    prep = Preprocessing(16, in_chans, (0.4,) * in_chans, (0.3,) * in_chans)
    images = _images(mode=mode)
    batch = torch.stack([prep.load_transform()(im) for im in images])
    assert batch.dtype == torch.uint8 and batch.shape == (6, in_chans, 16, 16)
    served = torch.stack([prep.eval_transform()(im) for im in images])
    for augment in ("none", "light", "strong"):
        torch.testing.assert_close(BatchAugment(prep, augment)(batch, train=False), served)


def test_training_batch_is_warped_but_keeps_shape_and_scale():
    prep = Preprocessing(16, 1, (0.5,), (0.5,))
    batch = torch.stack([prep.load_transform()(im) for im in _images()])
    plain = BatchAugment(prep, "light")(batch, train=False)
    torch.manual_seed(0)
    warped = BatchAugment(prep, "light")(batch, train=True)
    assert warped.shape == plain.shape and warped.dtype == torch.float32
    assert not torch.allclose(warped, plain) and warped.min() >= -1 - 1e-6 and warped.max() <= 1 + 1e-6
    torch.manual_seed(0)
    torch.testing.assert_close(BatchAugment(prep, "light")(batch, train=True), warped)  # seeded: reproducible
    torch.testing.assert_close(BatchAugment(prep, "none")(batch, train=True), plain)


@pytest.mark.parametrize("hflip,expect_mirrored", [(True, True), (False, False)])
def test_hflip_mirrors_about_half_of_the_images(hflip, expect_mirrored):
    image = np.zeros((32, 32), dtype=np.uint8)
    image[:, :12] = 255  # bright left third; mirrored, it is on the right
    batch = torch.from_numpy(image)[None, None].repeat(200, 1, 1, 1)
    torch.manual_seed(1)
    out = BatchAugment(Preprocessing(32, 1, (0.0,), (1.0,)), "light", hflip=hflip)(batch, train=True)
    mirrored = (out[..., 22:].mean((1, 2, 3)) > out[..., :10].mean((1, 2, 3))).float().mean()
    assert (0.3 < mirrored < 0.7) if expect_mirrored else mirrored == 0


def test_bad_input_is_refused():
    prep = Preprocessing(8, 1, (0.5,), (0.5,))
    with pytest.raises(MedclassError, match="augment must be one of none, light, strong; got 'wild'"):
        BatchAugment(prep, "wild")
    with pytest.raises(MedclassError, match="expects uint8 images; got torch.float32"):
        BatchAugment(prep)(torch.zeros(2, 1, 8, 8), train=True)

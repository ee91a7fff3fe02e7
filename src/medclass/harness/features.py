"""Frozen ImageNet features of EfficientNet-Lite0 (the weights packaged for offline use) for linear probes."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from medclass.data.base import ImageDataset
from medclass.models import create_model
from medclass.models.timm_models import packaged_lite0_weights
from medclass.training.datamodule import TorchImageDataset
from medclass.training.speed import resolve_precision
from medclass.core.preprocessing import default_preprocessing


def packaged_weights_available() -> bool:
    return packaged_lite0_weights() is not None


@torch.no_grad()
def frozen_features(splits: dict[str, ImageDataset], img_size: int, batch_size: int = 128) -> dict[str, np.ndarray]:
    """Pooled 1280-d features (pre-classifier) per split, images upscaled to `img_size`, RGB, the weights'
    mean/std; the network is built once for all splits."""
    model = create_model("efficientnet_lite0", num_classes=2, in_chans=3, pretrained=True).eval()
    transform = default_preprocessing(img_size, 3, model.pretrained_cfg).eval_transform()
    bf16 = resolve_precision("auto", "cpu") == "bf16-mixed"
    features = {}
    for split, dataset in splits.items():
        chunks = []
        for images, _ in DataLoader(TorchImageDataset(dataset, transform), batch_size=batch_size):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                chunks.append(model.forward_head(model.forward_features(images), pre_logits=True).float())
        features[split] = torch.cat(chunks).numpy()
    return features

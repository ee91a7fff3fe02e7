"""Backends: what turns a preprocessed batch into logits. The Predictor does the rest (decoding, preprocessing,
test-time views, temperature, softmax/sigmoid, thresholds) the same way whichever backend runs the network.

A backend is called with a float32 batch (N, C, H, W), already normalised, and returns the logits (N, outputs) as
float32 numpy: every head's outputs side by side, exactly as the artefact's network computes them.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

BACKENDS = ("torch", "onnx")


class Backend(Protocol):
    name: str

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray: ...


class TorchBackend:
    """The artefact's network in eager PyTorch, on a CPU or a GPU. Explanations (Grad-CAM) need it: they
    differentiate through the network."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        batch = torch.as_tensor(batch).to(self.device)
        return self.model(batch).float().cpu().numpy()

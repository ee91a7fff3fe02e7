"""Backends: what turns a preprocessed batch into logits. The Predictor does the rest (decoding, preprocessing,
test-time views, temperature, softmax/sigmoid, thresholds) the same way whichever backend runs the network.

A backend is called with a float32 batch (N, C, H, W), already normalised, and returns the logits (N, outputs) as
float32 numpy: every head's outputs side by side, exactly as the artefact's network computes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from medclass.errors import MedclassError

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


class OnnxBackend:
    """An exported network (`medclass export RUN --format onnx`) in ONNX Runtime: no PyTorch needed to predict,
    and usually faster on a CPU. `threads`: intra-op threads (None: ONNX Runtime's default, one per core).
    `device="cuda"` uses the CUDA provider where onnxruntime-gpu is installed (else the CPU)."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu"):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise MedclassError(f"{self.path}: no ONNX model here (make one with `medclass export RUN --format onnx`)")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types for a foreign or damaged file
            raise MedclassError(f"{self.path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().cpu().numpy()
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run(None, {self.input_name: batch})[0].astype(np.float32, copy=False)

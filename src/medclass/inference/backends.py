"""Backends: what turns a preprocessed batch into logits. The Predictor does the rest (decoding, preprocessing,
test-time views, temperature, softmax/sigmoid, thresholds) the same way whichever backend runs the network.

A backend is called with a float32 batch (N, C, H, W), already normalised, and returns the logits (N, outputs) as
float32 numpy: every head's outputs side by side, exactly as the artefact's network computes them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from medclass.errors import MedclassError

BACKENDS = ("torch", "onnx", "ncnn")


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


class NcnnBackend:
    """A network exported for ncnn (`medclass export RUN --format ncnn`), in fp32. ncnn runs 3x3 convolutions
    through Winograd transforms (fewer multiplications, the same sums), the one CPU path measured here at 2x eager
    PyTorch with the same probabilities (see inference/ncnn_export.py). It runs one image at a time, so a batch is
    spread over `threads` workers (default: one per CPU), each a single-threaded extractor of the same network:
    on 2 cores that was 10% faster than one extractor using both (ncnn fixes its threading when it loads). Each
    worker keeps its own memory pools between images (another 15% on ResNet-18)."""

    name = "ncnn"

    def __init__(self, param: str | Path, threads: int | None = None):
        import ncnn

        self.path = Path(param)
        weights = self.path.with_suffix(".bin")
        for needed in (self.path, weights):
            if not needed.is_file():
                raise MedclassError(f"{needed}: not found (make the model with `medclass export RUN --format ncnn`)")
        self.net = ncnn.Net()
        options = self.net.opt
        options.num_threads = 1
        # fp32 throughout: ncnn would otherwise store and compute in fp16/bf16 where the CPU has them
        for flag in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage",
                     "use_bf16_packed"):
            setattr(options, flag, False)
        # Winograd F(4x4, 3x3) rather than F(6x6, 3x3) too: no slower here, and its rounding error is smaller
        options.use_winograd63_convolution = False
        if self.net.load_param(str(self.path)) != 0 or self.net.load_model(str(weights)) != 0:
            raise MedclassError(f"{self.path}: not a loadable ncnn model (with {weights.name} beside it)")
        self.input_name, self.output_name = self.net.input_names()[0], self.net.output_names()[0]
        self.threads = threads or ncnn.get_cpu_count()
        self._ncnn = ncnn
        self._pool = None
        self._local = threading.local()

    def _one(self, image: np.ndarray) -> np.ndarray:
        extractor = self.net.create_extractor()
        if not hasattr(self._local, "allocators"):  # one pair per worker thread: no locking needed
            self._local.allocators = (self._ncnn.UnlockedPoolAllocator(), self._ncnn.UnlockedPoolAllocator())
        extractor.set_blob_allocator(self._local.allocators[0])
        extractor.set_workspace_allocator(self._local.allocators[1])
        extractor.input(self.input_name, self._ncnn.Mat(image))
        status, out = extractor.extract(self.output_name)
        if status != 0:
            raise MedclassError(f"{self.path}: ncnn failed on an image (status {status})")
        return np.array(out, dtype=np.float32).reshape(-1)

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        from concurrent.futures import ThreadPoolExecutor

        if isinstance(batch, torch.Tensor):
            batch = batch.detach().cpu().numpy()
        images = [np.ascontiguousarray(image, dtype=np.float32) for image in batch]
        if len(images) == 1 or self.threads == 1:
            return np.stack([self._one(image) for image in images])
        if self._pool is None:  # ncnn's extract releases the GIL: Python threads run images in parallel
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ncnn")
        return np.stack(list(self._pool.map(self._one, images)))

"""Backends: what turns a preprocessed batch into logits. The Predictor does the rest (decoding, preprocessing,
test-time views, temperature, softmax/sigmoid, thresholds) the same way whichever backend runs the network.

A backend is called with a float32 batch (N, C, H, W), already normalised, and returns the logits (N, outputs) as
float32 numpy: every head's outputs side by side, exactly as the artefact's network computes them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np
import torch

from medclass.core.errors import MedclassError

BACKENDS = ("torch", "onnx", "ncnn")


class Backend(Protocol):
    name: str
    files: tuple[Path, ...]  # the exported files it runs (empty for the torch backend)

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray: ...

    def network_bytes(self) -> Iterable[bytes] | None:
        """The network it runs (graph and weights, without metadata), as a served version hashes it; None: the
        artefact's own weights (ModelArtifact.version)."""


class TorchBackend:
    """The artefact's network in eager PyTorch, on a CPU or a GPU. Explanations (Grad-CAM) need it: they
    differentiate through the network."""

    name = "torch"
    files = ()

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        batch = torch.as_tensor(batch).to(self.device)
        return self.model(batch).float().cpu().numpy()

    def network_bytes(self) -> None:
        return None  # the network is the artefact's weights


class OnnxBackend:
    """An exported network (`medclass export RUN --format onnx`) in ONNX Runtime: no PyTorch needed to predict,
    and usually faster on a CPU. `threads`: intra-op threads (None: ONNX Runtime's default, one per core).
    `device="cuda"` uses the CUDA provider where onnxruntime-gpu is installed (else the CPU)."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu"):
        import onnxruntime as ort

        self.path = Path(path)
        self.files = (self.path,)
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

    def network_bytes(self) -> list[bytes]:
        """The graph and its weights; not the model's metadata_props, which also hold provenance (the version hashes
        the metadata that answers itself)."""
        import onnx

        return [onnx.load(str(self.path)).graph.SerializeToString()]


class NcnnBackend:
    """A network exported for ncnn (`medclass export RUN --format ncnn`), in fp32. ncnn runs 3x3 convolutions
    through Winograd transforms (fewer multiplications, the same sums), the one CPU path measured here at 2x eager
    PyTorch with the same probabilities (see inference/ncnn_export.py). ncnn runs one image at a time and fixes its
    thread count when it loads a network, so two copies are kept: a batch of at least `threads` images (default:
    one per CPU) is spread over that many workers, each a single-threaded extractor with its own memory pools (on 2
    cores 40% faster than one extractor using both); a smaller batch, a single upload, runs on a copy that uses
    every thread (40% faster than one thread). The second copy is loaded on first use."""

    name = "ncnn"

    def __init__(self, param: str | Path, threads: int | None = None):
        import ncnn

        self._ncnn = ncnn
        self.path = Path(param)
        self.weights = self.path.with_suffix(".bin")
        self.files = (self.path, self.weights)
        for needed in self.files:
            if not needed.is_file():
                raise MedclassError(f"{needed}: not found (make the model with `medclass export RUN --format ncnn`)")
        self.threads = threads or ncnn.get_cpu_count()
        self.net = self._load(threads=1)
        self._threaded_net = None if self.threads > 1 else self.net
        self.input_name, self.output_name = self.net.input_names()[0], self.net.output_names()[0]
        self._pool = None
        self._local = threading.local()
        self._lock = threading.Lock()

    def network_bytes(self) -> Iterator[bytes]:
        """The .param graph and the .bin weights (the metadata lives beside them, in NAME.json)."""
        for path in self.files:
            with open(path, "rb") as f:
                yield from iter(lambda: f.read(1 << 20), b"")

    def _load(self, threads: int):
        net = self._ncnn.Net()
        options = net.opt
        options.num_threads = threads
        # fp32 throughout: ncnn would otherwise store and compute in fp16/bf16 where the CPU has them
        for flag in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage",
                     "use_bf16_packed"):
            setattr(options, flag, False)
        # Winograd F(4x4, 3x3), not F(6x6, 3x3), where ncnn would pick it (narrow layers): no slower here, and its
        # rounding error is smaller
        options.use_winograd63_convolution = False
        if net.load_param(str(self.path)) != 0 or net.load_model(str(self.weights)) != 0:
            raise MedclassError(f"{self.path}: not a loadable ncnn model (with {self.weights.name} beside it)")
        return net

    def _run(self, net, image: np.ndarray, allocators) -> np.ndarray:
        extractor = net.create_extractor()
        extractor.set_blob_allocator(allocators[0])
        extractor.set_workspace_allocator(allocators[1])
        extractor.input(self.input_name, self._ncnn.Mat(image))
        status, out = extractor.extract(self.output_name)
        if status != 0:
            raise MedclassError(f"{self.path}: ncnn failed on an image (status {status})")
        return np.array(out, dtype=np.float32).reshape(-1)

    def _pools(self, key: str):
        """Memory pools kept between images, one pair per network per thread: unlocked, so never shared."""
        if not hasattr(self._local, key):
            setattr(self._local, key, (self._ncnn.UnlockedPoolAllocator(), self._ncnn.UnlockedPoolAllocator()))
        return getattr(self._local, key)

    def _one(self, image: np.ndarray) -> np.ndarray:
        return self._run(self.net, image, self._pools("single"))

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        from concurrent.futures import ThreadPoolExecutor

        if isinstance(batch, torch.Tensor):
            batch = batch.detach().cpu().numpy()
        images = [np.ascontiguousarray(image, dtype=np.float32) for image in batch]
        if len(images) < self.threads or self.threads == 1:
            with self._lock:  # one caller at a time on the threaded copy: it already uses every core
                if self._threaded_net is None:
                    self._threaded_net = self._load(self.threads)
                return np.stack([self._run(self._threaded_net, image, self._pools("threaded")) for image in images])
        if self._pool is None:  # ncnn's extract releases the GIL: Python threads run images in parallel
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ncnn")
        return np.stack(list(self._pool.map(self._one, images)))

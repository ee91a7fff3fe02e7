"""Export a model artefact for ncnn (Tencent's inference framework) through pnnx, its PyTorch converter, and the
backend that runs it.

Why a second runtime beside ONNX Runtime: on this project's 2-core CPU, ONNX Runtime and OpenVINO run ResNet-18 at
1.6-1.7x eager PyTorch and already sit near the cores' fp32 FLOP peak; ncnn computes 3x3 convolutions with Winograd
transforms, which need fewer multiplications for the same sums, and reaches 2x and more with probabilities within
1e-6 of PyTorch (`benchmarks/predict_speed.py`).

Files, beside each other: NAME.param (the graph), NAME.bin (the weights, fp32: pnnx's default fp16 weights moved
probabilities by 3e-4), NAME.json (the artefact's metadata, as the ONNX export embeds it, plus the check against
PyTorch) and, for a model with an input guard, NAME.guard.safetensors (its tensors). A run's are
RUN/model.ncnn.{param,bin,json,guard.safetensors}. The graph has two outputs, as the ONNX export: the logits and the
pooled features the guard reads, which pnnx names after their place in the traced outputs (LOGITS_BLOB,
FEATURES_BLOB); an export made before the features output has the logits blob alone. PyTorch, pnnx and ncnn are
imported inside functions: looking the backend registry up imports this module.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from medclass.core.errors import MedclassError
from medclass.export.common import ExportResult, beside, compare_with_torch, export_source, parity_text, quiet, \
    read_guard_file, write_guard_file
from medclass.inference.backends import BackendEntry, as_float32, register_backend

if TYPE_CHECKING:
    import torch

    from medclass.core.artifact import ModelArtifact

RUN_FILE = "model.ncnn.param"
LOGITS_BLOB, FEATURES_BLOB = "out0", "out1"  # pnnx's names of the traced network's outputs, in order


class NcnnBackend:
    """A network exported for ncnn (`medclass export RUN --format ncnn`), in fp32. ncnn runs 3x3 convolutions
    through Winograd transforms (fewer multiplications, the same sums), the one CPU path measured here at 2x eager
    PyTorch with the same probabilities (see the module's docstring). ncnn runs one image at a time and fixes its
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
        outputs = self.net.output_names()  # not in output order: read by name
        self.input_name = self.net.input_names()[0]
        self.output_name = LOGITS_BLOB if LOGITS_BLOB in outputs else outputs[0]
        self.has_features = FEATURES_BLOB in outputs
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

    def _run(self, net, image: np.ndarray, allocators, features: bool = False) -> list[np.ndarray]:
        """One image's logits, and with `features` its pooled features, from one pass."""
        extractor = net.create_extractor()
        extractor.set_blob_allocator(allocators[0])
        extractor.set_workspace_allocator(allocators[1])
        extractor.input(self.input_name, self._ncnn.Mat(image))
        found = []
        for blob in (self.output_name, FEATURES_BLOB) if features else (self.output_name,):
            status, out = extractor.extract(blob)
            if status != 0:
                raise MedclassError(f"{self.path}: ncnn failed on an image (status {status})")
            found.append(np.array(out, dtype=np.float32).reshape(-1))
        return found

    def _pools(self, key: str):
        """Memory pools kept between images, one pair per network per thread: unlocked, so never shared."""
        if not hasattr(self._local, key):
            setattr(self._local, key, (self._ncnn.UnlockedPoolAllocator(), self._ncnn.UnlockedPoolAllocator()))
        return getattr(self._local, key)

    def _one(self, image: np.ndarray, features: bool = False) -> list[np.ndarray]:
        return self._run(self.net, image, self._pools("single"), features)

    def _batch(self, batch: np.ndarray | torch.Tensor, features: bool) -> list[np.ndarray]:
        """The batch's logits, and with `features` its pooled features: one (images, width) array per output."""
        from concurrent.futures import ThreadPoolExecutor

        images = list(as_float32(batch))  # rows of a contiguous array: each image contiguous too
        if len(images) < self.threads or self.threads == 1:
            with self._lock:  # one caller at a time on the threaded copy: it already uses every core
                if self._threaded_net is None:
                    self._threaded_net = self._load(self.threads)
                outputs = [self._run(self._threaded_net, image, self._pools("threaded"), features)
                           for image in images]
            return [np.stack(column) for column in zip(*outputs)]
        if self._pool is None:  # ncnn's extract releases the GIL: Python threads run images in parallel
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ncnn")
        outputs = self._pool.map(lambda image: self._one(image, features), images)
        return [np.stack(column) for column in zip(*outputs)]

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        return self._batch(batch, features=False)[0]

    def with_features(self, batch: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The logits and the pooled features (what the input guard reads), from one pass of each image."""
        if not self.has_features:
            raise MedclassError(f"{self.path}: exported without the pooled features the model's input guard reads "
                                "(made by an older medclass); export again with `medclass export RUN --format ncnn`")
        logits, features = self._batch(batch, features=True)
        return logits, features


def default_ncnn_output(source: str | Path) -> Path:
    """RUN/model.ncnn.param for a run folder, else the artefact file's name with .ncnn.param."""
    return beside(source, RUN_FILE, ".ncnn.param")


def export_ncnn(source: ModelArtifact | str | Path, out: str | Path | None = None, check_images: int = 4,
                seed: int = 0) -> ExportResult:
    """Write `source` (a run folder, an artefact file or a ModelArtifact) as an ncnn model at `out` (the .param
    path; default `default_ncnn_output`), then compare ncnn with PyTorch on `check_images` random inputs."""
    try:
        import pnnx
    except ImportError:
        raise MedclassError("the ncnn export needs the pnnx and ncnn packages: pip install 'medclass[ncnn]'") from None
    import torch

    from medclass.core.architectures import WithFeatures

    artifact, param = export_source(source, out, default_ncnn_output, "export_ncnn")
    if param.suffix != ".param":
        raise MedclassError(f"{param}: an ncnn model is named NAME.param (its weights go to NAME.bin beside it)")
    param.parent.mkdir(parents=True, exist_ok=True)
    model = artifact.build_model()
    size, chans = artifact.preprocessing.img_size, artifact.preprocessing.in_chans
    example = torch.randn(1, chans, size, size, generator=torch.Generator().manual_seed(seed))
    with tempfile.TemporaryDirectory() as tmp:  # pnnx also writes its own graph, a TorchScript file and scripts
        graph, weights = Path(tmp) / "model.ncnn.param", Path(tmp) / "model.ncnn.bin"
        try:
            with quiet(), torch.no_grad():
                pnnx.export(WithFeatures(model).eval(), str(Path(tmp) / "model.pt"), (example,), fp16=False,
                            ncnnparam=str(graph), ncnnbin=str(weights))
        except Exception as exc:  # tracing and the converter raise many types
            raise MedclassError(f"{artifact.model_name}: cannot be converted for ncnn "
                                f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from None
        if not (graph.is_file() and weights.is_file()):
            raise MedclassError(f"{artifact.model_name}: pnnx wrote no ncnn model (an operation it cannot convert)")
        graph.replace(param)
        weights.replace(param.with_suffix(".bin"))
    guard = write_guard_file(artifact, param.with_suffix(""))
    logit_diff, prob_diff, feature_diff = compare_with_torch(artifact, model, NcnnBackend(param), check_images, seed)
    meta = {"medclass": artifact.metadata(param), "exporter": f"pnnx {getattr(pnnx, '__version__', '')}".strip(),
            "max_logit_diff": logit_diff, "max_prob_diff": prob_diff, "max_feature_diff": feature_diff}
    param.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    result = ExportResult(param, "pnnx", logit_diff, prob_diff, max_feature_diff=feature_diff)
    beside_it = f", {guard.name}" if guard else ""
    result.summary = [f"exported {param} (+ .bin, .json{beside_it}; pnnx); {parity_text('ncnn', result)}"]
    return result


def artifact_from_ncnn(backend: NcnnBackend) -> ModelArtifact:
    """The artefact an ncnn export describes in its NAME.json, without weights (NAME.bin holds them)."""
    from medclass.core.artifact import ModelArtifact

    path = backend.path.with_suffix(".json")
    if not path.is_file():
        raise MedclassError(f"{path}: not found; an ncnn model needs the metadata `medclass export --format ncnn` "
                            "writes beside it")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise MedclassError(f"{path}: not valid JSON (damaged export)") from None
    if not isinstance(meta, dict) or "medclass" not in meta:
        raise MedclassError(f"{path}: no 'medclass' metadata (expected one written by `medclass export`)")
    return ModelArtifact.from_metadata(meta["medclass"], {}, path)


def load_ncnn(path: Path, threads: int | None, device: str) -> tuple[NcnnBackend, ModelArtifact]:
    runtime = NcnnBackend(path, threads=threads)  # a CPU runtime: `device` does not apply
    return runtime, read_guard_file(artifact_from_ncnn(runtime), runtime.path.with_suffix(""))


register_backend(BackendEntry("ncnn", RUN_FILE, (".param",), "fp32, Winograd convolutions on CPUs",
                              export=export_ncnn, load=load_ncnn))

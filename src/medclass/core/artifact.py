"""The model artefact: one file that carries everything needed to predict.

Weights, architecture, preprocessing, the tasks it answers (`heads`: name, kind, classes, positive class and
threshold(s) each), test-time augmentation and provenance. Training, evaluation, the CLI, the server and ONNX export
load it the same way.

Format 3 (RUN/model.safetensors) holds no pickle at all: the weights as safetensors, everything else as JSON in the
safetensors header's metadata ("medclass" key), so opening an artefact from elsewhere can run no code (its
`modality` and `description` were added within format 3, with defaults: older files read with neither). Formats 1 and 2
(RUN/model.pt, `torch.save`) still load, with `weights_only=True`, which refuses any pickled object but tensors and
plain containers. Format 2 keeps a list of heads (a head's temperature, threshold source and ordinal flag were added
within format 2, with defaults, so older format-2 files read as uncalibrated and untuned); format 1 (up to medclass
0.x of November 2026) kept one task's classes, positive_index and threshold, and loads as a single head.

Whatever its format, an artefact read from a file is checked before anything is built from it: its metadata whole
against one schema (core/header_schema.py), then its tensors' names, shapes and dtypes against the network
the metadata names, and their values for NaN (core/weights_check.py). A file from elsewhere may carry anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead
from medclass.core.header_schema import header_problems
from medclass.core.weights_check import check_finite, check_weights_fit, safetensors_layout, tensors_layout
from medclass.core.architectures import create_model, model_entry
from medclass.core.preprocessing import Preprocessing

FORMAT = "medclass-model"
FORMAT_VERSION = 3
METADATA_KEY = "medclass"  # the safetensors header metadata entry holding the artefact's JSON
SAFETENSORS_SUFFIX = ".safetensors"
ARTIFACT_NAME = "model.safetensors"  # a run folder's artefact (core/rundir.py)
LEGACY_ARTIFACT = "model.pt"  # formats 1 and 2
# The metadata that changes an answer, hashed into a served model's version (with the weights): not provenance,
# modality or description
VERSIONED_FIELDS = ("model_name", "model_kwargs", "preprocessing", "heads", "tta", "guard")
GUARD_PREFIX = "guard."  # the input guard's tensors beside the weights (inference/guard.py reads them)


@dataclass
class ModelArtifact:
    model_name: str
    heads: list[TaskHead]  # main task first; the model's logits are their outputs side by side
    preprocessing: Preprocessing
    state_dict: dict
    tta: list[str] = field(default_factory=list)  # e.g. ["hflip"]: average over these views at predict time
    model_kwargs: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    # What the model is for, shown by the server's page and chosen from by explanations (ultrasound: dark Otsu
    # boxes): the `--modality` and `--description` it was trained with. Added within format 3: older artefacts
    # load with neither.
    modality: str | None = None
    description: str = ""
    # The input guard (inference/guard.py): its description as plain JSON, and its tensors, stored under names
    # starting "guard." beside the weights. Added within format 3: older artefacts load with none.
    guard: dict | None = None
    guard_tensors: dict = field(default_factory=dict)

    @classmethod
    def single_task(cls, model_name: str, classes: list[str], preprocessing: Preprocessing, state_dict: dict,
                    task: str = "label", positive_index: int | None = None, threshold: float = 0.5,
                    **kwargs) -> "ModelArtifact":
        """A one-task binary or multiclass model (the only kind format 1 knew)."""
        kind = "binary" if len(classes) == 2 else "multiclass"
        return cls(model_name, [TaskHead(task, kind, tuple(classes), positive_index, threshold)], preprocessing,
                   state_dict, **kwargs)

    # The main task (heads[0]): what a single-task caller asks about.
    @property
    def classes(self) -> list[str]:
        return list(self.heads[0].classes)

    @property
    def task(self) -> str:
        return self.heads[0].name

    @property
    def positive_index(self) -> int | None:
        return self.heads[0].positive_index

    @property
    def threshold(self):
        return self.heads[0].threshold

    @property
    def is_binary(self) -> bool:
        return self.heads[0].kind == "binary"

    def create_network(self) -> nn.Module:
        """The untrained network this artefact's weights belong to (on torch's default device)."""
        return create_model(self.model_name, num_classes=sum(h.outputs for h in self.heads),
                            in_chans=self.preprocessing.in_chans, pretrained=False, **self.model_kwargs)

    def build_model(self) -> nn.Module:
        if not self.state_dict:
            raise MedclassError(f"model {self.model_name!r}: this artefact carries no PyTorch weights (read from an "
                                "ONNX model?); load the run's model.safetensors for the torch backend")
        model = self.create_network()
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:  # an artefact built in memory (one read from a file was checked at load)
            raise MedclassError(f"model {self.model_name!r}: its weights do not fit the network "
                                f"({' '.join(str(exc).split())[:300]})") from None
        return model.eval()

    def version(self, network: Iterable[bytes] | None = None) -> str:
        """sha256 of what answers: the metadata that changes an answer (VERSIONED_FIELDS) as canonical JSON, then the
        network: `network` (an export's graph and weights) or else this artefact's weights. Never the file's bytes:
        the key order of a safetensors header changes from one save to the next, so a `medclass threshold` that
        changed nothing would change them; provenance and description do not answer either."""
        meta = self.metadata()
        # a field absent (no guard) is left out, so older artefacts keep the version they were served under
        digest = hashlib.sha256(json.dumps({k: meta[k] for k in VERSIONED_FIELDS if k in meta},
                                           sort_keys=True).encode())
        for chunk in weights_bytes(self.state_dict) if network is None else network:
            digest.update(chunk)
        for chunk in weights_bytes(self.guard_tensors):
            digest.update(chunk)
        return digest.hexdigest()

    def metadata(self, source: str | Path = "model artefact") -> dict:
        """Everything but the weights, as plain JSON values: what format 3 and an exported ONNX model carry.
        `source` names the file being written in errors."""
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_name": self.model_name,
                "heads": [h.to_dict() for h in self.heads], "preprocessing": self.preprocessing.to_dict(),
                "tta": list(self.tta), "model_kwargs": self.model_kwargs, "provenance": self.provenance,
                "modality": self.modality, "description": self.description}
        if self.guard is not None:
            meta["guard"] = self.guard
        try:
            return json_ready(meta, "")
        except TypeError as exc:
            raise MedclassError(f"{source}: {exc} (artefact metadata must be plain values: text, numbers, lists, "
                                "dicts)") from None

    @classmethod
    def from_metadata(cls, meta: dict, state_dict: dict, source: str | Path) -> "ModelArtifact":
        """The artefact described by `metadata()` (of any format version), with these weights; `source` names the
        file in errors."""
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise MedclassError(f"{source}: not a medclass model artefact (format {FORMAT!r} expected)")
        version = meta.get("format_version")
        if not isinstance(version, int):
            raise MedclassError(f"{source}: medclass artefact without a format version (damaged artefact)")
        if version > FORMAT_VERSION:
            raise MedclassError(f"{source}: artefact format {version} is newer than this medclass reads "
                                f"({FORMAT_VERSION}); upgrade medclass")
        problem = next(header_problems(meta), None)
        if problem:
            raise MedclassError(f"{source}: {problem}")
        payload = {k: v for k, v in meta.items() if k not in ("format", "format_version")}
        try:
            model_entry(payload["model_name"])  # an unknown name (or timm architecture) before anything is built
        except MedclassError as exc:
            raise MedclassError(f"{source}: model_name: {exc}") from None
        # the checks between fields that the classes make, reported with the file (their messages name the field)
        with errors_named(source):
            payload["preprocessing"] = Preprocessing.from_dict(payload["preprocessing"])
            if version == 1:
                return cls.single_task(payload.pop("model_name"), payload.pop("classes"),
                                       payload.pop("preprocessing"), state_dict, **payload)
        for i, head in enumerate(payload["heads"]):
            with errors_named(f"{source}: heads[{i}]"):
                payload["heads"][i] = TaskHead.from_dict(head)
        return cls(**payload, state_dict=state_dict)

    def save(self, path: str | Path) -> Path:
        """Write format 3 (safetensors weights + JSON metadata) to `path`, or to RUN/model.safetensors for a folder.
        Written beside and then renamed, so a crash never leaves half an artefact where a whole one was."""
        from safetensors.torch import save

        path = Path(path)
        if path.is_dir():
            path = path / ARTIFACT_NAME
        meta = self.metadata(path)
        # clone: safetensors refuses tensors that share memory or are not contiguous
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict.items()}
        tensors |= {GUARD_PREFIX + k: v.detach().cpu().contiguous().clone() for k, v in self.guard_tensors.items()}
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(save(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION),
                                                    METADATA_KEY: json.dumps(meta)}))
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, path: str | Path, weights: bool = True) -> "ModelArtifact":
        """A run folder (its model.safetensors, else an older run's model.pt) or an artefact file of any format.
        `weights=False`: the description alone, with no state_dict (format 3 then reads no tensor)."""
        path = find_artifact(Path(path))
        if is_safetensors(path):
            return read_safetensors(path, weights)
        if path.suffix == SAFETENSORS_SUFFIX:
            raise MedclassError(f"{path}: not a safetensors file (expected a medclass model artefact, format 3)")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several unrelated types for a foreign, damaged or unsafe file
            raise MedclassError(f"{path}: not a readable medclass model (expected model.safetensors, or a model.pt "
                                f"of medclass formats 1-2 holding only tensors and plain values; "
                                f"{exc.__class__.__name__})") from None
        if not isinstance(payload, dict):
            raise MedclassError(f"{path}: not a medclass model artefact (format {FORMAT!r} expected)")
        state_dict = payload.pop("state_dict", None)
        state_dict = state_dict if isinstance(state_dict, dict) else {}
        artifact = cls.from_metadata(payload, {}, path)
        if weights:
            check_weights_fit(artifact, tensors_layout(state_dict, path), path)
            check_finite(state_dict, path)
            artifact.state_dict = state_dict
        return artifact


@contextmanager
def errors_named(where: str):
    """A MedclassError raised inside, as one line starting with `where` (the file, and the field)."""
    try:
        yield
    except MedclassError as exc:
        raise MedclassError(f"{where}: {exc}") from None


def find_artifact(path: Path) -> Path:
    if path.is_dir():
        path = next((p for p in (path / ARTIFACT_NAME, path / LEGACY_ARTIFACT) if p.is_file()), path / ARTIFACT_NAME)
    if not path.is_file():
        raise MedclassError(f"{path}: no model artefact here (expected a run folder holding {ARTIFACT_NAME} or "
                            f"{LEGACY_ARTIFACT})")
    return path


def is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its header's length (8 bytes, little-endian) and then the JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_safetensors(path: Path, weights: bool = True) -> ModelArtifact:
    """The header first (metadata against the schema, the tensors' layout against the network it names), the
    tensors only then."""
    header, layout = read_safetensors_part(path, lambda f: (f.metadata() or {}, safetensors_layout(f)))
    if header.get("format") != FORMAT or METADATA_KEY not in header:
        raise MedclassError(f"{path}: safetensors file without medclass metadata (not a medclass model artefact)")
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError:
        raise MedclassError(f"{path}: medclass metadata is not valid JSON (damaged artefact)") from None
    artifact = ModelArtifact.from_metadata(meta, {}, path)
    guard_names = [k for k in layout if k.startswith(GUARD_PREFIX)]
    if weights:
        check_weights_fit(artifact, {k: v for k, v in layout.items() if k not in guard_names}, path)
        tensors = read_safetensors_part(path, lambda f: {k: f.get_tensor(k) for k in f.keys()})
        artifact.guard_tensors = {k.removeprefix(GUARD_PREFIX): tensors.pop(k) for k in guard_names}
        artifact.state_dict = tensors
        check_finite(artifact.state_dict, path)
    elif artifact.guard is not None:  # a description alone still assesses inputs (the guard is small)
        artifact.guard_tensors = read_safetensors_part(
            path, lambda f: {k.removeprefix(GUARD_PREFIX): f.get_tensor(k) for k in guard_names})
    return artifact


def read_safetensors_part(path: Path, read):
    """read(handle) on the opened file; a truncated or damaged file is one line naming it."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            return read(f)
    except Exception as exc:  # SafetensorError, OSError...: a truncated or damaged file
        raise MedclassError(f"{path}: damaged safetensors file (expected a whole medclass model artefact; "
                            f"{str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__})") from None


def weights_bytes(state_dict: dict) -> Iterator[bytes]:
    """Each tensor's name, dtype and shape, then its bytes, in name order: the weights as a version hashes them."""
    for key, tensor in sorted(state_dict.items()):
        tensor = tensor.detach().cpu().contiguous()
        yield f"{key}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode()
        yield tensor.reshape(-1).view(torch.uint8).numpy().tobytes()  # any dtype (bfloat16 has no numpy type)


def json_ready(value, where: str):
    """`value` as plain JSON values (tuples, paths and numpy scalars converted); anything else is refused, since
    artefact metadata must read back without running code."""
    if isinstance(value, dict):
        return {str(k): json_ready(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"{where} is a {type(value).__name__}, which cannot be stored")

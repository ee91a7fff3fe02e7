"""Whether an artefact's weights fit the network its header names, checked before that network is built at full
size, and whether they are finite.

The network is first built on torch's meta device: shapes and dtypes only, no memory and no initialisation (0.3 s
for the 300 M parameters of a ViT-L, which on a CPU would take 1.2 GB and seconds). Every tensor's name, shape and
kind of dtype is compared with the file's, which the safetensors header gives without reading a tensor. A
floating-point weight stored as integers would be cast on loading (probabilities of exactly 0 and 1); an integer
buffer (BatchNorm's num_batches_tracked) stays integer. Once loaded, one pass refuses NaN or infinite weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from medclass.core.errors import MedclassError
from medclass.core.architectures import classifier_name, create_model

if TYPE_CHECKING:
    from medclass.core.artifact import ModelArtifact

Layout = dict[str, tuple[tuple[int, ...], str]]  # tensor name -> (shape, dtype as stored: "F32", "torch.int64")


def dtype_kind(dtype: str) -> str:
    """floating-point, integer, bool or other, for a safetensors dtype ("F32", "BF16", "I64", "BOOL") or a torch one."""
    name = dtype.removeprefix("torch.").upper()
    if name in ("BOOL",):
        return "bool"
    if name.startswith(("F", "BF")):
        return "floating-point"
    if name.startswith(("I", "U")):
        return "integer"
    return "other"


def tensors_layout(state_dict: dict, source) -> Layout:
    """The layout of loaded weights (formats 1 and 2, read whole by torch.load)."""
    strange = next((k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)), None)
    if strange is not None:
        raise MedclassError(f"{source}: weights {strange!r} is a {type(state_dict[strange]).__name__}, not a tensor")
    return {k: (tuple(v.shape), str(v.dtype)) for k, v in state_dict.items()}


def safetensors_layout(f) -> Layout:
    """The layout a safetensors file's header declares (`f`: safe_open's handle), without reading a tensor."""
    layout = {}
    for key in f.keys():
        part = f.get_slice(key)
        layout[key] = (tuple(part.get_shape()), part.get_dtype())
    return layout


def described(artifact: ModelArtifact) -> str:
    kwargs = f", model_kwargs {artifact.model_kwargs}" if artifact.model_kwargs else ""
    return (f"model_name {artifact.model_name!r}{kwargs}, preprocessing.in_chans {artifact.preprocessing.in_chans}, "
            f"{sum(h.outputs for h in artifact.heads)} outputs for the heads")


def network_on_meta(artifact: ModelArtifact, source) -> torch.nn.Module:
    """The network the header names, with shapes and dtypes but no storage."""
    try:
        with torch.device("meta"):
            return artifact.create_network()
    except MedclassError as exc:
        raise MedclassError(f"{source}: {described(artifact)}: {exc}") from None
    except Exception as exc:  # the architecture's own constructor refused these options
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise MedclassError(f"{source}: cannot build the network the header names ({described(artifact)}): "
                            f"{reason}") from None


def check_weights_fit(artifact: ModelArtifact, layout: Layout, source) -> None:
    """Refuse weights whose names, shapes or kinds of dtype are not those of the network the header names."""
    network = network_on_meta(artifact, source)
    expected = {k: (tuple(v.shape), str(v.dtype)) for k, v in network.state_dict().items()}
    missing = [k for k in expected if k not in layout]
    foreign = [k for k in layout if k not in expected]
    if missing or foreign:
        raise MedclassError(f"{source}: the weights do not fit the network the header names ({described(artifact)}): "
                            f"{len(missing)} of its tensors are not in the file{_first(missing)}, {len(foreign)} in "
                            f"the file are not its own{_first(foreign)}")
    classifier = classifier_name(network) + "."
    for key, (shape, dtype) in layout.items():
        want_shape, want_dtype = expected[key]
        if shape != want_shape and key.startswith(classifier) and shape[1:] == want_shape[1:]:
            classes = ", ".join(f"{h.name} {h.outputs}" for h in artifact.heads)
            raise MedclassError(f"{source}: heads: the class counts ({classes}) do not match the weights: the "
                                f"network's {key} needs shape {list(want_shape)}, the file's has {list(shape)}")
        if shape != want_shape:
            raise MedclassError(f"{source}: weights {key} have shape {list(shape)} in the file where the network the "
                                f"header names ({described(artifact)}) has {list(want_shape)}")
        if dtype_kind(dtype) != dtype_kind(want_dtype):
            raise MedclassError(f"{source}: weights {key} are stored as {dtype} ({dtype_kind(dtype)}) where the "
                                f"network holds {dtype_kind(want_dtype)} values ({want_dtype.removeprefix('torch.')})")


def check_finite(state_dict: dict, source) -> None:
    """Refuse NaN or infinite weights (they would answer NaN probabilities), naming the first such tensor."""
    for key, tensor in state_dict.items():
        if not tensor.is_floating_point():
            continue
        values = tensor if tensor.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) else \
            tensor.float()
        finite = torch.isfinite(values)
        if not finite.all():
            bad = int((~finite).sum())
            raise MedclassError(f"{source}: weights {key} hold {bad} NaN or infinite value(s) of {tensor.numel()}; "
                                "a damaged or edited artefact")


def _first(keys: list[str]) -> str:
    return f" ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})" if keys else ""

"""How a run uses its hardware: precision, data path, workers, memory layout, compilation. Resolved once per run
from the config's `auto` settings and written to config.yaml, so a run states what it actually did.

Measured on a 2-core AMD EPYC (Zen 4, AVX-512 BF16), ResNet-18 (3x3 stem) at 28 px, batch 128, training step:
eager fp32 68 img/s, channels-last 78, bf16 autocast 117, bf16 + channels-last 126; torch.compile added nothing
on this CPU (70 fp32, 127 bf16 + channels-last) and costs about a minute of compilation, so it stays opt-in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from medclass.data.base import ImageDataset
from medclass.training.config import TrainConfig
from medclass.training.datamodule import auto_workers, choose_in_memory
from medclass.training.distributed import local_processes
from medclass.core.preprocessing import Preprocessing


@dataclass(frozen=True)
class SpeedPlan:
    precision: str
    num_workers: int
    in_memory: bool
    channels_last: bool
    compile: bool

    def to_dict(self) -> dict:
        return asdict(self)


def on_gpu(accelerator: str) -> bool:
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_precision(setting: str, accelerator: str) -> str:
    """`auto`: bf16 autocast where the hardware runs it natively (Ampere+ GPUs; CPUs with AVX-512 BF16 or AMX),
    fp16 autocast on older GPUs, else fp32. Weights and optimizer state stay fp32 in every mixed mode."""
    if setting != "auto":
        return setting
    if on_gpu(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if accelerator in ("auto", "cpu") and torch.backends.mkldnn.is_available() and _cpu_has_bf16():
        return "bf16-mixed"
    return "32-true"


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_speed(config: TrainConfig, dataset: ImageDataset, preprocessing: Preprocessing) -> SpeedPlan:
    devices = local_processes(config.devices, config.accelerator)
    in_memory = choose_in_memory(config.in_memory, dataset, preprocessing, config.memory_budget_gb)
    # in memory, the workers only decode the images once (setup); batches are tensor slices in the main process
    workers = auto_workers(devices) if config.num_workers == "auto" else int(config.num_workers)
    return SpeedPlan(resolve_precision(config.precision, config.accelerator), workers, in_memory,
                     config.channels_last, config.compile)


def prepare_model(model: nn.Module, plan: SpeedPlan) -> nn.Module:
    """Channels-last weights (convolutions run faster in NHWC on CPUs and tensor cores) and, when asked,
    in-place `torch.compile` (state_dict keys stay unchanged, so checkpoints and artefacts do not notice)."""
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if plan.compile:
        model.compile()
    return model


def measure_images_per_s(model_name: str, num_classes: int, in_chans: int, img_size: int, batch_size: int,
                         precision: str = "auto", channels_last: bool = True, compile: bool = False,
                         steps: int = 5, device: str = "cpu") -> float:
    """Training images/s of a model on this machine (forward, backward, AdamW step on random input already on the
    device), with the given speed settings: for planning how many epochs fit in a time budget, and for
    benchmarks/speed.py. `device`: cpu or cuda."""
    import time

    from medclass.models import create_model

    precision = resolve_precision(precision, "gpu" if device == "cuda" else "cpu")
    torch.backends.cudnn.benchmark = True  # as training sets it (fixed image size)
    plan = SpeedPlan(precision, 0, True, channels_last, compile)
    model = prepare_model(create_model(model_name, num_classes, in_chans).to(device), plan)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(batch_size, in_chans, img_size, img_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    autocast_dtype = torch.float16 if precision == "16-mixed" else torch.bfloat16
    scaler = torch.amp.GradScaler(device, enabled=precision == "16-mixed")

    def step():
        with torch.autocast(device, dtype=autocast_dtype, enabled=precision in ("bf16-mixed", "16-mixed")):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def wait():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3 if compile else 1):  # warm-up: allocations, kernel selection (cudnn benchmark), compilation
        step()
    wait()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    wait()
    return steps * batch_size / (time.perf_counter() - start)

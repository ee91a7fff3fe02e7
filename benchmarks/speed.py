"""Which speed settings help training on this machine, each against eager fp32 measured in the same run.

- One training step (forward, backward, AdamW on input already on the device), batch 128, for each setting
  `medclass train` offers: at 28 px on the CPU; on a GPU also ResNet-18 at 224 px.
- On a GPU, the whole `medclass train` path (PneumoniaMNIST, data in GPU memory, augmentation on the GPU):
  ResNet-18 at 224 px, default settings vs eager fp32, and the default network at 28 px.

    python benchmarks/speed.py [--device auto|cpu|cuda] [--steps 20] [--npz pneumoniamnist.npz]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from common import find_npz, training_images_per_s
from medclass.training import TrainConfig, train
from medclass.training.history import read_history
from medclass.training.speed import measure_images_per_s, resolve_precision

SETTINGS = {  # name: (precision, channels_last, compile)
    "eager fp32 (reference)": ("32-true", False, False),
    "channels-last": ("32-true", True, False),
    "bf16 autocast": ("bf16-mixed", False, False),
    "bf16 + channels-last": ("bf16-mixed", True, False),
    "bf16 + channels-last + torch.compile": ("bf16-mixed", True, True),
}


def step_table(device: str, cases: list[tuple[str, int, int]], steps: int) -> list[str]:
    lines = ["| network | input | setting | images/s | vs eager fp32 |", "|---|---|---|---|---|"]
    for model, img_size, in_chans in cases:
        reference = None
        for name, (precision, channels_last, compile) in SETTINGS.items():
            per_s = measure_images_per_s(model, 2, in_chans, img_size, 128, precision, channels_last, compile,
                                         steps=steps, device=device)
            reference = reference or per_s
            lines.append(f"| {model} | {img_size} px | {name} | {per_s:.0f} | {per_s / reference:.2f}x |")
    return lines


def train_images_per_s(npz: Path, out: Path, epochs: int, **settings) -> float:
    """Training images/s of a whole medclass run, averaged over the epochs after the first (warm-up)."""
    config = TrainConfig(data=str(npz), out=str(out), epochs=epochs, patience=epochs, audit=False, **settings)
    train(config)
    return training_images_per_s(read_history(out / "history.csv")[1:])


def run_table(npz: Path, epochs: int) -> list[str]:
    runs = {
        "ResNet-18, 224 px, batch 128, eager fp32 (reference)": dict(model="resnet18", img_size=224, batch_size=128,
                                                                    precision="32-true", channels_last=False),
        "ResNet-18, 224 px, batch 128, medclass defaults": dict(model="resnet18", img_size=224, batch_size=128),
        "ResNet-18, 224 px, batch 128, defaults + --compile": dict(model="resnet18", img_size=224, batch_size=128,
                                                                  compile=True),
        "default network (smallcnn), 28 px, default batch 32": dict(),
        "default network (smallcnn), 28 px, batch 128": dict(batch_size=128),
    }
    lines = [f"| whole `medclass train` run ({npz.stem}, {epochs} epochs, first excluded) | training images/s | "
             "vs reference |", "|---|---|---|"]
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, settings) in enumerate(runs.items()):
            per_s = train_images_per_s(npz, Path(tmp) / str(i), epochs, **settings)
            reference = reference or per_s
            ratio = f"{per_s / reference:.2f}x" if "224" in name else "-"
            lines.append(f"| {name} | {per_s:.0f} | {ratio} |")
    return lines


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--npz", default=None, help="pneumoniamnist.npz (default: found under ../shared/data)")
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [f"Training step, batch 128, {where}; precision auto resolves to "
             f"{resolve_precision('auto', 'gpu' if device == 'cuda' else 'cpu')} here:"]
    cases = [("resnet18_small", 28, 1), ("smallcnn", 28, 1)]
    lines += step_table(device, ([("resnet18", 224, 3)] if device == "cuda" else []) + cases, args.steps)
    npz = Path(args.npz) if args.npz else find_npz("pneumoniamnist")
    if device == "cuda" and npz is not None:
        lines += ["", f"Whole training runs, {where}:"] + run_table(npz, args.epochs)
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())

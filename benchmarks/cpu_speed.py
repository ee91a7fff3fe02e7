"""Which speed settings help training on this machine's CPU: images/s of one training step (forward, backward,
AdamW) at 28 px, batch 128, for each setting `medclass train` offers. `auto` picks from what this measures.

    python benchmarks/cpu_speed.py [--models resnet18_small,smallcnn] [--steps 20]
"""

from __future__ import annotations

import argparse

import torch

from medclass.training.speed import measure_images_per_s, resolve_precision

SETTINGS = {  # name: (precision, channels_last, compile)
    "eager fp32 (reference)": ("32-true", False, False),
    "channels-last": ("32-true", True, False),
    "bf16 autocast": ("bf16-mixed", False, False),
    "bf16 + channels-last (auto here)": ("bf16-mixed", True, False),
    "bf16 + channels-last + torch.compile": ("bf16-mixed", True, True),
}


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18_small,smallcnn")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    lines = [f"CPU training step, 28 px, batch 128, {torch.get_num_threads()} threads; precision auto resolves to "
             f"{resolve_precision('auto', 'cpu')} here:", "| network | setting | images/s | vs eager fp32 |",
             "|---|---|---|---|"]
    for model in args.models.split(","):
        reference = None
        for name, (precision, channels_last, compile) in SETTINGS.items():
            per_s = measure_images_per_s(model, 2, 1, 28, 128, precision, channels_last, compile, steps=args.steps)
            reference = reference or per_s
            lines.append(f"| {model} | {name} | {per_s:.0f} | {per_s / reference:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())

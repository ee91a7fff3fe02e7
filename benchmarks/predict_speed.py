"""Predict throughput and memory on this machine, each against a plain PyTorch reference measured in the same run.

- Throughput: ResNet-18 at 224 px (3 classes, ImageNet normalisation, no test-time flip), batch 1 and batch 32, on
  the same preprocessed images: plain PyTorch eager (`model.eval()`, `torch.inference_mode()`, fp32) against each
  medclass backend. Every row reports its largest probability difference from the reference: a speed-up only counts
  as "the same probabilities" within the ONNX parity bound (1e-4); int8 is listed with what it changes. Paths are
  timed in interleaved rounds, the median reported.
- Memory: peak resident memory of `medclass predict` over 100 and 1,000 image files (512 px, as a downsized chest
  X-ray; decoded a batch at a time) against a plain script that decodes every file first and then predicts.

    python benchmarks/predict_speed.py [--images 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medclass.core.heads import per_task, view_probabilities
from medclass.inference import ModelArtifact, Predictor, load_predictor
from medclass.models import create_model
from medclass.core.preprocessing import Preprocessing

PARITY = 1e-4
ROUNDS = 5
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLASSES = ["benign", "malignant", "normal"]


def resnet18_run(folder: Path) -> Path:
    """A ResNet-18 artefact whose classifier gives spread-out probabilities (random init gives near-uniform ones,
    which would hide probability differences)."""
    torch.manual_seed(0)
    model = create_model("resnet18", len(CLASSES), 3).eval()
    with torch.no_grad():
        model.get_classifier().weight.mul_(20)
    artifact = ModelArtifact.single_task("resnet18", CLASSES, Preprocessing(224, 3, *IMAGENET), model.state_dict())
    folder.mkdir(parents=True, exist_ok=True)
    artifact.save(folder)
    return folder


def images_per_s(predict, batch: torch.Tensor, seconds: float) -> float:
    predict(batch)  # warm-up: first-call allocations and kernel choices
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done < 3 * len(batch):
        predict(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def eager_reference(run: Path):
    model = ModelArtifact.load(run).build_model().eval()

    def predict(batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model(batch).softmax(1).numpy()

    return predict


def medclass_path(predictor: Predictor):
    def predict(batch: torch.Tensor) -> np.ndarray:
        return per_task(predictor.heads, view_probabilities(predictor.heads, predictor.forward(batch)))["label"]

    return predict


def backends(run: Path) -> dict:
    """name -> a function that loads the Predictor of every backend: PyTorch, ONNX Runtime fp32 and int8 (calibrated
    on 64 images of the kind measured; a real run calibrates on its validation images, `medclass export --int8`)
    and ncnn fp32. Exported here; each is loaded only when it is timed and dropped after, so no other runtime's
    idle threads share the cores with it (a live ONNX Runtime session slowed ncnn by about 10%)."""
    from medclass.export.int8 import ImageReader, quantize_onnx
    from medclass.export.ncnn import export_ncnn
    from medclass.export.onnx import export_onnx

    fp32 = export_onnx(run).path
    rng = np.random.default_rng(2)
    calibration = [Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)) for _ in range(64)]
    quantize_onnx(fp32, run / "model.int8.onnx", ImageReader(load_predictor(run), calibration))
    export_ncnn(run)
    return {"medclass torch": lambda: load_predictor(run),
            "medclass ONNX Runtime fp32": lambda: load_predictor(run, backend="onnx"),
            "medclass ncnn fp32 (Winograd)": lambda: load_predictor(run, backend="ncnn"),
            "medclass ONNX Runtime int8": lambda: load_predictor(run / "model.int8.onnx", backend="onnx")}


def throughput_table(run: Path, seconds: float, rounds: int = ROUNDS) -> list[str]:
    """Every path timed in `rounds` interleaved rounds of seconds/rounds each, its median reported: this shared
    machine's speed drifts by 10% within minutes, which would favour whichever path ran in a fast spell."""
    rng = np.random.default_rng(1)
    pictures = [Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)) for _ in range(32)]
    images = load_predictor(run).preprocess(pictures)  # what the network sees: resized and normalised
    reference = eager_reference(run)
    expected = reference(images)
    paths = {"PyTorch eager fp32 (reference)": lambda: reference}
    paths |= {name: lambda load=load: medclass_path(load()) for name, load in backends(run).items()}
    speeds = {name: {1: [], 32: []} for name in paths}
    got = {}
    for _ in range(rounds):
        for name, load in paths.items():
            predict = load()
            for size in (1, 32):
                speeds[name][size].append(images_per_s(predict, images[:size], seconds / rounds))
            got[name] = predict(images)
            del predict
            gc.collect()
    lines = ["| path | batch 1 images/s | vs eager | batch 32 images/s | vs eager | max prob diff | "
             "same probabilities |", "|---|---|---|---|---|---|---|"]
    median = {name: {size: float(np.median(v)) for size, v in by_size.items()} for name, by_size in speeds.items()}
    base = median["PyTorch eager fp32 (reference)"]
    for name in paths:
        diff = float(np.abs(got[name] - expected).max())
        changed = int((got[name].argmax(1) != expected.argmax(1)).sum())
        same = "yes" if diff <= PARITY else f"no ({changed}/32 decisions change)"
        b1, b32 = median[name][1], median[name][32]
        lines.append(f"| {name} | {b1:.1f} | {b1 / base[1]:.2f}x | {b32:.1f} | {b32 / base[32]:.2f}x | "
                     f"{diff:.1e} | {same} |")
    return lines


def write_images(folder: Path, n: int, size: int = 512) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(folder / f"img_{i:05d}.png")
    return folder


def peak_memory_mib(command: list[str]) -> tuple[float, float]:
    """Peak resident memory (MiB) and wall seconds of one child process. Read from the kernel's high-water mark of
    the child's own address space (VmHWM), not from getrusage: a forked child's ru_maxrss starts at the size of the
    parent it was forked from (this benchmark, with its models loaded)."""
    start, peak = time.perf_counter(), 0
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while child.poll() is None:
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
            peak = max(peak, int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))))
        except (OSError, StopIteration):  # the child is exiting
            pass
        time.sleep(0.05)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {child.stderr.read().decode()[-2000:]}")
    return peak / 1024, time.perf_counter() - start


DECODE_ALL_FIRST = """
import sys
from pathlib import Path
from medclass.data.images import read_image
from medclass.inference import Predictor
predictor = Predictor(sys.argv[1], batch_size=32)
images = [read_image(p) for p in sorted(Path(sys.argv[2]).glob("*.png"))]
predictor.predict_proba(images)
"""


def memory_table(run: Path, root: Path, n_images: int) -> list[str]:
    medclass = [sys.executable, "-m", "medclass", "predict", str(run), "--quiet", "--batch-size", "32"]
    lines = ["| images | plain script: decode all, then predict | medclass predict (streamed) | medclass wall time |",
             "|---|---|---|---|"]
    for n in sorted({min(100, n_images), n_images}):
        folder = write_images(root / f"images_{n}", n)
        plain, _ = peak_memory_mib([sys.executable, "-c", DECODE_ALL_FIRST, str(run), str(folder)])
        ours, wall = peak_memory_mib(medclass + [str(folder), "--out", str(root / f"p{n}.csv")])
        lines.append(f"| {n} | {plain:.0f} MiB | {ours:.0f} MiB | {wall:.0f} s |")
    return lines


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20, help="timing per row and batch size, over all rounds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run = resnet18_run(Path(tmp) / "run")
        speed = throughput_table(run, args.seconds)
        memory = memory_table(run, Path(tmp), args.images)
    threads = torch.get_num_threads()
    return "\n".join([f"Predict throughput, ResNet-18 at 224 px, {threads} CPU threads, same preprocessed images:",
                      *speed, "", "Peak memory of prediction over image files (ResNet-18, 224 px, batch 32):",
                      *memory])


if __name__ == "__main__":
    print(main())

"""Training throughput at 28 px: medclass against a plain PyTorch loop written the way MedMNIST's official
experiment script trains (a Dataset of PIL images, ToTensor + Normalize per image, num_workers=0, eager fp32,
Adam 1e-3, lr x0.1 at 50 % and 75 %, best epoch by validation AUC). Same network, same batch size, same epochs,
one after the other in this process.

    python benchmarks/throughput.py [--npz PATH] [--epochs 30] [--models resnet18_small,smallcnn]

Images/s counts training batches only (validation excluded) on both sides; wall time includes everything.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from common import find_npz, out_dir, training_images_per_s
from medclass.evaluation import evaluate_run
from medclass.evaluation.metrics import auc_score
from medclass.models import create_model
from medclass.training import TrainConfig, train
from medclass.training.history import read_history

BATCH = 128  # MedMNIST's


class PilImages(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels.reshape(-1).astype(np.int64)
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


@torch.no_grad()
def predict(model, loader) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    proba, ys = zip(*[(model(x).softmax(1), y) for x, y in loader])
    return torch.cat(proba).numpy(), torch.cat(ys).numpy()


def plain_loop(npz: Path, model_name: str, epochs: int, seed: int = 0) -> dict:
    start = time.time()
    torch.manual_seed(seed)
    data = np.load(npz)
    loaders = {s: DataLoader(PilImages(data[f"{s}_images"], data[f"{s}_labels"]), batch_size=BATCH,
                             shuffle=s == "train", num_workers=0) for s in ("train", "val", "test")}
    model = create_model(model_name, 2, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [epochs // 2, epochs * 3 // 4], gamma=0.1)
    loss_fn, train_seconds, images, best = nn.CrossEntropyLoss(), 0.0, 0, (-1.0, None)
    for _ in range(epochs):
        model.train()
        tick = time.perf_counter()
        for x, y in loaders["train"]:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            images += len(y)
        train_seconds += time.perf_counter() - tick
        scheduler.step()
        val_proba, val_y = predict(model, loaders["val"])
        val_auc = auc_score(val_y, val_proba, 1)
        if val_auc > best[0]:
            best = (val_auc, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    proba, y = predict(model, loaders["test"])
    return {"images_per_s": images / train_seconds, "test_auc": auc_score(y, proba, 1),
            "test_acc": float((proba.argmax(1) == y).mean()), "wall_s": time.time() - start}


def medclass_run(npz: Path, model_name: str, epochs: int, out: Path, seed: int = 0) -> dict:
    start = time.time()
    config = TrainConfig(data=str(npz), out=str(out), model=model_name, batch_size=BATCH, epochs=epochs,
                         patience=epochs, seed=seed, audit=False)
    train(config)
    images_per_s = training_images_per_s(read_history(out / "history.csv"))
    metrics, _ = evaluate_run(out, split="test", n_boot=200)
    return {"images_per_s": images_per_s, "test_auc": metrics["auc"], "test_acc": metrics["accuracy"],
            "wall_s": time.time() - start}


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--npz", default=None, help="breastmnist.npz (default: found under ../shared/data)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--models", default="resnet18_small,smallcnn")
    parser.add_argument("--out", default="runs/bench")
    args = parser.parse_args(argv)
    npz = Path(args.npz) if args.npz else find_npz("breastmnist")
    if npz is None:
        return "throughput: skipped (breastmnist.npz not found)"
    out = out_dir(args.out, "throughput")
    lines = [f"Training throughput, BreastMNIST 28 px, batch {BATCH}, {args.epochs} epochs, this machine, one run each:",
             "| network | loop | train images/s | speed-up | test AUC | test ACC | wall s |", "|---|---|---|---|---|---|---|"]
    for model_name in args.models.split(","):
        plain = plain_loop(npz, model_name, args.epochs)
        ours = medclass_run(npz, model_name, args.epochs, out / model_name)
        for label, r in (("plain PyTorch, MedMNIST-style (PIL, 0 workers, fp32)", plain), ("medclass default", ours)):
            lines.append(f"| {model_name} | {label} | {r['images_per_s']:.0f} | "
                         f"{r['images_per_s'] / plain['images_per_s']:.2f}x | {r['test_auc']:.3f} | "
                         f"{r['test_acc']:.3f} | {r['wall_s']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())

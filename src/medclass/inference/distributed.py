"""Prediction over archives too big for one process: the same Predictor run by Lightning's engine on N devices
(and nodes), each process taking its share of the files; rank 0 then writes one CSV in input order.

Each process decodes and predicts its share, keeping only logits; the rows are built from them by the same code as
single-process prediction, so the CSV is the same whatever the number of processes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from medclass.core.errors import DataError
from medclass.inference.backends import TorchBackend
from medclass.inference.batch import FrameOf, PredictionWriter, read_input, rows_from_logits
from medclass.inference.predictor import Predictor


class FileImages(Dataset):
    """(index, preprocessed image, error): an unreadable file gives zeros and its error, so its row says why."""

    def __init__(self, paths: Sequence[Path], predictor: Predictor):
        self.paths, self.transform = list(paths), predictor.transform
        size, chans = predictor.artifact.preprocessing.img_size, predictor.artifact.preprocessing.in_chans
        self.blank = torch.zeros(chans, size, size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return index, self.transform(read_input(self.paths[index])), ""
        except DataError as exc:
            return index, self.blank, str(exc)


class PredictStep(LightningModule):
    def __init__(self, predictor: Predictor):
        super().__init__()
        self.predictor = predictor
        self.model = predictor.model  # a submodule, so Lightning puts it on this process's device

    def on_predict_start(self) -> None:
        self.predictor.backend = TorchBackend(self.model, self.device)

    def predict_step(self, batch, batch_idx):
        index, images, errors = batch
        return index.cpu().numpy(), self.predictor.forward(images), list(errors)


class ShareWriter(BasePredictionWriter):
    """Each process saves its share as plain arrays (no pickle) for rank 0 to merge."""

    def __init__(self, folder: Path):
        super().__init__(write_interval="epoch")
        self.folder = folder

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        if not predictions:
            index, logits, errors = np.zeros(0, int), np.zeros((pl_module.predictor.views, 0, 0), "f4"), []
        else:
            index = np.concatenate([p[0] for p in predictions])
            logits = np.concatenate([p[1] for p in predictions], axis=1)
            errors = [e for p in predictions for e in p[2]]
        np.savez(self.folder / f"share-{trainer.global_rank}.npz", index=index, logits=logits,
                 errors=np.array(errors, dtype=str))


def predict_with_lightning(predictor: Predictor, paths: Sequence[Path], out: Path, devices: int = 1,
                           num_nodes: int = 1, accelerator: str = "auto", batch_size: int = 32,
                           num_workers: int = 0) -> bool:
    """Predict `paths` on `devices` x `num_nodes` processes and write `out` (input order). Returns whether this
    process is global rank 0 (the one that wrote the CSV)."""
    folder = out.with_name(f".{out.name}.shares")  # the same on every rank (several nodes: a shared filesystem)
    folder.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes, logger=False,
                      enable_checkpointing=False, enable_progress_bar=True, enable_model_summary=False,
                      callbacks=[ShareWriter(folder)],
                      strategy="ddp" if devices * num_nodes > 1 else "auto")
    loader = DataLoader(FileImages(paths, predictor), batch_size=batch_size, num_workers=num_workers)
    trainer.predict(PredictStep(predictor), loader, return_predictions=False)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return False
    merge_shares(predictor, paths, [folder / f"share-{rank}.npz" for rank in range(trainer.world_size)], out)
    shutil.rmtree(folder, ignore_errors=True)
    return True


def merge_shares(predictor: Predictor, paths: Sequence[Path], files: Sequence[Path], out: Path) -> None:
    shares = [np.load(f) for f in files]
    index = np.concatenate([s["index"] for s in shares])
    logits = np.concatenate([s["logits"] for s in shares if s["logits"].size], axis=1)
    errors = np.concatenate([s["errors"] for s in shares])
    # a distributed sampler pads the shares to equal length with repeats: keep each image once
    index, first = np.unique(index, return_index=True)
    if len(index) != len(paths):
        raise RuntimeError(f"distributed prediction returned {len(index)} of {len(paths)} images")
    errors = [e or None for e in errors[first]]
    readable = [i for i, e in zip(first, errors) if e is None]
    with PredictionWriter(out, predictor.heads, frames=any(isinstance(p, FrameOf) for p in paths)) as writer:
        for row in rows_from_logits(predictor, paths, logits[:, readable], errors):
            writer.write(row)

"""The Lightning data module: images reach the model as uint8 batches, augmented and normalised on its device.

Two data paths, chosen per run (`in_memory`):
- in memory: every image of a split is decoded and resized once into one uint8 tensor (28-px MedMNIST: a few MB);
  batches are slices of it, on the GPU when training runs there. No per-image work at all after the first epoch.
- per image: files are decoded by DataLoader workers each epoch (data too large for memory).
Both hand the model the same thing: `BatchAugment` in `on_after_batch_transfer` does the rest.
"""

from __future__ import annotations

import os

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from medclass.data.base import ImageDataset
from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead, encode_targets, heads_for
from medclass.training.augment import BatchAugment
from medclass.core.preprocessing import Preprocessing

MAX_AUTO_WORKERS = 8


class TorchImageDataset(Dataset):
    """Per-image path: decode, then `transform` (the preprocessing's load_transform: a resized uint8 tensor).
    `targets`: per image, what the loss compares with (heads.encode_targets); default: the target's class index."""

    def __init__(self, data: ImageDataset, transform, targets: np.ndarray | None = None):
        self.data = data
        self.transform = transform
        self.targets = torch.as_tensor(data.targets() if targets is None else targets)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        return self.transform(self.data.load_image(index)), self.targets[index]


class TensorImages(Dataset):
    """In-memory path: images (N, C, H, W) uint8 and targets, fetched a whole batch per call (`__getitems__`)."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor):
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.images[index], self.targets[index]

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices, device=self.images.device)
        return self.images[index], self.targets[index]

    def to(self, device: torch.device) -> "TensorImages":
        return TensorImages(self.images.to(device), self.targets.to(device))


def keep_batch(batch):
    """collate_fn of TensorImages: `__getitems__` already returns the batch."""
    return batch


def auto_workers(devices: int = 1) -> int:
    """DataLoader workers for the per-image path: the CPUs this process may use, shared among the local training
    processes, one left for the training loop itself; at most MAX_AUTO_WORKERS each."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(MAX_AUTO_WORKERS, cpus // max(devices, 1) - 1))


def training_bytes(data: ImageDataset, preprocessing: Preprocessing) -> int:
    """Memory the decoded uint8 images of the training and validation splits take."""
    n_images = sum(s.split in ("train", "val") for s in data.samples)
    return n_images * preprocessing.in_chans * preprocessing.img_size ** 2


def decode_all(data: ImageDataset, preprocessing: Preprocessing, num_workers: int,
               targets: np.ndarray | None = None) -> TensorImages:
    """Decode and resize every image once, in parallel when workers are given, into one uint8 tensor."""
    loader = DataLoader(TorchImageDataset(data, preprocessing.load_transform(), targets), batch_size=256,
                        num_workers=num_workers)
    images, targets = zip(*loader)
    return TensorImages(torch.cat(images), torch.cat(targets))


class ImageDataModule(L.LightningDataModule):
    def __init__(self, data: ImageDataset, preprocessing: Preprocessing, augment: BatchAugment, batch_size: int,
                 num_workers: int = 0, in_memory: bool = False, channels_last: bool = False,
                 train_sampler: Sampler | None = None, heads: list[TaskHead] | None = None):
        super().__init__()
        self.heads = heads or heads_for(data)  # the tasks learnt: their encoded labels are the batches' targets
        self.train_sampler = train_sampler  # None: shuffle; else it decides the order (training/imbalance.py)
        self.data, self.preprocessing, self.augment = data, preprocessing, augment
        self.batch_size, self.num_workers = batch_size, num_workers
        self.in_memory, self.channels_last = in_memory, channels_last
        self._splits: dict[str, Dataset] = {}

    def setup(self, stage: str) -> None:
        for split in ("train", "val"):
            if split in self._splits:
                continue
            subset = self.data.subset(split)
            targets = encode_targets(self.heads, subset.samples, where=subset.name)
            if not self.in_memory:
                self._splits[split] = TorchImageDataset(subset, self.preprocessing.load_transform(), targets)
                continue
            tensors = decode_all(subset, self.preprocessing, self.num_workers, targets)
            device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
            # on a GPU the whole split lives there: batches are index lookups, nothing crosses the bus
            self._splits[split] = tensors.to(device) if device.type == "cuda" else tensors

    def _loader(self, split: str, training: bool) -> DataLoader:
        subset = self._splits[split]
        if isinstance(subset, TensorImages):
            options = {"collate_fn": keep_batch}
        else:
            options = {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0,
                       "pin_memory": torch.cuda.is_available()}
        return split_loader(subset, self.batch_size, self.trainer, training, self.train_sampler, **options)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", training=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", training=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, targets = batch
        x = self.augment(images, train=self.trainer is not None and self.trainer.training)
        return (x.contiguous(memory_format=torch.channels_last) if self.channels_last else x), targets


def split_loader(data: Dataset, batch_size: int, trainer, training: bool, train_sampler: Sampler | None = None,
                 **options) -> DataLoader:
    """The batching rule of every data path (images or cached features), so both take the same steps.

    Under DDP `batch_size` is shared among the processes (the recipe's batch is the global one). Training batches
    come shuffled or in `train_sampler`'s order (Lightning shards them per process, wrapping the sampler); the last
    one is dropped only when that cannot empty an epoch (a size-1 batch breaks BatchNorm). Validation under DDP
    sends image i to rank i % world_size, the list padded at the end with its first images so that every rank gets
    as many: the layout ClassifierModule.gather_validation undoes to count every image once."""
    world = trainer.world_size if trainer else 1
    device_batch = max(batch_size // world, 1)
    if training:
        order = {"sampler": train_sampler} if train_sampler else {"shuffle": True}
        return DataLoader(data, batch_size=device_batch, drop_last=len(data) // world > device_batch, **order,
                          **options)
    if world == 1:
        return DataLoader(data, batch_size=device_batch, **options)
    shards = DistributedSampler(data, num_replicas=world, rank=trainer.global_rank, shuffle=False)
    return DataLoader(data, batch_size=device_batch, sampler=shards, **options)


def choose_in_memory(setting: str, data: ImageDataset, preprocessing: Preprocessing, budget_gb: float) -> bool:
    """`auto`: in memory when the decoded images fit in `budget_gb`; `on` refuses data that does not fit."""
    size = training_bytes(data, preprocessing)
    fits = size <= budget_gb * 2 ** 30
    if setting == "on" and not fits:
        raise MedclassError(f"{data.name}: decoded images take {size / 2 ** 30:.1f} GiB, over --memory-budget-gb "
                            f"{budget_gb:g}; raise the budget or use --in-memory auto/off")
    return setting == "on" or (setting == "auto" and fits)

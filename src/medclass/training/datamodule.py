"""Torch datasets and the Lightning data module over an `ImageDataset` that already has its splits."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from medclass.data.base import ImageDataset


class TorchImageDataset(Dataset):
    def __init__(self, data: ImageDataset, transform):
        self.data = data
        self.transform = transform
        self.targets = torch.as_tensor(data.targets())

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        return self.transform(self.data.load_image(index)), self.targets[index]


class ImageDataModule(L.LightningDataModule):
    def __init__(self, data: ImageDataset, train_transform, eval_transform, batch_size: int, num_workers: int = 0):
        super().__init__()
        self.data = data
        self.train_transform, self.eval_transform = train_transform, eval_transform
        self.batch_size, self.num_workers = batch_size, num_workers

    def _loader(self, split: str, transform, shuffle: bool) -> DataLoader:
        subset = TorchImageDataset(self.data.subset(split), transform)
        # drop_last only when it cannot empty an epoch: a size-1 last batch breaks BatchNorm in training.
        drop_last = shuffle and len(subset) > self.batch_size
        return DataLoader(subset, batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.train_transform, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_transform, shuffle=False)

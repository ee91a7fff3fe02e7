"""Frozen-backbone features, computed once and reused: the head then trains on vectors instead of images.

With `--finetune frozen` and no random augmentation, every epoch would push the same images through the same
frozen network; its pooled output (the classifier's input) is all the head ever sees. So it is computed once per
image and stored under a key that changes whenever the answer could: the backbone's weights (hashed tensor by
tensor, so any weights file or hub version is covered), the architecture and head options, the preprocessing
(size, channels, mean/std, interpolation), the numeric precision and the views (with flips: the mirrored image
too). Each image is found by a hash of its decoded, resized pixels, so renamed or re-split files still hit and an
edited file misses. Random horizontal flips stay possible: both views are stored and training draws one per image
per epoch, exactly as flipping the image would; validation averages them, as flip TTA does.

The cache lives in `$MEDCLASS_CACHE/features` (default ~/.cache/medclass/features), one file per key.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from medclass.data.base import ImageDataset
from medclass.core.heads import TaskHead, encode_targets, heads_for
from medclass.training.augment import BatchAugment
from medclass.training.augment_policy import resolve_policy
from medclass.training.datamodule import decode_all, split_loader
from medclass.training.progress import report
from medclass.core.preprocessing import Preprocessing

EXTRACT_BATCH = 64


def cache_root() -> Path:
    return Path(os.environ.get("MEDCLASS_CACHE", Path.home() / ".cache" / "medclass")) / "features"


def head_dropout(model: nn.Module, configured: float | None) -> float:
    """The dropout a model applies to its pooled features before the classifier: the `drop_rate` it was built with
    (timm models and SmallCNN apply it there), else the architecture's own where it keeps one."""
    return float(configured if configured is not None else getattr(model, "drop_rate", 0.0) or 0.0)


def classify_features(model: nn.Module, features: torch.Tensor, training: bool, drop_rate: float | None
                      ) -> torch.Tensor:
    """What `model(x)` does after `forward_head(..., pre_logits=True)`: dropout, then the classifier."""
    return model.get_classifier()(F.dropout(features, head_dropout(model, drop_rate), training))


@dataclass
class CacheReport:
    key: str
    path: str
    images: int
    reused: int
    computed: int
    views: int

    def summary(self) -> str:
        return (f"{self.images} images x {self.views} view(s): {self.reused} reused, {self.computed} computed "
                f"({self.path})")

    def to_dict(self) -> dict:
        return asdict(self)


def backbone_key(model: nn.Module, model_name: str, model_kwargs: dict, preprocessing: Preprocessing,
                 precision: str, views: int) -> str:
    """Everything that decides a feature vector. The classifier's own tensors are left out: they are trained,
    and do not change the features."""
    classifier = {id(t) for t in model.get_classifier().state_dict(keep_vars=True).values()}
    digest = hashlib.blake2b(digest_size=16)
    # dropout and the task heads act after the cache
    options = {k: v for k, v in model_kwargs.items() if k not in ("drop_rate", "task_outputs")}
    digest.update(json.dumps([model_name, options, preprocessing.to_dict(), precision, views],
                             sort_keys=True).encode())
    hash_tensors(digest, ((name, tensor) for name, tensor in model.state_dict(keep_vars=True).items()
                          if id(tensor) not in classifier))
    return digest.hexdigest()


def hash_tensors(digest, named) -> None:
    """Feed each (name, tensor)'s name and exact bytes to `digest` (any hashlib object)."""
    for name, tensor in named:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def image_keys(images: torch.Tensor) -> list[str]:
    return [hashlib.blake2b(image.numpy().tobytes(), digest_size=16).hexdigest() for image in images]


@torch.no_grad()
def pooled_features(model: nn.Module, images: torch.Tensor, preprocessing: Preprocessing, views: int,
                    device: torch.device, precision: str) -> torch.Tensor:
    """(N, views, D) float32: the classifier's input for each image (view 1: mirrored), the model in eval mode."""
    normalize = BatchAugment(preprocessing, resolve_policy("none", hflip=False))
    autocast = precision.startswith(("bf16", "16"))
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, len(images), EXTRACT_BATCH):
        x = normalize(images[start:start + EXTRACT_BATCH].to(device), train=False)
        batch = []
        for view in range(views):
            with torch.autocast(device.type, dtype=dtype, enabled=autocast):
                batch.append(model.forward_head(model.forward_features(x.flip(-1) if view else x),
                                                pre_logits=True).float())
        chunks.append(torch.stack(batch, 1).cpu())
    model.train(was_training)
    return torch.cat(chunks)


class FeatureStore:
    """One file per backbone key: {image key: (views, D) tensor}, written atomically so that concurrent runs
    (or DDP ranks) never read half a file."""

    def __init__(self, key: str, root: Path | None = None):
        self.key = key
        self.path = (root or cache_root()) / f"{key}.pt"

    def load(self) -> dict[str, torch.Tensor]:
        if not self.path.is_file():
            return {}
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged cache costs a recomputation, never the run
            report(f"feature cache {self.path} unreadable ({exc}); recomputing")
            return {}

    def save(self, features: dict[str, torch.Tensor]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(features, partial)
        partial.replace(self.path)


def cached_features(model: nn.Module, splits: dict[str, ImageDataset], preprocessing: Preprocessing,
                    model_name: str, model_kwargs: dict, views: int, device: torch.device, precision: str,
                    num_workers: int, heads: list[TaskHead] | None = None
                    ) -> tuple[dict[str, TensorDataset], CacheReport]:
    """Features and targets (`heads`' encoding; default: the data's own tasks) of each split, taken from the cache
    where present, computed (and added) where not."""
    model = model.to(device)
    heads = heads or heads_for(next(iter(splits.values())))
    store = FeatureStore(backbone_key(model, model_name, model_kwargs, preprocessing, precision, views))
    known = store.load()
    decoded = {split: decode_all(data, preprocessing, num_workers, encode_targets(heads, data.samples,
                                                                                  where=data.name))
               for split, data in splits.items()}
    keys = {split: image_keys(tensors.images) for split, tensors in decoded.items()}
    missing = {split: [i for i, k in enumerate(keys[split]) if k not in known] for split in splits}
    computed = 0
    for split, indices in missing.items():
        if indices:
            new = pooled_features(model, decoded[split].images[indices], preprocessing, views, device, precision)
            known.update(zip((keys[split][i] for i in indices), new))
            computed += len(indices)
    if computed:
        store.save(known)
    total = sum(len(k) for k in keys.values())
    report = CacheReport(store.key, str(store.path), total, total - computed, computed, views)
    datasets = {split: TensorDataset(torch.stack([known[k] for k in keys[split]]), decoded[split].targets)
                for split in splits}
    return datasets, report


class FeatureDataModule(L.LightningDataModule):
    """Batches of cached features (N, views, D) with their targets; the same batch size, order, last-batch rule
    and DDP sharding as the image path (ImageDataModule), so a run takes the same optimizer steps either way."""

    def __init__(self, splits: dict[str, TensorDataset], batch_size: int, train_sampler: Sampler | None = None):
        super().__init__()
        self.splits, self.batch_size, self.train_sampler = splits, batch_size, train_sampler

    def train_dataloader(self) -> DataLoader:
        return split_loader(self.splits["train"], self.batch_size, self.trainer, True, self.train_sampler)

    def val_dataloader(self) -> DataLoader:
        return split_loader(self.splits["val"], self.batch_size, self.trainer, False)

"""The LightningModule: one network answering one or more tasks, its loss, optimiser and schedule, and the
validation AUC that selects the checkpoint (the mean over tasks, or one task's)."""

from __future__ import annotations

import hashlib
import warnings

import lightning as L
import numpy as np
import torch
from torch import nn

from medclass.core.errors import DataWarning, MedclassError
from medclass.evaluation.metrics import decision_accuracy, task_scores
from medclass.core.heads import TaskHead, per_task, view_probabilities
from medclass.models import create_model
from medclass.training.batchnorm import check_frozen_features
from medclass.training.checkpoints import FROZEN, leave_out_frozen, put_back_frozen
from medclass.training.config import TrainConfig
from medclass.training.feature_cache import classify_features, hash_tensors
from medclass.training.losses import TaskLoss
from medclass.training.optim import optimization


def as_heads(heads: int | list) -> list[TaskHead]:
    """TaskHeads from dicts (as checkpoints keep them), or a class count: one task 'label' with classes '0'...'n-1'."""
    if isinstance(heads, int):
        return [TaskHead("label", "binary" if heads == 2 else "multiclass", tuple(map(str, range(heads))))]
    return [h if isinstance(h, TaskHead) else TaskHead.from_dict(h) for h in heads]


class ClassifierModule(L.LightningModule):
    """The network `config` describes, trained as it says: one output block per task of `task_heads` (TaskHead or
    their dicts, main task first; or a class count for one task), on `in_chans`-channel images. `config` comes
    resolved (fit.py: its model named, its hflip chosen); `class_weights`: each task's class weights in the loss,
    from the training images (imbalance.py: loss_class_weights). Every setting is read from `config`, so the
    module has no defaults of its own to drift from TrainConfig's."""

    def __init__(self, config: TrainConfig, task_heads: int | list, in_chans: int,
                 class_weights: dict[str, list[float]] | None = None):
        super().__init__()
        self.config = config
        self.task_heads = as_heads(task_heads)
        # several tasks: one output block each on the shared backbone (core/architectures.py: TaskHeads); the
        # artefact keeps these to rebuild the network
        self.model_kwargs = config.model_kwargs | (
            {"task_outputs": [h.outputs for h in self.task_heads]} if len(self.task_heads) > 1 else {})
        # what checkpoints and experiment loggers record; plain data, as checkpoints load weights-only
        self.save_hyperparameters({**config.to_dict(), "task_heads": [h.to_dict() for h in self.task_heads],
                                   "in_chans": in_chans, "model_kwargs": self.model_kwargs,
                                   "loss_class_weights": class_weights or {}})
        self.model = create_model(config.model, sum(h.outputs for h in self.task_heads), in_chans,
                                  pretrained=config.pretrained, **self.model_kwargs)
        self.loss = TaskLoss(self.task_heads, config.task_weights, class_weights, config.label_smoothing,
                             config.loss, config.focal_gamma)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._backbone_frozen = False
        self._frozen_digest: str | None = None  # hash of the frozen weights, computed once (they never change)
        # True when batches are cached backbone features (N, views, D) instead of images (training/feature_cache.py)
        self.on_features = False

    # Fine-tuning: `full` trains everything; `frozen` only the classifier; `two-stage` the classifier alone for
    # `head_epochs`, then everything, the backbone at `backbone_lr_scale` x the learning rate (a new classifier's
    # large early gradients would otherwise wreck the pretrained features).
    def backbone_frozen_in(self, epoch: int) -> bool:
        finetune = self.config.finetune
        return finetune == "frozen" or (finetune == "two-stage" and epoch < self.config.head_epochs)

    def backbone_and_classifier(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        classifier = {id(p) for p in self.model.get_classifier().parameters()}
        params = list(self.model.parameters())
        return [p for p in params if id(p) not in classifier], [p for p in params if id(p) in classifier]

    def freeze_backbone(self, frozen: bool) -> None:
        for p in self.backbone_and_classifier()[0]:
            p.requires_grad_(not frozen)
        self._backbone_frozen = frozen
        self.train(self.training)

    def train(self, mode: bool = True):
        """A frozen backbone keeps its BatchNorm statistics (eval mode) on purpose: they are the pretrained
        network's, and updating them under frozen weights would shift every feature the classifier learns from."""
        super().train(mode)
        if mode and self._backbone_frozen:
            classifier = set(self.model.get_classifier().modules())
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m not in classifier:
                    m.eval()
        return self

    # Checkpoints of a backbone frozen for the whole run hold what trains only (training/checkpoints.py: FROZEN).
    def frozen_tensors(self) -> list[str]:
        """State-dict names of the parameters that never train (`frozen`: the backbone's); none otherwise."""
        if self.config.finetune != "frozen":
            return []
        classifier = {id(p) for p in self.model.get_classifier().parameters()}
        return [f"model.{name}" for name, p in self.model.named_parameters() if id(p) not in classifier]

    def frozen_digest(self) -> str:
        if self._frozen_digest is None:
            state, digest = self.state_dict(), hashlib.blake2b(digest_size=16)
            hash_tensors(digest, ((name, state[name]) for name in sorted(self.frozen_tensors())))
            self._frozen_digest = digest.hexdigest()
        return self._frozen_digest

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        frozen = self.frozen_tensors()
        if frozen:
            leave_out_frozen(checkpoint, frozen, self.frozen_digest())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if checkpoint.get(FROZEN):
            put_back_frozen(checkpoint, self.state_dict(), self.frozen_digest(), self.config.pretrained)

    def load_trained_state(self, checkpoint: dict) -> None:
        """The weights of a checkpoint medclass wrote (the frozen backbone put back where it was left out)."""
        self.on_load_checkpoint(checkpoint)
        self.load_state_dict(checkpoint["state_dict"])

    def on_fit_start(self) -> None:
        self.freeze_backbone(self.backbone_frozen_in(self.current_epoch))
        if self.trainer.world_size > 1:
            # every rank was seeded alike (for the same initial weights); augmentation and dropout should differ
            torch.manual_seed(torch.initial_seed() + self.global_rank)

    def on_train_epoch_start(self) -> None:
        frozen = self.backbone_frozen_in(self.current_epoch)
        if frozen != self._backbone_frozen:
            self.freeze_backbone(frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.on_features:
            return classify_features(self.model, x, self.training, self.model_kwargs.get("drop_rate"))
        return self.model(x)

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """What flip TTA averages over: the image and, when on, its mirror (cached features hold both already)."""
        if self.on_features:
            return list(x.unbind(1))
        return [x, x.flip(-1)] if self.config.hflip else [x]

    def predict_proba(self, x: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        """Every task's probabilities averaged over the views (as the Predictor does); `logits`: the first view's,
        when already run."""
        first, *others = self.views(x)
        logits = [self(first) if logits is None else logits, *map(self, others)]
        return view_probabilities(self.task_heads, torch.stack(logits))

    def _training_input(self, x: torch.Tensor) -> torch.Tensor:
        """Cached features: one view per image, drawn at random (the mirrored one half of the time when flips are
        on), as random flipping does to images."""
        if not self.on_features:
            return x
        if x.shape[1] == 1:  # no flips: no random draw either, so the run's random stream matches the image path
            return x[:, 0]
        views = torch.randint(x.shape[1], (len(x),), device=x.device)
        return x[torch.arange(len(x), device=x.device), views]

    def frozen_features(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input for a batch, (N, D), as at inference (no dropout)."""
        if self.on_features:
            return x[:, 0]
        with torch.no_grad():
            self.model.eval()
            features = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        self.train(True)  # back to training, the frozen BatchNorm layers in eval mode
        return features

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.global_step == 0 and batch_idx == 0 and self._backbone_frozen:  # a fresh start, not a resume
            warning = check_frozen_features(self.frozen_features(x), stops=self.config.finetune == "frozen")
            if warning:
                warnings.warn(warning, DataWarning, stacklevel=2)
        logits = self(self._training_input(x))
        loss = self.loss(logits, y)
        if not torch.isfinite(loss):
            # training on would only write NaN weights over the last good checkpoint
            raise MedclassError(f"training loss is {float(loss)} at epoch {self.current_epoch + 1}, step "
                                f"{batch_idx + 1}: stopped. Checkpoints of the finished epochs are kept (--resume "
                                "continues from the last); a lower --lr or --precision 32-true usually avoids this")
        # sync_dist: under DDP the epoch's loss is the mean over all ranks (synced once, at the epoch's end)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("train_acc", self.batch_accuracy(logits, y), on_step=False, on_epoch=True, batch_size=len(y),
                 sync_dist=True)
        return loss

    def batch_accuracy(self, logits: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy on a training batch as it was trained (augmented, dropout on; cached features: the view drawn),
        at each task's decision, averaged over tasks as val_acc is: the training curve beside val_acc."""
        proba = view_probabilities(self.task_heads, logits.detach().float()[None]).cpu().numpy()
        targets, probas = per_task(self.task_heads, y.cpu().numpy(), "targets"), per_task(self.task_heads, proba)
        accuracies = [decision_accuracy(h, targets[h.name], probas[h.name]) for h in self.task_heads]
        return float(np.nanmean(accuracies)) if np.isfinite(accuracies).any() else 0.0

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(self.views(x)[0])  # run once, for the loss and the probabilities
        self.log("val_loss", self.loss(logits, y), on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self._val_outputs.append((self.predict_proba(x, logits).detach(), y.detach()))

    def on_validation_epoch_end(self):
        if not self._val_outputs:
            return
        proba = torch.cat([p for p, _ in self._val_outputs])
        y = torch.cat([t for _, t in self._val_outputs])
        self._val_outputs.clear()
        if self.trainer.world_size > 1:  # every rank holds part of the validation set under DDP
            proba, y = self.gather_validation(proba), self.gather_validation(y)
        proba_np, y_np = proba.float().cpu().numpy(), y.cpu().numpy()
        scores = task_scores(self.task_heads, per_task(self.task_heads, y_np, "targets"),
                             per_task(self.task_heads, proba_np))
        monitor = self.config.monitor_task
        aucs = [scores[monitor]["auc"]] if monitor else [s["auc"] for s in scores.values()]
        auc = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")
        # NaN AUC (a class missing from a tiny validation set) must not win checkpoint selection.
        # every rank computed the same values from the gathered outputs: syncing them averages equal numbers
        self.log("val_auc", auc if np.isfinite(auc) else 0.0, prog_bar=True, sync_dist=True)
        self.log("val_acc", float(np.nanmean([s["accuracy"] for s in scores.values()])), prog_bar=True,
                 sync_dist=True)
        if len(self.task_heads) > 1:  # each task's own AUC, in history.csv beside the mean that selects
            for name, score in scores.items():
                self.log(f"val_auc_{name}", score["auc"] if np.isfinite(score["auc"]) else 0.0, sync_dist=True)

    def gather_validation(self, local: torch.Tensor) -> torch.Tensor:
        """All ranks' validation outputs, each image once, in the validation set's order. Rank r validated images
        r, r + world_size, ... of a list padded with its first images (ImageDataModule.val_dataloader): interleaving
        the gathered parts restores the order, and cutting at the set's length drops the padded copies, which would
        otherwise count a few images twice in the AUC."""
        # torch's own all_gather: Lightning's goes through a deprecated autograd variant that warns every epoch
        parts = [torch.empty_like(local) for _ in range(self.trainer.world_size)]
        torch.distributed.all_gather(parts, local.contiguous())
        gathered = torch.stack(parts, dim=1)  # (images per rank, world_size, ...): image i at [i // w, i % w]
        return gathered.flatten(0, 1)[:len(self.trainer.val_dataloaders.dataset)]

    def parameter_groups(self) -> list[dict]:
        """Classifier at the learning rate, backbone at `backbone_lr_scale` x it (1 unless two-stage). Frozen
        parameters stay in the optimizer: they get no gradient, so no update, until a second stage thaws them."""
        config = self.config
        backbone, classifier = self.backbone_and_classifier()
        scale = config.backbone_lr_scale if config.finetune == "two-stage" else 1.0
        return [{"params": backbone, "lr": config.lr * scale}, {"params": classifier, "lr": config.lr}]

    def configure_optimizers(self):
        config = self.config
        return optimization(config.optimizer, config.scheduler, self.parameter_groups(), config.lr,
                            config.weight_decay, self.trainer.max_epochs,
                            lambda: int(self.trainer.estimated_stepping_batches))

"""The LightningModule: one classifier, its loss, optimiser and schedule, and validation AUC for selection."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn

from medclass.evaluation.metrics import auc_score
from medclass.models import create_model


class ClassifierModule(L.LightningModule):
    def __init__(self, model_name: str, num_classes: int, in_chans: int, pretrained=False, lr: float = 2e-3,
                 weight_decay: float = 0.05, optimizer: str = "adamw", scheduler: str = "onecycle",
                 label_smoothing: float = 0.1, class_weights: list[float] | None = None, hflip_tta: bool = True,
                 positive_index: int | None = None, model_kwargs: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(model_name, num_classes, in_chans, pretrained=pretrained,
                                  **(model_kwargs or {}))
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.loss = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax, averaged with the mirrored image when flip TTA is on (as the Predictor does)."""
        proba = self(x).float().softmax(1)  # bf16 logits: sums off by >1e-3, which sklearn AUC refuses
        if self.hparams.hflip_tta:
            proba = (proba + self(x.flip(-1)).float().softmax(1)) / 2
        return proba

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.loss(logits, y), on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self._val_outputs.append((self.predict_proba(x).detach(), y.detach()))

    def on_validation_epoch_end(self):
        if not self._val_outputs:
            return
        proba = torch.cat([p for p, _ in self._val_outputs])
        y = torch.cat([t for _, t in self._val_outputs])
        self._val_outputs.clear()
        if self.trainer.world_size > 1:  # every rank holds part of the validation set under DDP
            proba = self.all_gather(proba).flatten(0, 1)
            y = self.all_gather(y).flatten(0, 1)
        proba_np, y_np = proba.float().cpu().numpy(), y.cpu().numpy()
        auc = auc_score(y_np, proba_np, self.hparams.positive_index)
        # NaN AUC (a class missing from a tiny validation set) must not win checkpoint selection.
        self.log("val_auc", auc if np.isfinite(auc) else 0.0, prog_bar=True, sync_dist=False)
        self.log("val_acc", float((proba_np.argmax(1) == y_np).mean()), prog_bar=True, sync_dist=False)

    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=0.9, weight_decay=hp.weight_decay,
                                  nesterov=True)
        else:
            opt_class = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
            opt = opt_class(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return opt
        epochs = self.trainer.max_epochs
        if hp.scheduler == "onecycle":
            steps = int(self.trainer.estimated_stepping_batches)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=max(steps, 1))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if hp.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
        else:  # "step": MedMNIST's baseline schedule, x0.1 at 50% and 75% of the epochs
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[epochs // 2, epochs * 3 // 4], gamma=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

"""Patient-level metrics: when patients have several images, a clinician decides per patient. A patient's
probabilities are the mean over their images; their label is the one all their images share, otherwise (binary)
positive when any image is, (multi-label) every finding any image has, (multiclass) the most frequent label."""

from __future__ import annotations

import numpy as np

from medclass.evaluation.metrics import task_metrics
from medclass.core.heads import TaskHead


def aggregate(head: TaskHead, y: np.ndarray, proba: np.ndarray, patients: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(patient ids, their target columns, their mean probabilities, how many patients' images disagree)."""
    ids, row_patient = np.unique(patients, return_inverse=True)
    counts = np.bincount(row_patient, minlength=len(ids))
    mean = np.zeros((len(ids), proba.shape[1]))
    np.add.at(mean, row_patient, proba)
    mean /= counts[:, None]
    labels, disagreeing = np.zeros((len(ids), y.shape[1]), dtype=np.int64), 0
    for p in range(len(ids)):
        own = y[row_patient == p]
        disagreeing += int(len(np.unique(own, axis=0)) > 1)
        if head.kind == "multilabel":
            labels[p] = own.max(0)
        elif head.kind == "binary":
            positive = (own[:, 0] == head.positive_index).any()
            labels[p, 0] = head.positive_index if positive else 1 - head.positive_index
        else:
            labels[p, 0] = np.bincount(own[:, 0]).argmax()
    return ids, labels, mean, disagreeing


def patient_level(head: TaskHead, y: np.ndarray, proba: np.ndarray, patients: np.ndarray, n_boot: int = 1000,
                  seed: int = 0) -> dict:
    """The task's metrics over patients (decided by the head on the mean probabilities)."""
    ids, labels, mean, disagreeing = aggregate(head, y, proba, patients)
    truth = labels if head.kind == "multilabel" else labels[:, 0]
    metrics = task_metrics(head.kind, truth, mean, head.decide(mean), list(head.classes), head.positive_index,
                           head.ordinal, n_boot=n_boot, seed=seed)
    return metrics | {"patients": int(len(ids)), "images": int(len(y)), "patients_with_disagreeing_labels": disagreeing,
                      "aggregation": "mean probability over the patient's images"}

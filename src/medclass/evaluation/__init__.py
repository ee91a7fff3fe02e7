"""Evaluation: predict a split, score it like a clinical paper, calibrate, choose operating points, compare runs."""

from medclass.evaluation.evaluate import evaluate_run
from medclass.evaluation.metrics import auc_score, task_metrics

__all__ = ["auc_score", "evaluate_run", "task_metrics"]

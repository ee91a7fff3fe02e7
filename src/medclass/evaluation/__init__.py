"""Evaluation: metrics with bootstrap CIs, plots and an HTML report."""

from medclass.evaluation.evaluate import evaluate_run
from medclass.evaluation.metrics import auc_score, classification_metrics

__all__ = ["auc_score", "classification_metrics", "evaluate_run"]

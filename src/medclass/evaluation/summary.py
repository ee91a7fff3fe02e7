"""What `medclass evaluate` prints: per task, the headline numbers with their intervals; for a multi-label task
the per-finding AUC table that ChestX-ray14 papers show."""

from __future__ import annotations


def _ci(bounds) -> str:
    return f"  (95% CI {bounds[0]:.3f}-{bounds[1]:.3f})" if bounds else ""


def summary_lines(metrics: dict) -> list[str]:
    if "tasks" not in metrics:
        return task_lines(metrics)
    lines = [f"{len(metrics['tasks'])} tasks on {metrics['n']} images; mean AUC {metrics['mean_auc']:.4f}"]
    for name, task in metrics["tasks"].items():
        lines += ["", f"task {name} ({task['kind']}, {task['n']} labelled images)"] + task_lines(task)
    return lines


def task_lines(metrics: dict) -> list[str]:
    ci = metrics.get("ci", {})
    if metrics.get("kind") == "multilabel":
        lines = [f"{'AUC macro':>18}: {metrics['auc']:.4f}{_ci(ci.get('auc'))}",
                 f"{'AUC micro':>18}: {metrics['auc_micro']:.4f}{_ci(ci.get('auc_micro'))}",
                 f"{'F1 macro':>18}: {metrics['f1_macro']:.4f}", "",
                 f"{'finding':<20} {'positives':>9} {'AUC':>7}  95% CI"]
        for name, m in metrics["per_finding"].items():
            bounds = m.get("auc_ci")
            interval = f"{bounds[0]:.3f}-{bounds[1]:.3f}" if bounds else "-"
            lines.append(f"{name:<20} {m['positives']:>9} {m['auc']:>7.4f}  {interval}")
        return lines
    lines = [f"{key:>18}: {metrics[key]:.4f}{_ci(ci.get(key))}" for key in ("auc", "accuracy", "balanced_accuracy")]
    return lines + [f"{key:>18}: {metrics[key]:.4f}" for key in ("f1_macro", "f1_weighted")]

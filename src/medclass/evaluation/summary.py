"""What `medclass evaluate` prints: per task, the headline numbers with their intervals (the report's rows), where
the operating point came from, calibration, patient-level AUC; for a multi-label task the per-finding AUC table
that ChestX-ray14 papers show."""

from __future__ import annotations

from medclass.evaluation.report import HEADLINE


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
    lines = [f"{name:>36}: {metrics[key]:.4f}{_ci(ci.get(key))}" for name, key in HEADLINE[metrics["kind"]]
             if key in metrics]
    lines.append(f"{'decision':>36}: {metrics['decision']}")
    cal = metrics.get("calibration")
    if cal:
        lines.append(f"{'calibration':>36}: temperature {cal['temperature']:.3g}; ECE "
                     f"{cal['uncalibrated']['ece']:.3f} uncalibrated, {cal['calibrated']['ece']:.3f} calibrated")
    patients = metrics.get("patient_level")
    if patients:
        lines.append(f"{'per patient':>36}: AUC {patients['auc']:.4f}{_ci(patients.get('ci', {}).get('auc'))} over "
                     f"{patients['patients']} patients")
    if metrics["kind"] == "multilabel":
        lines += ["", f"{'finding':<20} {'positives':>9} {'AUC':>7}  95% CI"]
        for name, m in metrics["per_finding"].items():
            bounds = m.get("auc_ci")
            interval = f"{bounds[0]:.3f}-{bounds[1]:.3f}" if bounds else "-"
            lines.append(f"{name:<20} {m['positives']:>9} {m['auc']:>7.4f}  {interval}")
    return lines

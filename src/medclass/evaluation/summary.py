"""What `medclass evaluate` prints: per task, the headline numbers with their intervals (the report's rows), where
the operating point came from, calibration, patient-level AUC; then the per-class table in the shape of
scikit-learn's classification_report (precision, recall, f1-score, support; accuracy, macro and weighted avg) and,
for a multi-label task, the per-finding AUC table that ChestX-ray14 papers show beside its P/R/F1."""

from __future__ import annotations

import textwrap

from medclass.evaluation.report import HEADLINE, summary_rows
from medclass.evaluation.set_metrics import set_summary_lines
from medclass.evaluation.transfer import gap_lines

NAME_WIDTH = 36  # longer class names are cut in the terminal table (metrics.json and report.html keep them whole)


def _ci(bounds) -> str:
    return f"  (95% CI {bounds[0]:.3f}-{bounds[1]:.3f})" if bounds else ""


def summary_lines(metrics: dict) -> list[str]:
    if "tasks" not in metrics:
        return task_lines(metrics) + guard_summary(metrics)
    lines = [f"{len(metrics['tasks'])} tasks on {metrics['n']} images; mean AUC {metrics['mean_auc']:.4f}"]
    for name, task in metrics["tasks"].items():
        lines += ["", f"task {name} ({task['kind']}, {task['n']} labelled images)"] + task_lines(task)
    return lines + guard_summary(metrics)


def guard_summary(metrics: dict) -> list[str]:
    """One line: what the input guard would have accepted here, and the error rates of what it flags and accepts."""
    guard = metrics.get("input_guard")
    if not guard:
        return []
    accepted, flagged, kept = guard["accepted"], guard["error_rate_flagged"], guard["error_rate_accepted"]
    who = guard.get("detector", "no detector fitted, cheap checks only")
    line = f"{'input guard':>36}: {who}; accepts {accepted['count']}/{accepted['n']}"
    if flagged["n"]:
        line += f"; error rate {flagged['rate']:.1%} of flagged vs {kept['rate'] or 0:.1%} of accepted images"
    return [line]


def task_lines(metrics: dict) -> list[str]:
    ci = metrics.get("ci", {})
    lines = [f"{name:>36}: {metrics[key]:.4f}{_ci(ci.get(key))}" for name, key in HEADLINE[metrics["kind"]]
             if key in metrics]
    lines.append(f"{'decision':>36}: {metrics['decision']}")
    cal = metrics.get("calibration")
    if cal:
        lines.append(f"{'calibration':>36}: temperature {cal['temperature']:.3g}; ECE "
                     f"{cal['uncalibrated']['ece']:.3f} uncalibrated, {cal['calibrated']['ece']:.3f} calibrated")
    gap = metrics.get("validation_gap")
    if gap and "not_scored" in gap:
        lines.append(f"{'validation':>36}: {gap['not_scored']}")
    elif gap:
        first, *rest = gap_lines(gap)
        lines += [f"{'validation -> here':>36}: {first}"] + [
            f"{'':>38}{part}" for line in rest for part in textwrap.wrap(line, 80, subsequent_indent="  ")]
    patients = metrics.get("patient_level")
    if patients:
        lines.append(f"{'per patient':>36}: AUC {patients['auc']:.4f}{_ci(patients.get('ci', {}).get('auc'))} over "
                     f"{patients['patients']} patients")
    lines += set_summary_lines(metrics)
    lines += [""] + classification_report_lines(metrics)
    if metrics["kind"] == "multilabel":
        lines += ["", f"{'finding':<20} {'positives':>9} {'AUC':>7}  95% CI"]
        for name, m in metrics["per_finding"].items():
            bounds = m.get("auc_ci")
            interval = f"{bounds[0]:.3f}-{bounds[1]:.3f}" if bounds else "-"
            lines.append(f"{name:<20} {m['positives']:>9} {m['auc']:>7.4f}  {interval}")
    return lines


def _cut(name: str, width: int) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


def classification_report_lines(metrics: dict) -> list[str]:
    """Per class (multi-label: per finding, support = its positive images), then the averages."""
    per = metrics["per_finding"] if metrics["kind"] == "multilabel" else metrics["per_class"]
    averages = summary_rows(metrics)
    width = min(NAME_WIDTH, max(len(name) for name in [*per, *(row[0] for row in averages)]))
    support = "positives" if metrics["kind"] == "multilabel" else "support"

    def cell(value) -> str:
        return f"{value:>9.4f}" if value is not None else " " * 9

    lines = [f"{'':<{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {support:>9}"]
    lines += [f"{_cut(name, width):<{width}} {cell(m['precision'])} {cell(m['recall'])} {cell(m['f1'])} "
              f"{m.get('support', m.get('positives')):>9}" for name, m in per.items()]
    lines.append("")
    lines += [f"{name:<{width}} {cell(p)} {cell(r)} {cell(f)} {n:>9}" for name, p, r, f, n in averages]
    return lines

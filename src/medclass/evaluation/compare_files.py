"""What `medclass compare` writes: comparison.json (everything), comparison.csv (one row per task, class and
number, a column per run: for a spreadsheet or a paper's table), comparison.md (the same as markdown tables, with
the paired tests) and figures (per task: F1 per class or finding, the runs' bars side by side; binary tasks: the
runs' ROC curves on the shared images)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from medclass.evaluation.evaluate import safe_name
from medclass.evaluation.plots import plot_class_bars, plot_roc_runs

OVERALL = (("AUC", "auc"), ("PR-AUC", "pr_auc"), ("accuracy", "accuracy"), ("label accuracy", "label_accuracy"),
           ("balanced accuracy", "balanced_accuracy"), ("sensitivity", "sensitivity"),
           ("specificity", "specificity"), ("precision macro", "precision_macro"), ("recall macro", "recall_macro"),
           ("F1 macro", "f1_macro"))


def table_rows(result: dict, short: dict[str, str]) -> list[list]:
    """[task, class, number, value per run...]: the overall numbers (class 'all', AUC with its interval), then
    per class precision, recall, F1 and support."""
    runs = result["runs"]
    rows = [["task", "class", "number", *(short[r] for r in runs)]]
    for task, info in result["tasks"].items():
        numbers = [info["runs"][r] for r in runs]
        for label, key in (item for item in OVERALL if item[1] in numbers[0]):
            rows.append([task, "all", label, *(m[key] for m in numbers)])
            if key == "auc":
                rows += [[task, "all", f"AUC 95% CI {end}", *(m["auc_ci"][i] if m["auc_ci"] else "" for m in numbers)]
                         for i, end in enumerate(("low", "high"))]
        for name in info["classes"]:
            rows += [[task, name, key, *(m["per_class"][name][key] for m in numbers)]
                     for key in ("precision", "recall", "f1", "support")]
    return rows


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value).replace("|", "\\|")


def markdown(result: dict, short: dict[str, str]) -> str:
    """Per task: the overall numbers and the per-class table, runs side by side, then the paired tests."""
    runs = result["runs"]
    lines = [f"# medclass compare: {len(runs)} runs on the same {result['images']} images "
             f"({result['data']}, split {result['split']})", ""]
    lines += [f"- `{short[r]}`: {r}" for r in runs]
    rows = table_rows(result, short)[1:]
    for task, info in result["tasks"].items():
        lines += ["", f"## Task {task} ({info['kind']}, {info['n']} labelled images)", "",
                  "| number | " + " | ".join(short[r] for r in runs) + " |", "|---|" + "---|" * len(runs)]
        lines += [f"| {number} | " + " | ".join(map(_cell, values)) + " |"
                  for t, name, number, *values in rows if t == task and name == "all"]
        lines += ["", "| class | " + " | ".join(f"{short[r]} P / R / F1" for r in runs) + " | support |",
                  "|---|" + "---|" * (len(runs) + 1)]
        for name in info["classes"]:
            per = [info["runs"][r]["per_class"][name] for r in runs]
            lines.append(f"| {_cell(name)} | " + " | ".join(
                f"{m['precision']:.3f} / {m['recall']:.3f} / {m['f1']:.3f}" for m in per) + f" | {per[0]['support']} |")
        lines += ["", "Paired tests against the first run (difference = run - first, on the same images):", ""]
        for run, tests in info["versus_first"].items():
            for method, t in tests.items():
                if method != "delong_per_class":
                    lo, hi = t["ci"]
                    lines.append(f"- {short[run]}: {t['method']}, AUC difference {t['difference']:+.4f} "
                                 f"(95% CI {lo:+.3f} to {hi:+.3f}), p = {t['p_value']:.3f}")
    return "\n".join(lines) + "\n"


def write_comparison(result: dict, scores: dict[str, tuple], out: Path, short: dict[str, str]) -> dict[str, str]:
    """Write the files into `out`; returns {what: path} (also recorded in comparison.json)."""
    out.mkdir(parents=True, exist_ok=True)
    runs = result["runs"]
    files = {"table": out / "comparison.csv", "markdown": out / "comparison.md"}
    with open(files["table"], "w", newline="") as f:
        csv.writer(f).writerows(table_rows(result, short))
    files["markdown"].write_text(markdown(result, short))
    several = len(result["tasks"]) > 1
    for task, info in result["tasks"].items():
        prefix = f"{safe_name(task)}_" if several else ""
        f1 = {short[r]: [info["runs"][r]["per_class"][c]["f1"] for c in info["classes"]] for r in runs}
        files[f"{prefix}f1"] = plot_class_bars(f1, info["classes"], out / f"{prefix}f1_per_class.png",
                                               title=f"F1 per {'finding' if info['kind'] == 'multilabel' else 'class'}"
                                                     f" ({info['n']} images)")
        truth, probas, head = scores[task]
        if info["kind"] == "binary":
            positive = np.asarray(truth) == head.positive_index
            files[f"{prefix}roc"] = plot_roc_runs(positive, {short[r]: p[:, head.positive_index]
                                                             for r, p in zip(runs, probas)},
                                                  out / f"{prefix}roc_curves.png", head.positive_class)
    files = {k: str(v) for k, v in files.items()}
    files["json"] = str(out / "comparison.json")
    (out / "comparison.json").write_text(json.dumps(result | {"files": files}, indent=2, default=float))
    return files

"""report.html: one self-contained file (figures embedded, no script, no link outside it), readable offline and on a
phone, attachable to an email. Sections: the evaluation; the data (counts per split and class, how it was split, the
audit's findings); the model and its training config; per task the metrics with intervals, where the operating point
came from, calibration, patient-level numbers and figures; training curves; the per-image predictions."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

from medclass.evaluation.guard_report import guard_lines
from medclass.evaluation.set_metrics import coverage_text, two_class_example
from medclass.evaluation.transfer import gap_lines

HEADLINE = {
    "binary": [("ROC-AUC", "auc"), ("PR-AUC (average precision)", "pr_auc"), ("Sensitivity", "sensitivity"),
               ("Specificity", "specificity"), ("PPV (precision)", "ppv"), ("NPV", "npv"), ("F1", "f1"),
               ("Accuracy", "accuracy"), ("Balanced accuracy", "balanced_accuracy")],
    "multiclass": [("ROC-AUC (macro one-vs-rest)", "auc"), ("Accuracy", "accuracy"),
                   ("Balanced accuracy", "balanced_accuracy"), ("Quadratic-weighted kappa", "kappa_quadratic"),
                   ("F1 macro", "f1_macro"), ("F1 weighted", "f1_weighted"),
                   ("Precision weighted", "precision_weighted"), ("Recall weighted", "recall_weighted")],
    "multilabel": [("ROC-AUC macro", "auc"), ("ROC-AUC micro", "auc_micro"), ("PR-AUC macro", "pr_auc"),
                   ("PR-AUC micro", "pr_auc_micro"), ("F1 macro", "f1_macro"), ("F1 micro", "f1_micro"),
                   ("Label accuracy (image-finding pairs)", "label_accuracy"),
                   ("Subset accuracy (every finding right)", "subset_accuracy")],
}
PREDICTION_ROWS_SHOWN = 1000
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem auto; max-width: 1000px; padding: 0 0.8rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
.scroll { overflow-x: auto; max-width: 100%; }
figure { display: inline-block; margin: 0.4rem; max-width: 100%; } img { max-width: 100%; height: auto; }
small, figcaption { color: #555; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
.warn { color: #a40; }
"""


def esc(value) -> str:
    return html.escape(str(value))


def fmt(value) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.3f}"
    return esc(value)


def interval(bounds) -> str:
    return f" <small>({bounds[0]:.3f}–{bounds[1]:.3f})</small>" if bounds else ""


def table(rows: list[list[str]], header: list[str] | None = None) -> str:
    """Cells are HTML already (escape text with esc/fmt)."""
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table>{head}{body}</table></div>'


def pairs(items: dict) -> str:
    return table([[f"<b>{esc(k)}</b>", esc(v)] for k, v in items.items()])


def figure(path: Path, caption: str) -> str:
    if not path or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def headline(metrics: dict) -> str:
    ci = metrics.get("ci", {})
    rows = [[esc(name), fmt(metrics[key]) + interval(ci.get(key))] for name, key in HEADLINE[metrics["kind"]]
            if key in metrics]
    return table(rows)


def summary_rows(metrics: dict) -> list[tuple[str, float | None, float | None, float, int]]:
    """The rows under a per-class table, as scikit-learn's classification_report has them: (name, precision,
    recall, F1, support); accuracy has its value in the F1 column only. Multi-label: micro and macro averages."""
    n = metrics["n"]
    if metrics["kind"] == "multilabel":
        pairs = sum(m["positives"] for m in metrics["per_finding"].values())
        return [(f"{avg} avg", metrics[f"precision_{avg}"], metrics[f"recall_{avg}"], metrics[f"f1_{avg}"], pairs)
                for avg in ("micro", "macro")]
    return [("accuracy", None, None, metrics["accuracy"], n)] + [
        (f"{avg} avg", metrics[f"precision_{avg}"], metrics[f"recall_{avg}"], metrics[f"f1_{avg}"], n)
        for avg in ("macro", "weighted")]


def class_table(metrics: dict) -> str:
    """Per class (per finding): precision, recall, F1, support and the ranking numbers, then the averages."""
    averages = [[f"<b>{esc(name)}</b>", fmt(p) if p is not None else "", fmt(r) if r is not None else "", fmt(f),
                 "", "", str(support)] for name, p, r, f, support in summary_rows(metrics)]
    if metrics["kind"] == "multilabel":
        return table([[esc(name), fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]),
                       fmt(m["auc"]) + interval(m.get("auc_ci")), fmt(m["pr_auc"]), str(m["positives"]),
                       fmt(m["specificity"])] for name, m in metrics["per_finding"].items()]
                     + [row + [""] for row in averages],
                     ["finding", "precision", "recall (sensitivity)", "F1", "ROC-AUC", "PR-AUC", "positive images",
                      "specificity"])
    return table([[esc(name), fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]), fmt(m["auc_ovr"]),
                   fmt(m["pr_auc_ovr"]), str(m["support"])] for name, m in metrics["per_class"].items()] + averages,
                 ["class", "precision", "recall (sensitivity)", "F1", "ROC-AUC one-vs-rest", "PR-AUC one-vs-rest",
                  "images"])


def calibration_table(cal: dict) -> str:
    rows = [[esc(name), fmt(cal[key]["ece"]), fmt(cal[key]["brier"])]
            for name, key in (("uncalibrated (temperature 1)", "uncalibrated"),
                              (f"calibrated (temperature {cal['temperature']:.3g})", "calibrated"))]
    return table(rows, ["probabilities", "ECE (15 bins)", "Brier score"])


def task_section(metrics: dict, figures: dict[str, Path], several: bool) -> str:
    ci = metrics.get("ci", {})
    title = f"Task {esc(metrics['task'])} ({esc(metrics['kind'])}{', ordinal' if metrics.get('ordinal') else ''})"
    unlabelled = metrics.get("unlabelled")
    parts = [f"<h2>{title if several else 'Results: ' + title}</h2>",
             f"<p>{metrics['n']} images{f' ({unlabelled} more have no label for this task)' if unlabelled else ''}. "
             f"<b>Decision:</b> {esc(metrics['decision'])}. <b>Operating point chosen by:</b> "
             f"{esc(metrics['threshold_source'])}. " + (
                 '<span class="warn">The run trained on this split or chose its checkpoint, temperature and operating '
                 "point on it: these numbers are optimistic; the test split gives the honest estimate.</span>"
                 if metrics.get("fitted_on_this_split") else "Nothing was tuned on the split evaluated here.") + "</p>",
             f"<p><small>Brackets: {int(ci.get('level', 0.95) * 100)}% percentile bootstrap interval, "
             f"{ci.get('n_boot', 0)} resamples of {esc(ci.get('resampled', 'images'))}, stratified "
             f"{esc(ci.get('stratified', ''))}.</small></p>" if ci else "",
             headline(metrics), "<h3>Per " + ("finding" if metrics["kind"] == "multilabel" else "class") + "</h3>",
             class_table(metrics)]
    if "calibration" in metrics:
        parts += ["<h3>Calibration</h3><p>Temperature scaling fitted on the validation split; lower is better.</p>",
                  calibration_table(metrics["calibration"])]
    gap = metrics.get("validation_gap")
    if gap:
        text = gap["not_scored"] if "not_scored" in gap else " ".join(gap_lines(gap))
        warn = ' class="warn"' if gap.get("shifted") else ""
        parts += ["<h3>Validation and this split</h3>", f"<p{warn}>{esc(text)}</p>"]
    if "patient_level" in metrics:
        pl = metrics["patient_level"]
        parts += [f"<h3>Per patient</h3><p>{pl['patients']} patients ({pl['images']} images); probabilities "
                  f"averaged over each patient's images; {pl['patients_with_disagreeing_labels']} patient(s) whose "
                  "images carry different labels.</p>", headline(pl | {"kind": metrics["kind"]})]
    parts.append("".join(figure(path, name) for name, path in figures.items()))
    return "\n".join(parts)


def data_section(run, evaluated: dict, n_images: int) -> str:
    settings = run.settings() if run.config_file.is_file() else {}
    config, resolved = settings.get("config", {}), settings.get("resolved", {})
    parts = ["<h2>Data</h2>"]
    counts = resolved.get("counts") or {}
    if counts:
        classes = list(next(iter(counts.values())))
        parts += [f"<p>The run's data ({esc(config.get('data', ''))}), images per split and class of task "
                  f"{esc(resolved.get('task', ''))}:</p>",
                  table([[esc(split)] + [str(row.get(c, 0)) for c in classes] + [str(sum(row.values()))]
                         for split, row in counts.items()], ["split", *map(esc, classes), "total"])]
    grouping = resolved.get("split_grouping")
    if config.get("splits"):
        method = f"from the split file {config['splits']}" + (f", fold {config['fold']}" if config.get("fold") else "")
    elif grouping:
        method = (f"made by medclass, grouped by {grouping['by']} ({grouping['groups']} groups, "
                  f"{grouping['multi_image_groups']} with several images), stratified by class")
    else:
        method = "the data's own split" if counts else "unknown (no config.yaml)"
    parts.append(f"<p><b>Split:</b> {esc(method)}. <b>Evaluated here:</b> {esc(evaluated['data'])}, split "
                 f"{esc(evaluated['split'])}, {n_images} images.</p>")
    audit = run.audit()
    if audit:
        summary = audit.get("summary", {})
        found = {k.replace("_", " "): v for k, v in summary.items() if v and k not in ("images", "readable")}
        parts.append("<p><b>Audit before training:</b></p>" + (pairs(found) if found else "<p>nothing found</p>"))
    else:
        parts.append("<p><b>Audit:</b> none recorded (trained with --no-audit).</p>")
    if evaluated.get("skipped"):
        parts.append(f'<p class="warn">{len(evaluated["skipped"])} row(s) of the data could not be used (listed in '
                     "metrics.json).</p>")
    return "\n".join(parts)


def guard_section(summary: dict | None) -> str:
    """The input guard on the split evaluated (evaluation/guard_report.py); nothing when it was not assessed."""
    if summary is None:
        return ""
    rows = [[f"<b>{esc(what)}</b>", esc(value)] for what, value in guard_lines(summary)]
    return ("<h2>Input guard</h2><p>Images the guard would have set apart as unlike the training images, and "
            "whether those are the model's mistakes.</p>" + table(rows))


def prediction_sets_section(sections: dict[str, dict], classes: dict[str, list[str]]) -> str:
    """The tasks' conformal prediction sets on the split evaluated (evaluation/set_metrics.py); nothing when no
    task has sets."""
    rows, notes = [], []
    for task, metrics in sections.items():
        sets = metrics.get("prediction_sets")
        if not sets:
            continue
        low, high = sets["expected_range"]
        warn = ' class="warn"' if sets["verdict"] == "below" else ""
        rows.append([esc(task), f"{sets['target']:.2f}", fmt(coverage_text(sets["coverage"])),
                     f"<span{warn}>{esc(sets['verdict'])} ({low:.3f}–{high:.3f})</span>",
                     fmt(sets["mean_size"]), fmt(sets["singletons"]),
                     "<br>".join(f"{esc(c)}: {esc(coverage_text(b))}" for c, b in sets["per_class"].items()),
                     esc(("Mondrian (per class), " if sets["by_class"] else "marginal, ") + sets["score"].upper())])
        notes.append(f"<p><small><b>{esc(task)}</b>: calibrated by {esc(sets['calibration'])}."
                     + (f" Too few calibration images for a finite quantile: {esc(', '.join(sets['in_every_set']))} "
                        "in every set." if sets["in_every_set"] else "") + "</small></p>")
    if not rows:
        return ""
    example = two_class_example(next(classes[t] for t, m in sections.items() if m.get("prediction_sets")))
    return ("<h2>Prediction sets</h2><p>Each image's set holds the classes the model cannot rule out, chosen so that "
            f"the true class is in the set for the target share of images. {esc(example)} The expected range is "
            "where the coverage of this many images falls 95% of the time when the sets cover exactly at the "
            "target; above it is allowed, below it says these images differ from the validation images.</p>"
            + table(rows, ["task", "target", "coverage (95% CI)", "against the target", "mean set size",
                           "one-class sets", "coverage per class", "sets"]) + "".join(notes))


def model_section(run, artifact) -> str:
    config = run.settings().get("config", {}) if run.config_file.is_file() else {}
    summary = {"model": artifact.model_name,
               "tasks": "; ".join(f"{h.name}: {h.kind}, {', '.join(h.classes)}" for h in artifact.heads),
               "input": f"{artifact.preprocessing.img_size} px, {artifact.preprocessing.in_chans} channel(s)",
               "test-time augmentation": ", ".join(artifact.tta) or "none",
               "best validation AUC": f"{artifact.provenance.get('best_val_auc', float('nan')):.4f}",
               "versions": ", ".join(f"{k} {artifact.provenance[k]}" for k in ("medclass", "torch", "timm")
                                     if k in artifact.provenance)}
    options = table([[esc(k), esc(v)] for k, v in config.items()])
    return (f"<h2>Model and training</h2>{pairs(summary)}<details><summary>Training config (config.yaml)"
            f"</summary>{options}</details>")


def predictions_section(rows: list[list[str]]) -> str:
    header, body = rows[0], rows[1:]
    shown = body[:PREDICTION_ROWS_SHOWN]
    more = f" (the first {len(shown)} of {len(body)})" if len(body) > len(shown) else ""
    return (f"<h2>Per-image predictions</h2><p>Also in <a href=\"predictions.csv\">predictions.csv</a>{more}; "
            "predictions.columns.json names each column's class and the decision rule behind each "
            "<code>prediction</code> column.</p>"
            f"<details><summary>{len(body)} images</summary>"
            f"{table([[esc(c) for c in row] for row in shown], [esc(h) for h in header])}</details>")


def write_report(path: Path, run, artifact, sections: dict[str, dict], figures: dict[str, dict[str, Path]],
                 evaluated: dict, prediction_rows: list[list[str]], n_images: int) -> Path:
    """`sections` and `figures`: per task, its metrics and figures; `evaluated`: data and split scored."""
    info = {"run": str(run.path), "evaluated": f"{evaluated['data']}, split {evaluated['split']}",
            "images": n_images, "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    several = len(sections) > 1
    body = [f"<h1>medclass evaluation: {esc(run.path.name)}</h1>", pairs(info),
            *(task_section(metrics, figures.get(task, {}), several) for task, metrics in sections.items()),
            guard_section(evaluated.get("input_guard")),
            prediction_sets_section(sections, {h.name: list(h.classes) for h in artifact.heads}),
            data_section(run, evaluated, n_images), model_section(run, artifact),
            "<h2>Training curves</h2>" + (figure(run.curves_file, "loss, accuracy and AUC per epoch")
                                          or "<p>none recorded</p>"),
            predictions_section(prediction_rows)]
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>medclass report: {esc(run.path.name)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    Path(path).write_text(page)
    return Path(path)

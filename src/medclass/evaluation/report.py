"""A self-contained HTML report (figures embedded), readable offline and attachable to an email: the run, then a
section per task (summary with bootstrap intervals, a per-class or per-finding table, its figures)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

SINGLE_LABEL_ROWS = [("Accuracy", "accuracy"), ("Balanced accuracy", "balanced_accuracy"), ("F1 macro", "f1_macro"),
                     ("F1 weighted", "f1_weighted"), ("Precision weighted", "precision_weighted"),
                     ("Recall weighted", "recall_weighted")]
MULTILABEL_ROWS = [("ROC-AUC micro", "auc_micro"), ("F1 macro", "f1_macro"), ("F1 micro", "f1_micro"),
                   ("Label accuracy (image-finding pairs)", "label_accuracy"),
                   ("Subset accuracy (every finding right)", "subset_accuracy")]


def _img(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f'<figcaption>{html.escape(alt)}</figcaption></figure>')


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def _ci(bounds) -> str:
    return f" <small>({bounds[0]:.3f}–{bounds[1]:.3f})</small>" if bounds else ""


def _with_ci(metrics: dict, key: str) -> str:
    return _fmt(metrics[key]) + _ci(metrics.get("ci", {}).get(key))


def _rows(cells: list[list[str]], header: list[str]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)
    return f"<table><tr>{head}</tr>{body}</table>"


def task_section(metrics: dict, figures: dict[str, Path], heading: bool) -> str:
    level = int(metrics.get("ci", {}).get("level", 0.95) * 100)
    multilabel = metrics.get("kind") == "multilabel"
    keys = MULTILABEL_ROWS if multilabel else SINGLE_LABEL_ROWS
    summary = [("ROC-AUC (" + metrics["auc_kind"] + ")", _with_ci(metrics, "auc"))]
    summary += [(name, _with_ci(metrics, key)) for name, key in keys if key in metrics]
    summary_html = "".join(f"<tr><th>{html.escape(n)}</th><td>{v}</td></tr>" for n, v in summary)
    if multilabel:
        table = _rows([[html.escape(name), str(m["positives"]), _fmt(m["auc"]) + _ci(m.get("auc_ci")),
                        f"{m['recall']:.3f}", f"{m['specificity']:.3f}", f"{m['precision']:.3f}", f"{m['f1']:.3f}"]
                       for name, m in metrics["per_finding"].items()],
                      ["finding", "positive images", "AUC", "sensitivity", "specificity", "precision", "F1"])
        table_title = "Per finding"
    else:
        table = _rows([[html.escape(name), f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                        _fmt(m["auc_ovr"]), str(m["support"])] for name, m in metrics["per_class"].items()],
                      ["class", "precision", "recall (sensitivity)", "F1", "AUC one-vs-rest", "support"])
        table_title = "Per class"
    unlabelled = metrics.get("unlabelled")
    title = (f"<h2>Task {html.escape(metrics.get('task', ''))} ({html.escape(metrics.get('kind', ''))})</h2>"
             if heading else "<h2>Summary</h2>")
    return f"""{title}
<p>{metrics['n']} images{f' ({unlabelled} more have no label for this task)' if unlabelled else ''}. Decision:
{html.escape(metrics.get('decision', ''))}. Brackets: {level}% percentile bootstrap interval over images
({metrics.get('ci', {}).get('n_boot', 0)} resamples).</p>
<table>{summary_html}</table>
<h3>{table_title}</h3>
{table}
{''.join(_img(p, name) for name, p in figures.items())}
"""


def write_report(sections: dict[str, dict], info: dict, figures: dict[str, dict[str, Path]],
                 run_figures: dict[str, Path], path: Path) -> Path:
    """`sections` and `figures`: per task, its metrics and its figures; `run_figures`: the run's own (curves)."""
    info_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in info.items())
    several = len(sections) > 1
    body = "".join(task_section(metrics, figures.get(task, {}), several) for task, metrics in sections.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medclass report: {html.escape(str(info.get('run', '')))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.7rem; text-align: left; }}
figure {{ display: inline-block; margin: 0.5rem; }} img {{ max-width: 460px; }}
small {{ color: #666; }}
</style></head><body>
<h1>medclass evaluation report</h1>
<table>{info_rows}</table>
{body}
<h2>Training</h2>
{''.join(_img(p, name) for name, p in run_figures.items())}
</body></html>
"""
    path.write_text(page)
    return path

"""A self-contained HTML report (figures embedded), readable offline and attachable to an email."""

from __future__ import annotations

import base64
import html
from pathlib import Path


def _img(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def _with_ci(metrics: dict, key: str) -> str:
    ci = metrics.get("ci", {}).get(key)
    return _fmt(metrics[key]) + (f" <small>({ci[0]:.3f}–{ci[1]:.3f})</small>" if ci else "")


def write_report(metrics: dict, info: dict, figures: dict[str, Path], path: Path) -> Path:
    level = int(metrics.get("ci", {}).get("level", 0.95) * 100)
    summary_rows = "".join(
        f"<tr><th>{name}</th><td>{_with_ci(metrics, key) if key in ('auc', 'accuracy', 'balanced_accuracy') else _fmt(metrics[key])}</td></tr>"
        for name, key in [("ROC-AUC (" + metrics["auc_kind"] + ")", "auc"), ("Accuracy", "accuracy"),
                          ("Balanced accuracy", "balanced_accuracy"), ("F1 macro", "f1_macro"),
                          ("F1 weighted", "f1_weighted"), ("Precision weighted", "precision_weighted"),
                          ("Recall weighted", "recall_weighted")])
    class_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{m['precision']:.3f}</td><td>{m['recall']:.3f}</td>"
        f"<td>{m['f1']:.3f}</td><td>{_fmt(m['auc_ovr'])}</td><td>{m['support']}</td></tr>"
        for name, m in metrics["per_class"].items())
    info_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in info.items())
    body = f"""<!doctype html>
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
<h2>Summary</h2>
<p>{metrics['n']} images. Brackets: {level}% percentile bootstrap interval over images
({metrics.get('ci', {}).get('n_boot', 0)} resamples).</p>
<table>{summary_rows}</table>
<h2>Per class</h2>
<table><tr><th>class</th><th>precision</th><th>recall (sensitivity)</th><th>F1</th><th>AUC one-vs-rest</th><th>support</th></tr>{class_rows}</table>
<h2>Figures</h2>
{''.join(_img(p, name) for name, p in figures.items())}
</body></html>
"""
    path.write_text(body)
    return path

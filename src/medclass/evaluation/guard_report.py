"""What the input guard (inference/guard.py) would have done on the split evaluated: how many images it accepts,
what set the others apart, and whether the images it flags are more often wrong (the question a reviewer asks of
a guard: does it catch the model's mistakes, or only unusual-looking correct answers?).

In metrics.json as `input_guard`, and as a section of report.html.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.stats import binomtest, fisher_exact

from medclass.core.heads import TaskHead


def rate(hits: int, n: int) -> dict:
    """A share with its 95% Clopper-Pearson interval."""
    if n == 0:
        return {"count": 0, "n": 0, "rate": None, "ci": [None, None]}
    ci = binomtest(hits, n).proportion_ci(0.95, method="exact")
    return {"count": int(hits), "n": int(n), "rate": hits / n, "ci": [float(ci.low), float(ci.high)]}


def reason_kind(reason: str) -> str:
    """A reason's kind without its numbers: 'blank or near-constant image', 'knn score', ..."""
    return reason.split(" (")[0].split(" score ")[0].split(" ratio ")[0]


def guard_metrics(answers: list[dict], head: TaskHead, y: np.ndarray, decided: np.ndarray,
                  keep: np.ndarray) -> dict:
    """`answers`: each image's input guard answer; `y`, `decided`: the main task's labels and decisions of the
    labelled images `keep` (single-label tasks; a multilabel main task counts an image wrong when any finding is)."""
    flagged = np.array([a["in_distribution"] is False for a in answers])
    fitted = bool(answers) and answers[0]["fitted"]
    summary = {"fitted": fitted, "images": len(answers), "accepted": rate(int((~flagged).sum()), len(answers)),
               "flagged_by": dict(Counter(reason_kind(r) for a in answers for r in a["reasons"]))}
    if fitted:
        summary |= {"detector": answers[0]["detector"], "threshold": answers[0]["threshold"]}
    wrong = (decided != y[:, 0]) if head.kind != "multilabel" else (decided != y).any(1)
    labelled_flags = flagged[keep]
    summary["error_rate_flagged"] = rate(int(wrong[labelled_flags].sum()), int(labelled_flags.sum()))
    summary["error_rate_accepted"] = rate(int(wrong[~labelled_flags].sum()), int((~labelled_flags).sum()))
    summary["errors_flagged"] = rate(int(labelled_flags[wrong].sum()), int(wrong.sum()))
    if labelled_flags.any() and (~labelled_flags).any():
        table = [[int(wrong[labelled_flags].sum()), int((~wrong[labelled_flags]).sum())],
                 [int(wrong[~labelled_flags].sum()), int((~wrong[~labelled_flags]).sum())]]
        summary["flagged_more_often_wrong_p"] = float(fisher_exact(table, alternative="greater").pvalue)
    return summary


def guard_lines(summary: dict) -> list[tuple[str, str]]:
    """The section's rows as (what, value) text."""
    def share(part: dict) -> str:
        if part["rate"] is None:
            return "none"
        return f"{part['rate']:.1%} ({part['count']}/{part['n']}; 95% CI {part['ci'][0]:.1%}-{part['ci'][1]:.1%})"

    if summary["fitted"]:
        rows = [("detector", f"{summary['detector']}, threshold {summary['threshold']:.4g}")]
    else:
        rows = [("detector", "none fitted (only the cheap input checks ran)")]
    rows += [("images accepted", share(summary["accepted"])),
             ("flagged by", ", ".join(f"{k}: {v}" for k, v in summary["flagged_by"].items()) or "nothing"),
             ("error rate, flagged images", share(summary["error_rate_flagged"])),
             ("error rate, accepted images", share(summary["error_rate_accepted"])),
             ("model errors the guard flags", share(summary["errors_flagged"]))]
    if "flagged_more_often_wrong_p" in summary:
        rows.append(("flagged images more often wrong (Fisher, one-sided)",
                     f"p = {summary['flagged_more_often_wrong_p']:.3g}"))
    return rows

"""`medclass compare RUN_A RUN_B ...`: models side by side on the same test images, with a paired test of each
AUC difference against the first run (DeLong for a binary task, a paired bootstrap for every kind): "DenseNet vs
ResNet" answered with a p-value and an interval, not two numbers from different splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medclass.core.errors import MedclassError
from medclass.evaluation.evaluate import evaluation_data
from medclass.evaluation.metrics import labelled_rows, task_metrics
from medclass.evaluation.paired import compare_auc, delong_test
from medclass.inference.split import predict_split
from medclass.inference.predictor import Predictor
from medclass.core.rundir import RunDir
from medclass.data.run_data import run_dataset

SHOWN = ("auc", "pr_auc", "accuracy", "label_accuracy", "balanced_accuracy", "sensitivity", "specificity",
         "precision_macro", "recall_macro", "f1_macro")
CLASS_NUMBERS = ("precision", "recall", "f1")


def common_tasks(names: list[str], predictors: list[Predictor]) -> list[str]:
    """Tasks every run answers with the same kind and classes (one-task runs: their main task, whatever its name)."""
    first = predictors[0].heads
    if all(len(p.heads) == 1 for p in predictors):
        signature = [(p.heads[0].kind, p.heads[0].classes) for p in predictors]
        if len(set(signature)) > 1:
            raise MedclassError("the runs answer different tasks: " + "; ".join(
                f"{n}: {kind}, {', '.join(classes)}" for n, (kind, classes) in zip(names, signature)))
        return [first[0].name]
    shared = [h.name for h in first if all(any(g.name == h.name and g.kind == h.kind and g.classes == h.classes
                                               for g in p.heads) for p in predictors[1:])]
    if not shared:
        raise MedclassError("the runs share no task (same name, kind and classes) to compare")
    return shared


def shared_dataset(runs: list[RunDir], data: str | None, split: str, reader_options: dict):
    """One dataset all runs are scored on: --data, or the runs' own split, which must hold the same images."""
    if data is not None:
        return evaluation_data(runs[0], data, split, reader_options)
    datasets = [run_dataset(run, split) for run in runs]
    sources = [sorted(s.source for s in d.samples) for d in datasets]
    for run, own in zip(runs[1:], sources[1:]):
        if own != sources[0]:
            only_a, only_b = len(set(sources[0]) - set(own)), len(set(own) - set(sources[0]))
            raise MedclassError(f"{runs[0]} and {run} have different {split} images ({only_a} only in the first, "
                                f"{only_b} only in the second): train them with one --splits file (medclass split), "
                                "or compare on --data")
    return datasets[0]


def compare_runs(run_dirs: list[str | Path], data: str | None = None, split: str = "test",
                 reader_options: dict | None = None, n_boot: int = 2000, seed: int = 0,
                 out: str | Path | None = None) -> dict:
    """Every run's metrics with intervals on one image set (per class precision, recall, F1 and support too), and
    the paired AUC tests of each run against the first. With `out`: comparison.json, comparison.csv,
    comparison.md and figures there (evaluation/compare_files.py)."""
    if len(run_dirs) < 2:
        raise MedclassError("compare needs at least two runs")
    runs = [RunDir(r).check() for r in run_dirs]
    resolved = [r.path.resolve() for r in runs]
    if len(set(resolved)) < len(resolved):
        raise MedclassError(f"compare: a run is given twice ({', '.join(map(str, run_dirs))})")
    names = [str(r) for r in runs]
    predictors = [Predictor(r.artifact()) for r in runs]
    tasks = common_tasks(names, predictors)
    dataset = shared_dataset(runs, data, split, reader_options or {})
    outputs = [predict_split(p, dataset) for p in predictors]
    run_probas = [o.probabilities() for o in outputs]
    result = {"runs": names, "split": split, "data": data or "the runs' own split", "images": len(dataset),
              "tasks": {}}
    scores = {}  # task -> (truth, each run's probabilities, the first run's head), for the figures
    for task in tasks:
        # each run's head for this task (one-task runs may name it differently)
        heads = [p.heads[0] if len(tasks) == 1 and len(p.heads) == 1 else next(h for h in p.heads if h.name == task)
                 for p in predictors]
        y = outputs[0].targets[heads[0].name]
        keep = labelled_rows(y)
        y = y[keep]
        truth = y if heads[0].kind == "multilabel" else y[:, 0]
        patients = outputs[0].patients
        groups = patients[keep] if patients is not None else None
        probas = [p[h.name][keep] for p, h in zip(run_probas, heads)]
        scored = [task_metrics(h.kind, truth, p, h.decide(p), list(h.classes), h.positive_index, h.ordinal,
                               n_boot=n_boot, seed=seed, groups=groups) for h, p in zip(heads, probas)]
        scores[task] = (truth, probas, heads[0])
        result["tasks"][task] = {
            "kind": heads[0].kind, "n": int(keep.sum()), "classes": list(heads[0].classes),
            "runs": {n: {k: m[k] for k in SHOWN if k in m} | {"auc_ci": m["ci"]["auc"], "per_class": class_numbers(m)}
                     for n, m in zip(names, scored)},
            "versus_first": {n: compare_auc(truth, probas[0], p, heads[0].kind, heads[0].positive_index, n_boot,
                                            seed, groups) | per_class_delong(heads[0], truth, probas[0], p)
                             for n, p in zip(names[1:], probas[1:])}}
    if out:
        from medclass.evaluation.compare_files import write_comparison

        result["files"] = write_comparison(result, scores, Path(out), short_names(names))
    return result


def class_numbers(metrics: dict) -> dict[str, dict]:
    """Per class (per finding) precision, recall, F1 and support (a finding's positive images)."""
    table = metrics.get("per_class") or metrics["per_finding"]
    return {c: {k: m[k] for k in CLASS_NUMBERS} | {"support": m.get("support", m.get("positives"))}
            for c, m in table.items()}


def per_class_delong(head, y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray) -> dict:
    """Multiclass: DeLong on each class's one-vs-rest AUC (e.g. malignant vs the rest), beside the macro test."""
    if head.kind != "multiclass":
        return {}
    return {"delong_per_class": {c: delong_test(y == i, proba_a[:, i], proba_b[:, i])
                                 for i, c in enumerate(head.classes) if 0 < np.sum(y == i) < len(y)}}


def short_names(runs: list[str]) -> dict[str, str]:
    """Each run by its folder name, or its path where two folders share a name."""
    names = [Path(r).name for r in runs]
    return {r: n if names.count(n) == 1 else r for r, n in zip(runs, names)}


def comparison_lines(result: dict) -> list[str]:
    short = short_names(result["runs"])
    lines = [f"{len(result['runs'])} runs on the same {result['images']} images ({result['data']}, split "
             f"{result['split']}):"] + [f"  {n}: {r}" for r, n in short.items()]
    width = max(len(n) for n in short.values())
    first = short[result["runs"][0]]
    for task, info in result["tasks"].items():
        kind = info["kind"]
        lines += ["", f"task {task} ({kind}, {info['n']} labelled images)",
                  f"  {'run':<{width}}  {'AUC':>6}  95% CI       {'ACC':>6}"]
        for run, m in info["runs"].items():
            ci = m["auc_ci"] or [float("nan")] * 2
            accuracy = m["accuracy"] if "accuracy" in m else m["label_accuracy"]
            lines.append(f"  {short[run]:<{width}}  {m['auc']:6.4f}  {ci[0]:.3f}-{ci[1]:.3f}  {accuracy:6.4f}")
        lines += per_class_lines(info, short)
        overall = {"binary": "AUC", "multiclass": "macro AUC", "multilabel": "macro AUC over findings"}[kind]
        for run, tests in info["versus_first"].items():
            lines.append(f"  {short[run]} vs {first} (difference {short[run]} - {first}, paired on the same images):")
            rows = [(overall, t) for key, t in tests.items() if key != "delong_per_class"]
            rows += [(f"class {c} one-vs-rest AUC", t) for c, t in tests.get("delong_per_class", {}).items()]
            label_width = max(len(label) for label, _ in rows)
            for label, t in rows:
                lo, hi = t["ci"]
                lines.append(f"    {label:<{label_width}}  {t['difference']:+.4f} (95% CI {lo:+.3f} to {hi:+.3f})  "
                             f"p = {t['p_value']:.3f}  {t['method']}")
    return lines


def per_class_lines(info: dict, short: dict[str, str], name_width: int = 28) -> list[str]:
    """Precision, recall and F1 per class (per finding), the runs side by side."""
    runs = list(info["runs"])
    names = list(info["runs"][runs[0]]["per_class"])
    width = min(name_width, max(len(n) for n in names + ["class"]))
    group = max(20, *(len(short[r]) for r in runs))
    lines = ["", f"  {'':<{width}}  " + "  ".join(f"{short[r]:^{group}}" for r in runs),
             f"  {'class':<{width}}  " + "  ".join(f"{'P':>6} {'R':>6} {'F1':>6}".center(group) for _ in runs)]
    for name in names:
        cut = name if len(name) <= width else name[:width - 1] + "…"
        cells = ["{precision:6.3f} {recall:6.3f} {f1:6.3f}".format(**info["runs"][r]["per_class"][name]).center(group)
                 for r in runs]
        lines.append(f"  {cut:<{width}}  " + "  ".join(cells))
    if "f1_macro" in info["runs"][runs[0]]:
        cells = [f"{m['precision_macro']:6.3f} {m['recall_macro']:6.3f} {m['f1_macro']:6.3f}".center(group)
                 for m in info["runs"].values()]
        lines.append(f"  {'macro avg':<{width}}  " + "  ".join(cells))
    return lines + [""]

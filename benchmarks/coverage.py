"""Conformal prediction sets (evaluation/conformal.py) on the official test splits of BreastMNIST, PneumoniaMNIST and
RetinaMNIST: does the empirical coverage reach the 0.9 target where calibration happened on validation?

Each dataset: one short run of medclass's default recipe (28 px, smallcnn, seed 0, `--epochs`, default
`--coverage 0.9`: temperature no-sharpening, cross-conformal APS sets on the validation split, Mondrian when its
classes are imbalanced), trained by `medclass.training.train` on the official npz. The test split is predicted
once; on it:
- **stored**: the sets the run stored (what predict and serve answer with);
- **other kind**: the same calibration with the other choice of marginal / Mondrian;
- **reference, one label**: the model's single most probable class as a set of one, whose coverage is its accuracy.

Coverage: the share of test images whose set holds their class, with its exact (Clopper-Pearson) 95% interval.
"0.9 range": where the coverage of n test images falls 95% of the time under sets that cover exactly 0.9
(binomial); conformal sets cover at least the target when test images are exchangeable with validation, so
**within** or **above** is what the guarantee promises, **below** says the test split is not like validation. The
last column is the validation -> test AUC gap with its bootstrap interval (evaluation/transfer.py), "shift" when
test scores below validation beyond chance (PneumoniaMNIST's known shift).

    python benchmarks/coverage.py [--datasets breastmnist,pneumoniamnist,retinamnist] [--epochs 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import data_roots, find_npz, out_dir
from medclass.core.rundir import RunDir
from medclass.data.run_data import run_dataset
from medclass.evaluation.conformal import fit_sets, recorded_temperature_rule
from medclass.evaluation.metrics import labelled_rows
from medclass.evaluation.set_metrics import coverage_text, expected_range, set_metrics, share, verdict
from medclass.evaluation.transfer import validation_gap
from medclass.inference.predictor import Predictor
from medclass.inference.split import predict_split
from medclass.training import TrainConfig, train

DATASETS = ("breastmnist", "pneumoniamnist", "retinamnist")
COVERAGE = 0.9


def train_run(npz: Path, out: Path, epochs: int) -> tuple[Path, float]:
    start = time.time()
    train(TrainConfig(data=str(npz), out=str(out), epochs=epochs, patience=epochs, seed=0, audit=False,
                      coverage=COVERAGE))
    return out, time.time() - start


def labelled(outputs, head):
    """Logits, labels, probabilities and patients (or None) of the images labelled for `head`."""
    y = outputs.targets[head.name]
    keep = labelled_rows(y)
    groups = outputs.patients[keep] if outputs.patients is not None else None
    return outputs.head_logits(head.name)[:, keep], y[keep], outputs.probabilities([head])[head.name][keep], groups


def measure(name: str, run: Path) -> list[dict]:
    """The table's rows of one dataset: stored sets, the other kind, the one-label reference."""
    predictor = Predictor.from_run(run)
    head = predictor.heads[0]
    val = predict_split(predictor, run_dataset(RunDir(run), "val"))
    test = predict_split(predictor, run_dataset(RunDir(run), "test"))
    val_logits, val_y, _, val_groups = labelled(val, head)
    _, test_y, test_p, _ = labelled(test, head)
    gap = validation_gap(head, val, test_y, test_p, n_boot=500, seed=0)
    stored = head.prediction_sets
    rule = recorded_temperature_rule(RunDir(run), "no-sharpening")  # as training calibrated the stored sets
    other, _ = fit_sets(head, val_logits, val_y, COVERAGE, rule=rule, groups=val_groups, by_class=not stored.by_class)
    rows = []
    for label, candidate in (("stored", head), ("other kind", other)):
        metrics = set_metrics(candidate, test_y, test_p)
        kind = "Mondrian" if candidate.prediction_sets.by_class else "marginal"
        rows.append({"dataset": name, "sets": f"{label}: {kind} APS", "val": int(len(val_y)), **metrics,
                     "method": candidate.prediction_sets.method, "gap": gap})
    hits = int((test_p.argmax(1) == test_y[:, 0]).sum())
    top = share(hits, len(test_y))
    per_class = {c: share(int(((test_p.argmax(1) == i) & (test_y[:, 0] == i)).sum()), int((test_y[:, 0] == i).sum()))
                 for i, c in enumerate(head.classes)}
    bounds = expected_range(COVERAGE, len(test_y))
    rows.append({"dataset": name, "sets": "reference: one label", "val": int(len(val_y)), "n": int(len(test_y)),
                 "target": COVERAGE, "coverage": top, "expected_range": bounds, "verdict": verdict(top["rate"], bounds),
                 "mean_size": 1.0, "singletons": 1.0, "per_class": per_class, "gap": gap})
    return rows


def gap_text(gap: dict | None) -> str:
    if not gap:
        return "–"
    low, high = gap["auc_gap_ci"] or (float("nan"), float("nan"))
    return f"{gap['auc_gap']:+.3f} ({low:+.3f} to {high:+.3f}){' shift' if gap['shifted'] else ''}"


def table(rows: list[dict]) -> str:
    lines = ["| dataset | sets | val images | test n | test coverage (95% CI) | 0.9 range | verdict | mean size | "
             "one-class | coverage per class | val->test AUC gap |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        low, high = r["expected_range"]
        per_class = ", ".join(f"{c} {b['rate']:.2f} ({b['n']})" for c, b in r["per_class"].items() if b["n"])
        lines.append(f"| {r['dataset']} | {r['sets']} | {r['val']} | {r['n']} | {coverage_text(r['coverage'])} | "
                     f"{low:.3f}-{high:.3f} | {r['verdict']} | {r['mean_size']:.2f} | {r['singletons']:.2f} | "
                     f"{per_class} | {gap_text(r['gap'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    found = {name: find_npz(name) for name in args.datasets.split(",")}
    missing = [name for name, path in found.items() if path is None]
    if len(missing) == len(found):
        return f"coverage: skipped ({', '.join(missing)} not found in {', '.join(map(str, data_roots()))})"
    out = args.out or out_dir("runs/bench", "coverage")
    start, rows, minutes = time.time(), [], {}
    for name, npz in found.items():
        if npz is None:
            continue
        run, seconds = train_run(npz, out / name, args.epochs)
        minutes[name] = seconds / 60
        rows += measure(name, run)
        print(f"coverage: {name} done at {(time.time() - start) / 60:.1f} min", flush=True)
    methods = "; ".join(f"{r['dataset']}: {r['method']}" for r in rows if r["sets"].startswith("stored"))
    text = (f"Conformal prediction sets at coverage {COVERAGE} on the official test splits (`python "
            f"benchmarks/coverage.py`, {args.epochs} epochs of the default recipe, seed 0; training "
            + ", ".join(f"{n} {m:.1f} min" for n, m in minutes.items()) + " on this machine):\n" + table(rows)
            + f"\n\nCalibration: {methods}."
            + (f"\nskipped (not found): {', '.join(missing)}" if missing else ""))
    (out / "coverage.md").write_text(text + "\n")
    (out / "coverage.json").write_text(json.dumps(rows, indent=2, default=float))
    return text


if __name__ == "__main__":
    print(main())

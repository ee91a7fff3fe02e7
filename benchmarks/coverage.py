"""Conformal prediction sets (evaluation/conformal.py) on the official test splits of BreastMNIST, PneumoniaMNIST and
RetinaMNIST: does the empirical coverage reach the 0.9 target where calibration happened on validation?

Each dataset: one short run of medclass's default recipe (28 px, smallcnn, seed 0, `--epochs`, default
`--coverage 0.9`: temperature no-sharpening, cross-conformal APS sets on the validation split, Mondrian when its
classes are imbalanced), trained by `medclass.training.train` on the official npz. The test split is predicted
once; on it:
- **stored**: the sets the run stored (what predict and serve answer with);
- **other kind**: the same calibration with the other choice of marginal / Mondrian;
- **fitted T, cross-conformal**: the stored kind, at the temperature `--temperature-rule fitted` would choose on
  validation (the NLL minimum, sharpening allowed), calibrated cross-conformally on 5 validation folds: the path a
  calibrated head takes (the default rule, no-sharpening, keeps temperature 1 where the fitted one is below 1, and
  such a head is split conformal);
- **reference, one label**: the model's single most probable class as a set of one, whose coverage is its accuracy.

Coverage: the share of test images whose set holds their class, with its exact (Clopper-Pearson) 95% interval.
"0.9 range": where the coverage of n test images falls 95% of the time under sets that cover exactly 0.9
(binomial); conformal sets cover at least the target when test images are exchangeable with validation, so
**within** or **above** is what the guarantee promises, **below** says the test split is not like validation. The
`q`: the stored quantile(s), per class for Mondrian (inf: too few validation images of the class, which is then
in every set). A quantile of 0 means the model's top class alone was right often enough on validation: every set
is then that one class and the coverage is the test accuracy (the non-randomised APS cannot cover less). The
last column is the validation -> test AUC gap with its bootstrap interval (evaluation/transfer.py), "shift" when
test scores below validation beyond chance (PneumoniaMNIST's known shift).

    python benchmarks/coverage.py [--datasets breastmnist,pneumoniamnist,retinamnist] [--epochs 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from common import data_roots, find_npz, out_dir
from medclass.core.heads import view_probabilities
from medclass.core.rundir import RunDir
from medclass.data.run_data import run_dataset
from medclass.evaluation.calibration import fit_temperature
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


def cross_conformal(head, val_logits, val_y, val_groups, test_logits, test_y) -> tuple:
    """`head` at the validation NLL's temperature, its sets cross-conformal; its test metrics."""
    fitted = replace(head, temperature=fit_temperature(replace(head, temperature=1.0), val_logits, val_y))
    fitted, _ = fit_sets(fitted, val_logits, val_y, COVERAGE, rule="fitted", groups=val_groups,
                         by_class=head.prediction_sets.by_class)
    return fitted, set_metrics(fitted, test_y, view_probabilities([fitted], test_logits))


def measure(name: str, run: Path) -> list[dict]:
    """The table's rows of one dataset: stored sets, the other kind, fitted temperature cross-conformal, the
    one-label reference."""
    predictor = Predictor.from_run(run)
    head = predictor.heads[0]
    val = predict_split(predictor, run_dataset(RunDir(run), "val"))
    test = predict_split(predictor, run_dataset(RunDir(run), "test"))
    val_logits, val_y, _, val_groups = labelled(val, head)
    test_logits, test_y, test_p, _ = labelled(test, head)
    gap = validation_gap(head, val, test_y, test_p, n_boot=500, seed=0)
    stored = head.prediction_sets
    rule = recorded_temperature_rule(RunDir(run), "no-sharpening")  # as training calibrated the stored sets
    other, _ = fit_sets(head, val_logits, val_y, COVERAGE, rule=rule, groups=val_groups, by_class=not stored.by_class)
    fitted, fitted_metrics = cross_conformal(head, val_logits, val_y, val_groups, test_logits, test_y)
    rows = []
    for label, candidate, metrics in (("stored", head, set_metrics(head, test_y, test_p)),
                                      ("other kind", other, set_metrics(other, test_y, test_p)),
                                      (f"fitted T {fitted.temperature:.3g}, cross-conformal", fitted, fitted_metrics)):
        kind = "Mondrian" if candidate.prediction_sets.by_class else "marginal"
        rows.append({"dataset": name, "sets": f"{label}: {kind} APS", "val": int(len(val_y)), **metrics,
                     "q": candidate.prediction_sets.quantiles, "method": candidate.prediction_sets.method,
                     "gap": gap})
    hits = int((test_p.argmax(1) == test_y[:, 0]).sum())
    top = share(hits, len(test_y))
    per_class = {c: share(int(((test_p.argmax(1) == i) & (test_y[:, 0] == i)).sum()), int((test_y[:, 0] == i).sum()))
                 for i, c in enumerate(head.classes)}
    bounds = expected_range(COVERAGE, len(test_y))
    rows.append({"dataset": name, "sets": "reference: one label", "val": int(len(val_y)), "n": int(len(test_y)),
                 "target": COVERAGE, "coverage": top, "expected_range": bounds, "verdict": verdict(top["rate"], bounds),
                 "mean_size": 1.0, "singletons": 1.0, "per_class": per_class, "q": (), "gap": gap})
    return rows


def gap_text(gap: dict | None) -> str:
    if not gap:
        return "–"
    low, high = gap["auc_gap_ci"] or (float("nan"), float("nan"))
    return f"{gap['auc_gap']:+.3f} ({low:+.3f} to {high:+.3f}){' shift' if gap['shifted'] else ''}"


def table(rows: list[dict]) -> str:
    lines = ["| dataset | sets | q | val images | test n | test coverage (95% CI) | 0.9 range | verdict | mean size | "
             "one-class | coverage per class | val->test AUC gap |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        low, high = r["expected_range"]
        per_class = ", ".join(f"{c} {b['rate']:.2f} ({b['n']})" for c, b in r["per_class"].items() if b["n"])
        quantiles = ", ".join(f"{q:.2f}" for q in r["q"]) or "–"
        lines.append(f"| {r['dataset']} | {r['sets']} | {quantiles} | {r['val']} | {r['n']} | "
                     f"{coverage_text(r['coverage'])} | "
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
    methods = "; ".join(f"{r['dataset']} {r['sets'].split(':')[0]}: {r['method']}" for r in rows
                        if r.get("method") and not r["sets"].startswith("other"))
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

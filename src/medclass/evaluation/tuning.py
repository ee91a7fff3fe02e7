"""After training, and whenever `medclass threshold` asks: calibrate and choose operating points on the run's
validation split, write them into the artefact and record what was chosen, how, and how it scored there
(RUN/calibration.json). Retraining is never needed, and the test split is never looked at."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from medclass.data import ImageDataset
from medclass.core.errors import MedclassError
from medclass.evaluation.calibration import calibrated, calibration_report
from medclass.evaluation.conformal import check_set_request, recorded_temperature_rule, set_summary_lines, tuned_sets
from medclass.evaluation.metrics import labelled_rows
from medclass.evaluation.operating_point import (ThresholdRule, check_rule_applies, operating_characteristics,
                                                  tune_head)
from medclass.inference.split import SplitOutputs, predict_split
from medclass.core.artifact import ModelArtifact
from medclass.core.heads import view_probabilities
from medclass.core.rundir import RunDir
from medclass.data.run_data import run_dataset

SPLIT = "val"


def tune_run(run: RunDir, rule: ThresholdRule | str | None = None, calibrate: bool | None = None,
             tasks: list[str] | None = None, val_data: ImageDataset | None = None, device: str = "cpu",
             source: str = SPLIT, temperature_rule: str = "no-sharpening", coverage: float | None = None,
             set_options: dict | None = None) -> dict:
    """Fit temperatures (`calibrate`) and/or choose thresholds by `rule` for `tasks` (default: every task a rule
    applies to; multiclass tasks keep the argmax) on the validation split; save the artefact; return the record.

    calibrate None/False keeps the stored temperatures; rule None keeps the stored thresholds. Thresholds are
    chosen after calibrating, on the calibrated probabilities they will be applied to. (A new temperature leaves the
    0.5 decisions unchanged, but moves any other threshold: retune after recalibrating.)

    `val_data` replaces the validation split, named `source` in the record: labelled images from the place the
    model will serve, when they differ from the training images (evaluation/transfer.py).

    `coverage`: conformal prediction sets made at this coverage (0: none; None: the stored ones kept), with
    `set_options` (by_class, score; evaluation/conformal.py)."""
    from medclass.inference.predictor import Predictor

    run = RunDir(run)
    rule = ThresholdRule.parse(rule) if isinstance(rule, str) else rule
    artifact = run.artifact()
    names = [h.name for h in artifact.heads]
    unknown = [t for t in tasks or [] if t not in names]
    if unknown:
        raise MedclassError(f"{run}: the model has no task {', '.join(map(repr, unknown))}; its tasks: "
                            f"{', '.join(names)}")
    if rule is not None:
        check_rule_applies(rule, artifact.heads, tasks, f"{run}: ")
    check_set_request(coverage, (set_options or {}).get("score"))
    if not calibrate:  # the sets' fold temperatures are refitted by the rule that chose the stored ones
        temperature_rule = recorded_temperature_rule(run, temperature_rule)
    dataset = val_data if val_data is not None else run_dataset(run, SPLIT)
    outputs = predict_split(Predictor(artifact, device=device), dataset)
    record = tune_artifact(artifact, outputs, rule, calibrate, tasks, source, temperature_rule, coverage, set_options)
    save_tuned(run, artifact, record)
    return record


def tune_artifact(artifact: ModelArtifact, outputs: SplitOutputs, rule: ThresholdRule | str | None = None,
                  calibrate: bool | None = None, tasks: list[str] | None = None, source: str = SPLIT,
                  temperature_rule: str = "no-sharpening", coverage: float | None = None,
                  set_options: dict | None = None) -> dict:
    """`artifact`'s heads calibrated and thresholded as tune_run says, on `outputs` (the artefact's predictions of
    the images to choose on); returns the record. Nothing is written: training tunes the artefact it has just
    built, on the validation predictions it already has, and saves it once (training/tuning.py)."""
    rule = ThresholdRule.parse(rule) if isinstance(rule, str) else rule
    heads, record = [], {}
    for head in artifact.heads:
        y = outputs.targets[head.name]
        keep = labelled_rows(y)
        logits, y = outputs.head_logits(head.name)[:, keep], y[keep]
        chosen = tasks is None or head.name in tasks
        chosen_by = None
        if calibrate and chosen:
            head, chosen_by = calibrated(head, logits, y, temperature_rule)
        proba = view_probabilities([head], logits)  # with the head's (new) temperature
        if chosen and rule is not None and head.kind != "multiclass":
            head = tune_head(head, y, proba, rule, source)
        groups = outputs.patients[keep] if outputs.patients is not None else None
        head, sets = tuned_sets(head, logits, y, coverage if chosen else None, rule=temperature_rule, groups=groups,
                                calibrated_now=bool(calibrate and chosen), source=source, **(set_options or {}))
        heads.append(head)
        record[head.name] = {"kind": head.kind, "images": int(len(y)), "threshold_source": head.threshold_source,
                             "calibration": calibration_report(head, logits, y) | (
                                 {"chosen_by": chosen_by} if chosen_by else {})}
        if head.kind != "multiclass":
            record[head.name]["operating_point"] = operating_characteristics(head, y, proba)
        if sets:
            record[head.name]["prediction_sets"] = sets
    artifact.heads = heads
    return {"split": source, "rule": str(rule) if rule else None, "calibrated_now": bool(calibrate),
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tasks": record}


def save_tuned(run: RunDir, artifact: ModelArtifact, record: dict) -> Path:
    """The tuned artefact into the run, and the record of its tuning beside it (RUN/calibration.json)."""
    path = artifact.save(run.artifact_file)
    run.calibration_file.write_text(json.dumps(record, indent=2))
    return path


def tuning_summary(record: dict) -> list[str]:
    """One line per task: its temperature with the validation ECE before and after, and its operating point."""
    lines = []
    where = "val " if record["split"] == SPLIT else f"{record['split']}: "
    for task, info in record["tasks"].items():
        cal = info["calibration"]
        line = (f"task {task}: temperature {cal['temperature']:.3g} ({where}ECE {cal['uncalibrated']['ece']:.3f} -> "
                f"{cal['calibrated']['ece']:.3f}, Brier {cal['uncalibrated']['brier']:.3f} -> "
                f"{cal['calibrated']['brier']:.3f})")
        chosen_by = cal.get("chosen_by", {})
        if chosen_by and chosen_by["rule"] != "fitted" and chosen_by["fitted"] != cal["temperature"]:
            line += f" [{chosen_by['rule']}: instead of the fitted {chosen_by['fitted']:.3g}]"
        point = info.get("operating_point")
        if point and "sensitivity" in point:
            line += (f"; threshold {point['threshold']:.4g}: {where}sensitivity {point['sensitivity']:.3f}, "
                     f"specificity {point['specificity']:.3f} ({info['threshold_source']})")
        elif point:
            line += f"; thresholds per finding ({info['threshold_source']})"
        lines.append(line)
    return lines + set_summary_lines(record)

"""int8 ONNX models, and what quantisation costs in accuracy.

Static QDQ quantisation (weights per channel to int8, activations to uint8, their ranges calibrated on the run's
own validation images, seen through the model's preprocessing) rather than dynamic: the networks here are
convolutional, and dynamic quantisation only converts weights ahead of time and measures activations on every call,
which speeds up MatMul-heavy transformers but leaves convolutions slow (ConvInteger). Dynamic is the fallback when
static calibration fails on a graph. The change is reported on the test split where the run has one (the
calibration images come from validation), else on validation: both models' AUC and accuracy per task, the largest
and mean probability change and the share of images whose decision changed.

The run's data and the evaluation code are imported inside `quantize_int8`: looking the backend registry up
imports every module of medclass.export, this one too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medclass.core.errors import MedclassError
from medclass.export.common import INPUT_NAME, guard_file, quiet

if TYPE_CHECKING:
    from medclass.core.rundir import RunDir

INT8_FILE = "model.int8.onnx"  # in the run folder, beside model.onnx
INT8_REPORT = "model.int8.json"


class ImageReader:
    """Calibration batches for onnxruntime.quantization: preprocessed images, as the model will see them."""

    def __init__(self, predictor, images, batch_size: int = 16):
        self.batches = iter([predictor.preprocess(images[i:i + batch_size]).numpy()
                             for i in range(0, len(images), batch_size)])

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_onnx(fp32: Path, out: Path, calibration: ImageReader) -> str:
    """Write the int8 model; returns how it was quantised."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    metadata = {p.key: p.value for p in onnx.load(str(fp32), load_external_data=False).metadata_props}
    prepared = out.with_name(out.name + ".prepared")
    try:
        with quiet():
            # constants folded into initializers, shapes inferred: without it the exporters' biases stay outside
            # the quantised convolutions, which then never fuse into QLinearConv and run slower than fp32
            quant_pre_process(str(fp32), str(prepared))
    except Exception:  # pre-processing is an optimisation; quantisation still works on the graph as exported
        shutil.copy(fp32, prepared)
    try:
        with quiet():
            # uint8 activations with int8 weights (U8S8): ONNX Runtime's fast x86 kernels; S8S8 ran 3x slower here
            quantize_static(str(prepared), str(out), calibration, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        method = "static QDQ: per-channel int8 weights, uint8 activations (MinMax calibration)"
    except Exception as exc:  # onnxruntime.quantization raises many types for graphs it cannot calibrate
        with quiet():
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8)
        method = f"dynamic int8 weights (static calibration failed: {exc.__class__.__name__})"
    finally:
        prepared.unlink(missing_ok=True)
    proto = onnx.load(str(out))  # quantisation may drop metadata_props: the int8 file must predict alone as well
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, metadata | {"medclass_quantization": method})
    onnx.save(proto, str(out))
    # the int8 graph keeps both outputs (logits, features); the guard's tensors go beside it as beside the fp32 one
    guard_file(out).unlink(missing_ok=True)
    if guard_file(fp32).is_file():
        shutil.copy(guard_file(fp32), guard_file(out))
    return method


def evaluation_split(run: RunDir, data):
    """The part of the run's data (already opened) that int8 is measured on: test, else val."""
    for split in ("test", "val"):
        if len(part := data.subset(split)):
            return split, part
    raise MedclassError(f"{run.splits_file}: the run has neither test nor val images to measure int8 on")


def quantize_int8(run_dir: str | Path, fp32: str | Path | None = None, out: str | Path | None = None,
                 calibration_images: int = 128, seed: int = 0) -> dict:
    """Quantise the run's exported model (default RUN/model.onnx) to int8 (default RUN/model.int8.onnx) and
    measure the change; the report is also written to RUN/model.int8.json (beside `out` when given)."""
    from medclass.core.rundir import RunDir
    from medclass.data.run_data import run_dataset
    from medclass.evaluation.metrics import task_scores
    from medclass.inference.backends import BACKENDS
    from medclass.inference.loading import load_predictor
    from medclass.inference.split import DatasetImages, predict_split

    run = RunDir(run_dir)
    # the registry, not medclass.export.onnx: that module imports this one (export_onnx(int8=True))
    fp32 = Path(fp32) if fp32 else run.exported_file(BACKENDS.get("onnx").run_file)
    out = Path(out) if out else run.path / INT8_FILE
    fp32_predictor = load_predictor(fp32, backend="onnx")
    data = run_dataset(run)  # opened once: calibration takes val images, the measurement test (else val)
    val = data.subset("val")
    if not len(val):
        raise MedclassError(f"{run.splits_file}: the run has no 'val' images to calibrate int8 on")
    pick = np.sort(np.random.default_rng(seed).permutation(len(val))[:calibration_images])
    images = DatasetImages(val)
    method = quantize_onnx(fp32, out, ImageReader(fp32_predictor, [images[int(i)] for i in pick]))
    split, dataset = evaluation_split(run, data)
    outputs = {"fp32": predict_split(fp32_predictor, dataset),
               "int8": predict_split(load_predictor(out, backend="onnx"), dataset)}
    proba = {name: o.probabilities() for name, o in outputs.items()}
    heads = outputs["fp32"].heads
    change = np.concatenate([np.abs(proba["fp32"][h.name] - proba["int8"][h.name]).ravel() for h in heads])
    changed = {h.name: float(np.mean(np.any((h.decide(proba["fp32"][h.name]) != h.decide(proba["int8"][h.name]))
                                            .reshape(len(dataset), -1), axis=1))) for h in heads}
    report = {"method": method, "calibration": {"split": "val", "images": len(pick)},
              "evaluated_on": {"split": split, "images": len(dataset)},
              "fp32": task_scores(heads, outputs["fp32"].targets, proba["fp32"]),
              "int8": task_scores(heads, outputs["int8"].targets, proba["int8"]),
              "max_abs_prob_change": float(change.max()), "mean_abs_prob_change": float(change.mean()),
              "changed_decisions": changed,
              "megabytes": {"fp32": fp32.stat().st_size / 2 ** 20, "int8": out.stat().st_size / 2 ** 20},
              "files": {"fp32": str(fp32), "int8": str(out)}}
    report_file = run.path / INT8_REPORT if out == run.path / INT8_FILE else out.with_suffix(".json")
    report_file.write_text(json.dumps(report, indent=2))
    report["report_file"] = str(report_file)
    return report


def report_lines(report: dict) -> list[str]:
    lines = [f"int8: {report['method']}",
             f"measured on {report['evaluated_on']['split']} ({report['evaluated_on']['images']} images; calibrated "
             f"on {report['calibration']['images']} val images)"]
    for task, fp32 in report["fp32"].items():
        int8 = report["int8"][task]
        lines.append(f"  {task}: AUC {fp32['auc']:.4f} -> {int8['auc']:.4f}, accuracy {fp32['accuracy']:.4f} -> "
                     f"{int8['accuracy']:.4f}, decisions changed {report['changed_decisions'][task]:.1%}")
    lines.append(f"  probability change: max {report['max_abs_prob_change']:.3g}, mean "
                 f"{report['mean_abs_prob_change']:.3g}; size {report['megabytes']['fp32']:.1f} MB -> "
                 f"{report['megabytes']['int8']:.1f} MB")
    return lines

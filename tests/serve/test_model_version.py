"""A served model's version is a hash of what answers (the weights or the exported network, and the metadata that
changes an answer), not of the file's bytes: the same model saved again keeps it, a changed threshold changes it."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import torch

from medclass.inference import ModelArtifact, load_predictor
from medclass.models import create_model
from medclass.serve.models import load_model
from medclass.core.preprocessing import Preprocessing


def saved_run(tmp_path):
    torch.manual_seed(0)
    model = create_model("smallcnn", 2, 1, width=4)
    artifact = ModelArtifact.single_task("smallcnn", ["benign", "malignant"], Preprocessing(16, 1, (0.5,), (0.5,)),
                                         model.state_dict(), threshold=0.4, model_kwargs={"width": 4},
                                         provenance={"data": "x"})
    run = tmp_path / "run"
    run.mkdir()
    artifact.save(run)
    return run


def resaved(run, **head_changes) -> None:
    """What `medclass threshold` does: load the artefact, set its heads, save it again."""
    artifact = ModelArtifact.load(run)
    artifact.heads = [replace(h, **head_changes) for h in artifact.heads]
    artifact.save(run)


def test_a_no_op_resave_keeps_the_version_and_a_changed_threshold_changes_it(tmp_path):
    run = saved_run(tmp_path)
    version = load_model("m", run).version
    files = set()
    for _ in range(8):  # the safetensors header's key order changes from one save to the next
        resaved(run)
        files.add(hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest())
        assert load_model("m", run).version == version
    assert len(files) > 1  # the bytes did change: the version is not the file's hash
    artifact = ModelArtifact.load(run)
    artifact.provenance, artifact.description = {"data": "elsewhere"}, "same model, other words"
    artifact.save(run)
    assert load_model("m", run).version == version  # what does not answer is not versioned
    assert load_model("m", load_predictor(run)).version == version  # in memory: the same model, the same version
    for change in ({"threshold": 0.6}, {"temperature": 2.0}):
        resaved(run, **change)
        assert load_model("m", run).version != version
        version = load_model("m", run).version
    artifact = ModelArtifact.load(run)
    artifact.state_dict["fc.bias"] += 1
    artifact.save(run)
    assert load_model("m", run).version != version


def test_an_onnx_export_is_versioned_by_its_network_and_metadata(tmp_path):
    from medclass.export.onnx import export_onnx

    run = saved_run(tmp_path)
    export_onnx(run)
    version = load_model("m", run, backend="onnx").version
    resaved(run)
    export_onnx(run)  # exported again from the same model
    assert load_model("m", run, backend="onnx").version == version
    resaved(run, threshold=0.6)
    export_onnx(run)
    assert load_model("m", run, backend="onnx").version != version

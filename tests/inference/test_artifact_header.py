"""An artefact's header is checked whole, against one schema and against its tensors, before anything is built from
it: an edited `model.safetensors` (what a model file from elsewhere may carry) is refused in one line that names the
file and the field, through the Python API and `medclass predict` alike, and nothing answers with NaN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medclass.cli import app
from medclass.core.errors import MedclassError
from medclass.inference import ModelArtifact, Predictor
from medclass.models import create_model
from medclass.core.preprocessing import Preprocessing

runner = CliRunner()


def small_artifact(width: int | None = 4) -> ModelArtifact:
    """A smallcnn artefact; width None: the architecture's default, with no model_kwargs (as `medclass train`)."""
    torch.manual_seed(0)
    kwargs = {"width": width} if width else {}
    model = create_model("smallcnn", 2, 1, **kwargs)
    return ModelArtifact.single_task("smallcnn", ["benign", "malignant"], Preprocessing(16, 1, (0.5,), (0.5,)),
                                     model.state_dict(), threshold=0.3, model_kwargs=kwargs)


def rewrite(path: Path, meta_edit=None, tensors_edit=None) -> None:
    """Edit a safetensors file's JSON header in place, as a text editor would: the medclass metadata
    (`meta_edit(meta)`) and/or the tensors' entries (`tensors_edit(header)`); the tensor bytes stay as they were."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8:8 + length]), raw[8 + length:]
    if meta_edit:
        meta = json.loads(header["__metadata__"]["medclass"])
        meta_edit(meta)
        header["__metadata__"]["medclass"] = json.dumps(meta)  # NaN is written as JSON's NaN token
    if tensors_edit:
        tensors_edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


def field(dotted: str, value):
    """An edit setting one field, `heads.0.classes` style; value DELETE removes it."""
    *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]

    def edit(meta):
        for key in parents:
            meta = meta[key]
        if value is DELETE:
            del meta[last]
        else:
            meta[last] = value
    return edit


DELETE = object()


def tensor(name: str, key: str, value):
    def edit(header):
        header[name][key] = value
    return edit


def multiclass_of_three(meta):
    meta["heads"][0].update(kind="multiclass", classes=["a", "b", "c"], positive_index=None)


# (case, metadata edit, tensors edit, text the one-line error must hold besides the file's path)
CASES = [
    ("img_size huge", field("preprocessing.img_size", 100000), None, "preprocessing.img_size must be an integer"),
    ("img_size 0", field("preprocessing.img_size", 0), None, "preprocessing.img_size"),
    ("img_size -1", field("preprocessing.img_size", -1), None, "preprocessing.img_size"),
    ("img_size text", field("preprocessing.img_size", "64"), None, 'preprocessing.img_size must be an integer 8..4096; '
                                                                    'got "64"'),
    ("img_size 3.5", field("preprocessing.img_size", 3.5), None, "preprocessing.img_size"),
    ("img_size null", field("preprocessing.img_size", None), None, "preprocessing.img_size"),
    ("std 0", field("preprocessing.std", [0]), None, "preprocessing.std[0]"),
    ("mean NaN", field("preprocessing.mean", [math.nan]), None, "preprocessing.mean[0]"),
    ("mean too short", field("preprocessing.in_chans", 3), None, "preprocessing"),
    ("interpolation", field("preprocessing.interpolation", "sinc"), None, "preprocessing.interpolation"),
    ("class count", multiclass_of_three, None, "heads"),
    ("heads not a list", field("heads", {"name": "label"}), None, "heads must be a list"),
    ("heads empty", field("heads", []), None, "heads"),
    ("classes text", field("heads.0.classes", "abc"), None, "heads[0].classes must be a list"),
    ("classes repeated", field("heads.0.classes", ["benign", "benign"]), None, "heads[0].classes"),
    ("class newline", field("heads.0.classes", ["benign", "malig\nnant"]), None, "heads[0].classes[1]"),
    ("class NUL", field("heads.0.classes", ["benign\0", "malignant"]), None, "heads[0].classes[0]"),
    ("class empty", field("heads.0.classes", ["", "malignant"]), None, "heads[0].classes[0]"),
    ("threshold", field("heads.0.threshold", 2.0), None, "heads[0].threshold"),
    ("positive index", field("heads.0.positive_index", 5), None, "heads[0].positive_index"),
    ("temperature 0", field("heads.0.temperature", 0), None, "heads[0].temperature"),
    ("kind", field("heads.0.kind", "regression"), None, "heads[0].kind"),
    ("task name", field("heads.0.name", ["label"]), None, "heads[0].name"),
    ("tta", field("tta", ["hflip"] * 1000), None, "tta"),
    ("tta unknown", field("tta", ["rot90"]), None, "tta[0]"),
    ("model kwargs", field("model_kwargs", {"width": 100000}), None, "model_kwargs.width"),
    ("model kwargs unknown", field("model_kwargs", {"depth": 12}), None, "model_kwargs.depth"),
    ("model kwargs wrong width", field("model_kwargs", {"width": 8}), None, "model_kwargs"),
    ("unknown field", field("colour", "red"), None, "colour"),
    ("missing preprocessing", field("preprocessing", DELETE), None, "preprocessing"),
    ("unknown model", field("model_name", "resnet9000"), None, "model_name"),
    ("weights relabelled int32", None, tensor("fc.weight", "dtype", "I32"), "fc.weight"),
    ("weights reshaped", None, tensor("fc.weight", "shape", [1, 64]), "fc.weight"),
]


@pytest.fixture
def run(tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    small_artifact().save(run)
    return run


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "img.png"
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(path)
    return path


def assert_refused(run: Path, image: Path, expected: str) -> None:
    """Refused by the Python API and by `medclass predict` in one line naming the file and `expected`."""
    path = run / "model.safetensors"
    with pytest.raises(MedclassError) as caught:
        Predictor(run)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message, message
    result = runner.invoke(app, ["predict", str(run), str(image)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert f"error: {message}" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("case, meta_edit, tensors_edit, expected", CASES, ids=[c[0] for c in CASES])
def test_an_edited_header_is_refused_naming_the_field(run, image, case, meta_edit, tensors_edit, expected):
    rewrite(run / "model.safetensors", meta_edit, tensors_edit)
    assert_refused(run, image, expected)


def test_the_unedited_artefact_predicts(run, image):
    """The control: the rewriting helper itself leaves a loadable artefact."""
    rewrite(run / "model.safetensors", lambda meta: None)
    proba = Predictor(run).predict_proba([image])
    assert proba.shape == (1, 2) and np.isfinite(proba).all()


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, image):
    for value in (math.nan, math.inf):
        artifact = small_artifact()
        artifact.state_dict["features.2.0.weight"][0, 0, 0, 0] = value
        run = tmp_path / str(value)
        run.mkdir()
        artifact.save(run)
        assert_refused(run, image, "features.2.0.weight")


def test_a_large_network_named_in_the_header_is_refused_without_being_built(tmp_path, image, monkeypatch):
    """timm:vit_large_patch16_224 (300 M parameters, 1.2 GB) over smallcnn weights: compared on torch's meta device
    (no memory), never built for real."""
    import timm

    run = tmp_path / "run"
    run.mkdir()
    small_artifact(width=None).save(run)

    built_on = []
    create = timm.create_model

    def spy(*args, **kwargs):
        built_on.append(torch.get_default_device().type)
        return create(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", spy)
    rewrite(run / "model.safetensors", field("model_name", "timm:vit_large_patch16_224"))
    assert_refused(run, image, "do not fit the network the header names (model_name 'timm:vit_large_patch16_224'")
    assert built_on and set(built_on) == {"meta"}


def test_a_network_with_non_finite_outputs_gives_no_probabilities():
    """An in-memory artefact skips the load-time checks; the Predictor still refuses NaN where it arises."""
    artifact = small_artifact()
    artifact.state_dict["fc.bias"][0] = math.nan
    predictor = Predictor(artifact)
    with pytest.raises(MedclassError, match=r"not finite .*1 of 1 image"):
        predictor.predict_proba([np.full((16, 16), 128, np.uint8)])


def test_older_formats_are_checked_by_the_same_schema(tmp_path):
    artifact = small_artifact()
    payload = artifact.metadata() | {"format_version": 2, "state_dict": artifact.state_dict}
    payload["preprocessing"]["img_size"] = 100000
    torch.save(payload, tmp_path / "model.pt")
    with pytest.raises(MedclassError, match=r"model\.pt: preprocessing\.img_size must be an integer 8\.\.4096; "
                                            r"got 100000$"):
        ModelArtifact.load(tmp_path)

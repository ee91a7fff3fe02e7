"""Format 3 holds no pickle, and no artefact file, however crafted, runs code or fails without a clear message."""

import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from medclass.core.errors import MedclassError
from medclass.inference import ModelArtifact, Predictor
from medclass.models import create_model
from medclass.core.rundir import RunDir
from medclass.core.preprocessing import Preprocessing


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def small_artifact(**kwargs) -> ModelArtifact:
    model = create_model("smallcnn", 2, 1, width=4)
    return ModelArtifact.single_task("smallcnn", ["benign", "malignant"], Preprocessing(16, 1, (0.5,), (0.5,)),
                                     model.state_dict(), threshold=0.3, model_kwargs={"width": 4}, **kwargs)


def test_format_3_is_safetensors_with_json_metadata_and_predicts_as_saved(tmp_path):
    artifact = small_artifact(tta=["hflip"], provenance={"data": Path("x.npz"), "best_val_auc": np.float32(0.75)})
    path = artifact.save(tmp_path)
    assert path == tmp_path / "model.safetensors" and not list(tmp_path.glob("*.partial"))
    with safe_open(path, "pt") as f:  # readable by any safetensors reader, without medclass
        meta = json.loads(f.metadata()["medclass"])
        assert set(f.keys()) == set(artifact.state_dict)
    assert (meta["format_version"], meta["heads"][0]["threshold"], meta["provenance"]) == (
        3, 0.3, {"data": "x.npz", "best_val_auc": 0.75})
    loaded = ModelArtifact.load(tmp_path)
    assert (loaded.heads, loaded.tta, loaded.model_kwargs) == (artifact.heads, ["hflip"], {"width": 4})
    images = [np.full((16, 16), v, np.uint8) for v in (0, 128, 255)]
    np.testing.assert_array_equal(Predictor(loaded).predict_proba(images), Predictor(artifact).predict_proba(images))


def test_metadata_that_is_not_plain_json_is_refused_when_saving(tmp_path):
    with pytest.raises(MedclassError, match=r"model\.safetensors: provenance\.callback is a builtin_function_or_meth"):
        small_artifact(provenance={"callback": print}).save(tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors"])
def test_artefact_carrying_a_pickle_payload_is_refused_without_running_it(tmp_path, name):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "payload_ran"
    torch.save({"format": "medclass-model", "format_version": 2, "state_dict": {"w": torch.zeros(1)},
                "provenance": Payload(marker)}, run / name)
    with pytest.raises(MedclassError, match=f"{run / name}: not a .*(readable medclass model|safetensors file)"):
        ModelArtifact.load(run)
    with pytest.raises(MedclassError):
        RunDir(run).artifact()
    assert not marker.exists()
    control = tmp_path / "control.pt"  # (torch.load reads a .safetensors name as safetensors)
    control.write_bytes((run / name).read_bytes())
    torch.load(control, weights_only=False)  # the payload is live: an unsafe load would have run it
    assert marker.exists()


def _write_weights(path, metadata=None):
    save_file({"w": torch.zeros(4)}, str(path), metadata=metadata)


def _damaged(kind: str, path: Path) -> str:
    """Write a broken artefact of this kind at `path`; returns what the error must say."""
    if kind == "truncated":
        small_artifact().save(path)
        path.write_bytes(path.read_bytes()[:-100])
        return "damaged safetensors file"
    if kind == "png":
        Image.new("L", (8, 8)).save(path, format="PNG")
        return "not a safetensors file"
    if kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        return "not a safetensors file"
    if kind == "foreign safetensors":
        _write_weights(path)
        return "without medclass metadata"
    meta = small_artifact().metadata() | {"format_version": 99}
    _write_weights(path, {"format": "medclass-model", "format_version": "99", "medclass": json.dumps(meta)})
    return "format 99 is newer than this medclass reads"


@pytest.mark.parametrize("kind", ["truncated", "png", "random bytes", "foreign safetensors", "newer format"])
def test_damaged_or_foreign_files_give_one_clear_error(tmp_path, kind):
    path = tmp_path / "model.safetensors"
    expected = _damaged(kind, path)
    with pytest.raises(MedclassError) as caught:
        ModelArtifact.load(tmp_path)
    message = str(caught.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


def test_old_runs_model_pt_loads_and_a_new_save_takes_precedence(tmp_path):
    old = small_artifact()
    payload = old.metadata() | {"format_version": 2, "state_dict": old.state_dict}  # what medclass 0.x wrote
    torch.save(payload, tmp_path / "model.pt")
    assert RunDir(tmp_path).check().saved_artifact() == tmp_path / "model.pt"
    assert ModelArtifact.load(tmp_path).heads == old.heads
    old.heads = [old.heads[0].__class__(**{**old.heads[0].to_dict(), "threshold": 0.8})]
    old.save(RunDir(tmp_path).artifact_file)  # e.g. `medclass threshold` on an old run
    assert RunDir(tmp_path).saved_artifact() == tmp_path / "model.safetensors"
    assert ModelArtifact.load(tmp_path).threshold == 0.8

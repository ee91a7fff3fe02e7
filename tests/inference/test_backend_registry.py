"""Adding a backend is one module: a module dropped into medclass.export registers its BackendEntry, and
load_predictor, `medclass export --format` and the command line's help offer it with no other file changed."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import medclass
from tests.inference.test_onnx import THREE_CLASSES, artifact_for

# A whole backend: it answers every image with the same logits, from a file holding only the artefact's metadata.
TOY_MODULE = '''
"""A backend that answers every image with the same logits."""

import json
from pathlib import Path

import numpy as np

from medclass.inference.backends import BackendEntry, register_backend


class ToyBackend:
    name = "toy"

    def __init__(self, path, outputs):
        self.path, self.files, self.outputs = Path(path), (Path(path),), outputs

    def __call__(self, batch):
        return np.zeros((len(batch), self.outputs), np.float32)

    def network_bytes(self):
        return [self.path.read_bytes()]


def export_toy(source, out=None):
    from medclass.core.artifact import ModelArtifact
    from medclass.export.common import ExportResult, beside

    out = Path(out) if out else beside(source, "model.toy", ".toy")
    out.write_text(json.dumps(ModelArtifact.load(source).metadata(out)))
    return ExportResult(out, "toy", 0.0, 0.0, summary=[f"exported {out} (toy)"])


def load_toy(path, threads, device):
    from medclass.core.artifact import ModelArtifact

    artifact = ModelArtifact.from_metadata(json.loads(Path(path).read_text()), {}, path)
    return ToyBackend(path, sum(h.outputs for h in artifact.heads)), artifact


register_backend(BackendEntry("toy", "model.toy", (".toy",), "the same answer for every image", export=export_toy,
                              load=load_toy))
'''

# Run in a fresh interpreter: the registry loads its plug-ins once, on the first lookup, and the command line reads
# it for its help text when it is imported.
DRIVER = '''
import json, sys

import numpy as np

import medclass.export

medclass.export.__path__.append(sys.argv[1])  # the toy module now lies in medclass.export
from medclass.inference.backends import BACKENDS

names = BACKENDS.names()  # the first lookup: every module of medclass.export registers, the toy one too
light = not {"torch", "onnxruntime", "ncnn"} & set(sys.modules)
from typer.testing import CliRunner

from medclass.cli import app
from medclass.inference import load_predictor

run = sys.argv[2]
runner = CliRunner()
exported = runner.invoke(app, ["export", run, "--format", "toy"])
refused = runner.invoke(app, ["export", run, "--format", "toy", "--int8"])
by_run, by_file = load_predictor(run, backend="toy"), load_predictor(run + "/model.toy")
print(json.dumps({"names": names, "registry_is_light": light,
                  "export_help": runner.invoke(app, ["export", "--help"]).output,
                  "predict_help": runner.invoke(app, ["predict", "--help"]).output,
                  "exported": [exported.exit_code, exported.output], "refused": [refused.exit_code, refused.output],
                  "backends": [by_run.backend.name, by_file.backend.name],
                  "proba": by_file.predict_proba([np.zeros((32, 32), np.uint8)]).tolist()}))
'''


def test_a_backend_in_one_new_module_is_offered_everywhere(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "toy.py").write_text(TOY_MODULE)
    run = tmp_path / "run"
    run.mkdir()
    artifact_for("smallcnn", THREE_CLASSES).save(run)
    src = str(Path(medclass.__file__).parents[1])
    env = os.environ | {"PYTHONPATH": os.pathsep.join([src, str(Path.cwd())]), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(DRIVER), str(plugins), str(run)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["names"] == ["torch", "onnx", "ncnn", "toy"]  # the built-ins first, in help's order
    assert got["registry_is_light"]  # looking the registry up imports no runtime
    assert "toy (the same answer for every image)" in got["export_help"] and "RUN/model.toy" in got["export_help"]
    assert "torch, onnx, ncnn or toy" in got["predict_help"]
    assert got["exported"][0] == 0 and f"exported {run / 'model.toy'} (toy)" in got["exported"][1]
    assert got["refused"][0] == 2 and "--int8 and --opset are options of --format onnx" in got["refused"][1]
    assert got["backends"] == ["toy", "toy"]  # from the run folder and by the file's suffix
    np.testing.assert_allclose(got["proba"], [[1 / 3] * 3], atol=1e-6)

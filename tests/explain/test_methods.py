"""One registry of explanation methods: every list of methods reads it, a new method is one registration, and
reading the names loads nothing heavy."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead
from medclass.core.preprocessing import Preprocessing
from medclass.explain.explainer import (EXPLAINERS, Explainer, Explanation, ModelParts, build_explainer,
                                        method_names, methods_help, register_method)
from medclass.explain.options import ExplainOptions


def test_the_builtin_methods_are_listed_cams_first_then_otsu():
    assert method_names()[0] == "gradcam" and method_names()[-1] == "otsu"
    assert method_names(uses_network=False) == ["otsu"]
    assert "gradcam++" in method_names(uses_network=True) and "otsu" not in method_names(uses_network=True)
    assert methods_help().endswith(" or otsu (classic boxes)")
    assert ExplainOptions("eigencam").uses_network and not ExplainOptions("otsu").uses_network


def test_reading_the_method_names_and_the_help_loads_no_cam_library():
    code = ("import sys, json; from typer.testing import CliRunner; from medclass.cli import app; "
            "codes = [CliRunner().invoke(app, args).exit_code for args in (['--help'], ['predict', '--help'], "
            "['localize-eval', '--help'])]; "
            "print(json.dumps([codes, [m for m in ('pytorch_grad_cam', 'cv2') if m in sys.modules]]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    codes, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [0, 0, 0] and loaded == []


class Centre(Explainer):
    """A method of a test: one box, the image's middle half."""

    def explain(self, pictures, *, batch=None, proba=None, task=None, class_name=None):
        from medclass.explain.boxes import ScoredBox

        head = self.heads[0]
        return [Explanation(None, head.name, head.classes[0], 0, 0.5, self.method,
                            [ScoredBox(p.width / 4, p.height / 4, 3 * p.width / 4, 3 * p.height / 4, 1.0)],
                            (p.width / 2, p.height / 2)) for p in pictures]


@pytest.fixture
def centre_method(monkeypatch):
    # registered as a plug-in module would, and taken out again after the test (the registry has no removal)
    entries = dict(EXPLAINERS)
    monkeypatch.setattr(EXPLAINERS, "_entries", entries)
    register_method("centre", Centre, uses_network=False, summary="the middle")
    return "centre"


def test_a_registered_method_is_offered_checked_and_built_like_the_builtin_ones(centre_method):
    assert method_names()[-1] == centre_method and methods_help().endswith("centre (the middle)")
    options = ExplainOptions.parse("Centre")
    assert options.method == "centre" and not options.uses_network
    parts = ModelParts(heads=(TaskHead("label", "binary", ("no", "yes"), positive_index=1),),
                       preprocessing=Preprocessing(16, 1, (0.5,), (0.5,)))
    explained, = build_explainer(parts, options).explain_images([Image.new("L", (40, 20))])
    assert explained.boxes[0].corners() == (10, 5, 30, 15) and explained.point == (20, 10)
    with pytest.raises(MedclassError, match="method must be one of gradcam, .*, otsu, centre; got 'lime'"):
        ExplainOptions("lime")


def test_a_cam_needs_the_network_and_a_target_layer():
    heads = (TaskHead("label", "binary", ("no", "yes"), positive_index=1),)
    parts = ModelParts(heads=heads, preprocessing=Preprocessing(16, 1, (0.5,), (0.5,)))
    with pytest.raises(MedclassError, match="gradcam differentiates through the network"):
        build_explainer(parts, ExplainOptions("gradcam"))
    from medclass.models import create_model

    network = create_model("smallcnn", 2, 1, width=8).eval()
    with pytest.raises(MedclassError, match="a CAM needs the target layer or the model's registered name"):
        build_explainer(ModelParts(heads, parts.preprocessing, network), ExplainOptions("gradcam"))
    cam = build_explainer(ModelParts(heads, parts.preprocessing, network, "smallcnn"), ExplainOptions("hirescam"))
    explained, = cam.explain_images([Image.fromarray(np.zeros((24, 24), np.uint8))])
    assert explained.method == "hirescam" and explained.heatmap.shape == (24, 24) and cam.layer is not None


def test_otsu_without_probabilities_explains_the_class_asked_for():
    heads = (TaskHead("organ", "multiclass", ("lung", "liver", "brain")),)
    parts = ModelParts(heads=heads, preprocessing=Preprocessing(16, 1, (0.5,), (0.5,)))
    otsu = build_explainer(parts, ExplainOptions("otsu", "bright"))
    pixels = np.zeros((30, 30), np.uint8)
    pixels[10:20, 12:22] = 255
    explained, = otsu.explain_images([Image.fromarray(pixels)], class_name="liver")
    assert (explained.class_name, explained.output_index, explained.polarity) == ("liver", 1, "bright")
    assert explained.boxes[0].corners() == (12, 10, 22, 20) and np.isnan(explained.probability)
    with pytest.raises(MedclassError, match="the class to explain follows the prediction"):
        otsu.explain_images([Image.fromarray(pixels)])

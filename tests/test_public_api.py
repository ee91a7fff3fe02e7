"""The public API stays where users import it from, and moved modules keep their old paths for one release with a
DeprecationWarning that says where the name lives now."""

from __future__ import annotations

import importlib

import pytest

import medclass

PUBLIC = {"open_dataset": "medclass.data", "TrainConfig": "medclass.training", "train": "medclass.training",
          "evaluate_run": "medclass.evaluation", "Predictor": "medclass.inference",
          "load_predictor": "medclass.inference", "ModelArtifact": "medclass.core.artifact",
          "ExplainOptions": "medclass.explain", "create_model": "medclass.models", "list_models": "medclass.models"}
MOVED = [("medclass.errors", "medclass.core.errors", "MedclassError"),
         ("medclass.heads", "medclass.core.heads", "TaskHead"),
         ("medclass.transforms", "medclass.core.preprocessing", "Preprocessing"),
         ("medclass.rundir", "medclass.core.rundir", "RunDir"),
         ("medclass.inference.artifact", "medclass.core.artifact", "ModelArtifact"),
         ("medclass.models.registry", "medclass.core.architectures", "register_model")]


@pytest.mark.parametrize("name, module", PUBLIC.items())
def test_public_names_import_from_their_documented_module_and_from_medclass(name, module):
    value = getattr(importlib.import_module(module), name)
    if module != "medclass.models":
        assert getattr(medclass, name) is value


@pytest.mark.parametrize("old, new, name", MOVED)
def test_an_old_path_gives_the_same_object_with_a_warning_naming_the_new_one(old, new, name):
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {new}"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Predicter'"):
        medclass.Predicter  # noqa: B018
    with pytest.raises(AttributeError, match="medclass.heads' has no attribute 'Head'"):
        importlib.import_module("medclass.heads").Head  # noqa: B018

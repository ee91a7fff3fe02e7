"""Every recipe in configs/ is a valid `medclass train --config` file, and a run's own config.yaml is one too."""

from pathlib import Path

import pytest
import yaml

from medclass.core.errors import MedclassError
from medclass.training import TrainConfig
from medclass.training.config import load_recipe

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_the_recipes_folder_is_not_empty():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_each_recipe_loads_into_a_valid_config_and_documents_its_command(path):
    recipe = load_recipe(path)
    config = TrainConfig(data="data", out="run", **recipe)
    assert all(getattr(config, key) == value for key, value in recipe.items())
    assert f"--config configs/{path.name}" in path.read_text()  # the header says how to run it


def test_a_weights_file_or_a_flag_is_a_valid_pretrained_value_and_other_types_are_named(tmp_path):
    for value in ("weights/resnet50.safetensors", True, False):
        (tmp_path / "r.yaml").write_text(yaml.safe_dump({"pretrained": value, "img_size": None, "drop_rate": 0.1}))
        assert load_recipe(tmp_path / "r.yaml")["pretrained"] == value
    (tmp_path / "bad.yaml").write_text("epochs: many\n")
    with pytest.raises(MedclassError, match=r"bad.yaml: epochs must be int; got 'many'"):
        load_recipe(tmp_path / "bad.yaml")

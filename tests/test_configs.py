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


def test_every_config_field_is_a_train_option_showing_its_default_and_the_implemented_choices():
    """TrainConfig declares each option once: `medclass train` offers every field, with TrainConfig's default and
    the choices of the code that implements them (a new sampler is a new choice everywhere)."""
    from dataclasses import fields

    from typer.testing import CliRunner

    from medclass.cli import app
    from medclass.training.imbalance import SAMPLERS
    from medclass.training.optim import SCHEDULERS
    from medclass.training.options import option_of

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for config_field in fields(TrainConfig):
        declared = option_of(config_field)
        if declared.on_command_line:
            assert (declared.flag or f"--{config_field.name.replace('_', '-')}") in result.output, config_field.name
    assert "none (shuffle), weighted (classes drawn equally) or oversample" in result.output and len(SAMPLERS) == 3
    assert f"{', '.join(list(SCHEDULERS)[:-1])} or {list(SCHEDULERS)[-1]}" in result.output
    assert "(30)" in result.output.split("--epochs", 1)[1].split("--batch-size", 1)[0]  # TrainConfig's default

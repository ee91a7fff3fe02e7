"""train → evaluate → predict through the CLI, and one-line errors for bad input."""

import csv
import json

import numpy as np
from typer.testing import CliRunner

from medclass.cli import app

runner = CliRunner()


def test_train_evaluate_predict(demo_data, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(demo_data), "--model", "smallcnn", "--epochs", "1",
                                 "--batch-size", "16", "--img-size", "24", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "best val AUC" in result.output

    result = runner.invoke(app, ["evaluate", str(run), "--json", "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"accuracy", "balanced_accuracy", "auc", "f1_macro", "f1_weighted", "confusion_matrix",
            "per_class"} <= set(metrics)
    result = runner.invoke(app, ["evaluate", str(run), "--n-boot", "20"])
    table = result.output.split("f1-score")[1]  # classification_report's shape, under the headline numbers
    assert all(row in table for row in ("benign", "malignant", "normal", "accuracy", "macro avg", "weighted avg"))

    folder = tmp_path / "incoming"
    folder.mkdir()
    for c in ("normal", "malignant"):
        (folder / f"{c}.png").write_bytes((demo_data / c / f"{c}_0001.png").read_bytes())
    (folder / "broken.png").write_text("not an image")
    result = runner.invoke(app, ["predict", str(run), str(folder), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 1  # the unreadable file is reported, the others still predicted
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["broken.png", "malignant.png", "normal.png"]
    assert rows[0]["error"] and not rows[0]["prediction"]
    probs = np.array([[float(r[f"p_{c}"]) for c in ("benign", "malignant", "normal")] for r in rows[1:]])
    assert np.allclose(probs.sum(1), 1, atol=1e-4)


def test_bad_input_gives_one_line_error(tmp_path):
    cases = [["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")],
             ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r")],
             ["evaluate", str(tmp_path)],
             ["evaluate", str(tmp_path), "--target", "group"],
             ["predict", str(tmp_path), str(tmp_path / "x.png")]]
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 4, 4)))
    cases.append(["train", "--data", str(tmp_path / "wrong.npz"), "--out", str(tmp_path / "r")])
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(tmp_path) in lines[0], lines


def test_models_lists_input_size_parameters_and_weights_and_finds_timm_architectures():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:] if line.strip()}
    assert rows["inception_v3"][1:3] == ["299px", "21.8M"] and "timm/inception_v3.tv_in1k" in rows["inception_v3"][-5]
    assert rows["smallcnn"][1:4] == ["data", "1.2M", "none"] and rows["vgg16_bn"][2] == "134.3M"
    result = runner.invoke(app, ["models", "--timm", "convnext_a*"])
    assert result.exit_code == 0 and "timm:convnext_atto" in result.output.splitlines()


def test_refused_starts_are_one_line_and_leave_nothing_behind(demo_data, tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("not a run folder")
    (tmp_path / "text.npz").write_text("this is a text file, not an archive")
    run = tmp_path / "run"
    cases = {"names an existing file": ["--data", str(demo_data), "--out", str(taken)],
             "not an .npz archive": ["--data", str(tmp_path / "text.npz"), "--out", str(run)],
             "needs inputs of at least 32 px": ["--data", str(demo_data), "--model", "resnet18", "--img-size", "16",
                                                "--out", str(run)],
             "img_size must be >= 8": ["--data", str(demo_data), "--img-size", "0", "--out", str(run)]}
    for expected, args in cases.items():
        result = runner.invoke(app, ["train", *args])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and expected in lines[0], (args, result.output)
        assert "allow_pickle" not in lines[0] and "Traceback" not in result.output
        assert not run.exists() and taken.read_text() == "not a run folder"


def test_training_progress_counts_epochs_from_one(demo_data, tmp_path):
    result = runner.invoke(app, ["train", "--data", str(demo_data), "--model", "smallcnn", "--epochs", "2",
                                 "--batch-size", "16", "--out", str(tmp_path / "run"), "--no-audit"])
    assert result.exit_code == 0, result.output
    epochs = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert epochs == ["1/2", "2/2"] and "after 2 epochs" in result.stdout
    assert "Epoch" not in result.output  # no progress bar redrawn into a log that is not a terminal


def test_patient_pattern_on_class_folders_gives_a_patient_level_run(tmp_path):
    from tests.conftest import kermany_like

    data = kermany_like(tmp_path / "xray", n_children=60, layout="split")
    result = runner.invoke(app, ["train", "--data", str(data), "--patient-pattern", r"^(person\d+)_",
                                 "--model", "smallcnn", "--epochs", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "run" / "splits.csv")))
    splits_of = {}
    for row in rows:
        assert row["patient"] and row["source"].rsplit("/", 1)[1].startswith(row["patient"] + "_")
        splits_of.setdefault(row["patient"], set()).add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values()) and {"train", "val", "test"} == set().union(*splits_of.values())
    audit = json.loads((tmp_path / "run" / "audit.json").read_text())
    assert audit["patients"]["test"] == 20 and sum(audit["patients"].values()) == 60


def test_unused_reader_option_is_one_line_for_every_data_command(tmp_path):
    from tests.conftest import write_npz

    npz = str(write_npz(tmp_path / "tiny.npz"))
    for args in (["audit", npz], ["split", npz, "--out", str(tmp_path / "s.csv")],
                 ["train", "--data", npz, "--out", str(tmp_path / "run")]):
        result = runner.invoke(app, [*args, "--patient-pattern", r"^(\d+)_"])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, (args, result.output)
        assert "--patient-pattern not used by the npz reader" in lines[0] and "it takes --target" in lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "s.csv").exists()


def test_a_yaml_recipe_sets_options_flags_win_and_mistakes_are_named(demo_data, tmp_path):
    import yaml

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"data": str(demo_data), "model": "smallcnn", "epochs": 3, "lr": 0.001,
                                      "batch_size": 16, "audit": False}))
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(recipe), "--epochs", "1", "--out", str(run)])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((run / "config.yaml").read_text())["config"]
    assert saved["epochs"] == 1 and saved["lr"] == 0.001 and saved["batch_size"] == 16  # the flag won epochs
    # a run's own config.yaml is a recipe: the same options again, into another folder
    again = runner.invoke(app, ["train", "--config", str(run / "config.yaml"), "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert yaml.safe_load((tmp_path / "again" / "config.yaml").read_text())["config"]["lr"] == 0.001

    cases = {"lr_max: 0.1\n": "unknown option(s) lr_max; known: ", "epochs: ten\n": "epochs must be int; got 'ten'",
             "- lr\n": "a recipe is a mapping of option: value", "lr: [\n": "not valid YAML",
             "hflip: sometimes\n": "hflip must be bool; got 'sometimes'", "img_size: big\n": "img_size must be int"}
    for text, message in cases.items():
        recipe.write_text(text)
        result = runner.invoke(app, ["train", "--config", str(recipe), "--data", str(demo_data),
                                     "--out", str(tmp_path / "bad")])
        assert result.exit_code == 2 and f"{recipe}: {message}" in result.output, (text, result.output)
    assert not (tmp_path / "bad").exists()


def test_train_records_how_its_split_was_grouped_and_decodes_each_image_once_for_split_and_audit(tmp_path,
                                                                                                  monkeypatch):
    import yaml

    from medclass.data import image_hashes
    from tests.data.test_split_groups import folder_with_copies

    clusters = folder_with_copies(tmp_path / "data")
    decoded, original = [], image_hashes.image_facts

    def counting(img):
        decoded.append(img.size)
        return original(img)

    monkeypatch.setattr(image_hashes, "image_facts", counting)
    expected = {"": {"by": "near-duplicate clusters", "groups": 28, "multi_image_groups": 6},
                "--no-group-duplicates": {"by": "none", "groups": 36, "multi_image_groups": 0}}
    for flag, grouping in expected.items():
        run = tmp_path / f"run{flag}"
        result = runner.invoke(app, ["train", "--data", str(tmp_path / "data"), "--model", "smallcnn", "--epochs", "1",
                                     "--img-size", "16", "--out", str(run), *([flag] if flag else [])])
        assert result.exit_code == 0, result.output
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["resolved"]["split_grouping"] == grouping
        assert saved["config"]["group_duplicates"] is (not flag)
        assert f"split grouped by {grouping['by']}: {grouping['groups']} groups" in result.stderr
        assert len(decoded) == 36 and (run / "audit.json").is_file()
        decoded.clear()
    rows = csv.DictReader(open(tmp_path / "run" / "splits.csv"))
    split_of = {row["source"].rsplit("/", 1)[1]: row["split"] for row in rows}
    assert all(len({split_of[n] for n in cluster}) == 1 for cluster in clusters)


def test_modality_and_preset_reach_the_run_and_a_flag_wins_over_the_modality(demo_data, tmp_path):
    import yaml

    from medclass.core.artifact import ModelArtifact

    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(demo_data), "--model", "smallcnn", "--epochs", "1",
                                 "--batch-size", "16", "--img-size", "16", "--no-audit", "--out", str(run),
                                 "--modality", "histology", "--augment", "strong", "--no-hflip"])
    assert result.exit_code == 0, result.output
    assert "augmentation: strong for histology: hflip off, vflip on, rot90 on" in result.stderr
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["config"] | {"augment": "strong", "modality": "histology", "hflip": False} == saved["config"]
    augmentation = saved["resolved"]["augmentation"]
    assert augmentation | {"preset": "strong", "hflip": False, "vflip": True, "rot90": True, "trivial_augment": True,
                           "crop": 0.7, "hue": 0.05} == augmentation
    assert ModelArtifact.load(run / "model.safetensors").tta == []  # --no-hflip: no flip TTA either

    for args, message in ((["--modality", "ct"], "modality must be one of xray, ultrasound, histology, dermoscopy, "
                                                  "mri, fundus, other; got 'ct'"),
                          (["--augment", "wild"], "augment must be one of none, light, classic, strong; got 'wild'")):
        result = runner.invoke(app, ["train", "--data", str(demo_data), "--out", str(tmp_path / "bad"), *args])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "bad").exists()

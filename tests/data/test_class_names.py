"""Task and class names are distinct, non-empty text without control characters: a model's heads refuse others
(when trained and when read from a file), and data whose folder name or CSV label holds a newline or NUL is refused
when it is read, naming the name and where it came from, before anything is trained."""

import pytest
from PIL import Image

from medclass.data import open_dataset
from medclass.core.errors import DataError, MedclassError
from medclass.core.heads import TaskHead


@pytest.mark.parametrize("classes, expected", [
    ("ab", "classes must be a list of names; got the text 'ab'"),
    (("benign", "benign"), "'benign' named more than once"),
    (("benign", "malig\nnant"), "class 1 ('malig\\nnant') holds the control character '\\n'"),
    (("benign\0", "malignant"), "holds the control character '\\x00'"),
    (("", "malignant"), "class 0 ('') is empty"),
])
def test_a_head_refuses_class_names_that_are_not_distinct_plain_names(classes, expected):
    with pytest.raises(MedclassError) as caught:
        TaskHead("label", "binary", classes)
    assert expected in str(caught.value)


def test_a_head_refuses_a_task_name_with_a_control_character():
    with pytest.raises(MedclassError, match="task name 'la\\\\tbel' holds the control character"):
        TaskHead("la\tbel", "binary", ("a", "b"))


def _images(folder, n=3):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("L", (8, 8), 40 * i).save(folder / f"{i}.png")


def test_a_class_folder_named_with_a_newline_is_refused_naming_it(tmp_path):
    _images(tmp_path / "data" / "benign")
    _images(tmp_path / "data" / "malig\nnant")
    with pytest.raises(DataError) as caught:
        open_dataset(tmp_path / "data")
    message = str(caught.value)
    assert "class 'malig\\nnant' of task 'label' holds the control character '\\n'" in message
    assert str(tmp_path / "data" / "malig\nnant" / "0.png") in message


def test_a_csv_label_with_a_newline_is_refused_naming_its_row(tmp_path):
    _images(tmp_path / "images", 4)
    csv = tmp_path / "labels.csv"
    csv.write_text('image,label\nimages/0.png,benign\nimages/1.png,"malig\nnant"\nimages/2.png,benign\n'
                   'images/3.png,benign\n')
    with pytest.raises(DataError) as caught:
        open_dataset(csv)
    assert str(caught.value).startswith(f"{csv}: row 3, column label: class 'malig\\nnant'")


def test_training_stops_on_such_a_name_before_any_epoch(tmp_path):
    from medclass.training import TrainConfig, train

    _images(tmp_path / "data" / "benign", 6)
    _images(tmp_path / "data" / "mal\x1bignant", 6)
    with pytest.raises(DataError, match="holds the control character '\\\\x1b'"):
        train(TrainConfig(data=str(tmp_path / "data"), out=str(tmp_path / "run"), model="smallcnn", epochs=1))
    assert not (tmp_path / "run" / "checkpoints").exists()

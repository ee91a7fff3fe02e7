"""TaskHead: the one reading of a model's logits and of a sample's labels, for every task kind."""

import numpy as np
import pytest
import torch

from medclass.data.base import Sample
from medclass.core.errors import DataError, MedclassError
from medclass.core.heads import MISSING, TaskHead, encode_targets, per_task, probabilities

ORGAN = TaskHead("organ", "multiclass", ("Brain", "Breast", "Lung"))
MALIGNANCY = TaskHead("malignancy", "binary", ("benign", "malignant"), positive_index=1, threshold=0.3)
FINDINGS = TaskHead("findings", "multilabel", ("Effusion", "Mass", "Nodule"), threshold=(0.5, 0.2, 0.9))


def test_decisions_threshold_binary_argmax_multiclass_and_one_threshold_per_finding():
    assert MALIGNANCY.decide(np.array([[0.75, 0.25], [0.65, 0.35]])).tolist() == [0, 1]  # 0.35 >= 0.3, not argmax
    assert ORGAN.decide(np.array([[0.2, 0.5, 0.3]])).tolist() == [1]
    assert FINDINGS.decide(np.array([[0.5, 0.19, 0.95]])).tolist() == [[1, 0, 1]]
    assert FINDINGS.label_names(np.array([[1, 0, 1], [0, 0, 0]])) == ["Effusion|Nodule", ""]


def test_probabilities_keep_the_logits_layout_softmax_per_head_sigmoid_per_finding():
    heads = [ORGAN, MALIGNANCY, FINDINGS]
    logits = torch.randn(4, 8)
    proba = probabilities(heads, logits)
    split = per_task(heads, proba.numpy())
    np.testing.assert_allclose(split["organ"].sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(split["malignancy"], logits[:, 3:5].softmax(1).numpy(), atol=1e-6)
    np.testing.assert_allclose(split["findings"], logits[:, 5:].sigmoid().numpy(), atol=1e-6)


def test_targets_encode_classes_findings_and_missing_labels():
    samples = [Sample("a.png", {"organ": "Lung", "malignancy": "malignant", "findings": ("Mass",)}),
               Sample("b.png", {"organ": "Brain", "findings": ()}),  # no malignancy label; no finding
               Sample("c.png", {"organ": "Breast", "malignancy": "benign"})]  # no findings label at all
    y = encode_targets([ORGAN, MALIGNANCY, FINDINGS], samples)
    assert y.tolist() == [[2, 1, 0, 1, 0], [0, MISSING, 0, 0, 0], [1, 0, MISSING, MISSING, MISSING]]


def test_labels_a_head_cannot_take_are_named():
    with pytest.raises(DataError, match=r"a.png: class 'Kidney' of task 'organ' is not among the model's"):
        encode_targets([ORGAN], [Sample("a.png", {"organ": "Kidney"})])
    with pytest.raises(DataError, match=r"b.png: task 'organ' has several labels \(Brain\|Lung\).*--multilabel"):
        encode_targets([ORGAN], [Sample("b.png", {"organ": ("Brain", "Lung")})])
    with pytest.raises(MedclassError, match="3 thresholds for 2 findings"):
        TaskHead("f", "multilabel", ("A", "B"), threshold=(0.1, 0.2, 0.3))
    with pytest.raises(MedclassError, match="a binary task has 2 classes"):
        TaskHead("m", "binary", ("a", "b", "c"))


def test_head_dicts_round_trip():
    for head in (ORGAN, MALIGNANCY, FINDINGS):
        assert TaskHead.from_dict(head.to_dict()) == head


@pytest.mark.parametrize("classes,positive", [
    (("malignant", "normal, benign"), 0),  # BreastMNIST: the second class is the healthy one
    (("normal", "pneumonia"), 1), (("benign", "malignant"), 1), (("Mass", "No Finding"), 0),
    (("no tumor", "tumor"), 1), (("notumor", "glioma"), 1), (("cancer", "non-cancer"), 0),
    (("abnormal", "normal"), 0), (("nodule", "clear"), 0),
    (("a", "b"), 1), (("tumor", "malignant"), 1),  # none, or more than one, named like a disease: the second
])
def test_the_default_positive_class_is_the_one_named_like_a_disease(classes, positive):
    from medclass.core.heads import default_positive

    assert default_positive(classes)[0] == positive

"""Per-patient aggregation: mean probabilities, and the patient's label when their images disagree."""

import numpy as np

from medclass.evaluation.patients import aggregate, patient_level
from medclass.core.heads import TaskHead

PATIENTS = np.array(["a", "a", "b", "c", "c", "c"])


def test_binary_patient_is_positive_when_any_image_is_and_probabilities_are_averaged():
    head = TaskHead("label", "binary", ("malignant", "benign"), positive_index=0)
    y = np.array([[1], [0], [1], [1], [1], [1]])  # patient a: one malignant image of two
    proba = np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9], [0.3, 0.7], [0.3, 0.7], [0.6, 0.4]])
    ids, labels, mean, disagreeing = aggregate(head, y, proba, PATIENTS)
    assert ids.tolist() == ["a", "b", "c"] and labels[:, 0].tolist() == [0, 1, 1] and disagreeing == 1
    assert np.allclose(mean[0], [0.4, 0.6]) and np.allclose(mean[2], [0.4, 0.6])


def test_multiclass_takes_the_most_frequent_label_and_multilabel_the_union():
    multiclass = TaskHead("grade", "multiclass", ("0", "1", "2"))
    y = np.array([[0], [0], [2], [1], [1], [2]])
    _, labels, _, disagreeing = aggregate(multiclass, y, np.full((6, 3), 1 / 3), PATIENTS)
    assert labels[:, 0].tolist() == [0, 2, 1] and disagreeing == 1
    multilabel = TaskHead("findings", "multilabel", ("Mass", "Nodule"))
    y = np.array([[1, 0], [0, 1], [0, 0], [0, 0], [0, 0], [1, 0]])
    _, labels, _, _ = aggregate(multilabel, y, np.full((6, 2), 0.5), PATIENTS)
    assert labels.tolist() == [[1, 1], [0, 0], [1, 0]]


def test_patient_level_metrics_count_patients():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(40), 3)
    y = np.repeat(rng.integers(0, 2, 40), 3)[:, None]
    p1 = np.clip(0.4 * y[:, 0] + rng.uniform(0, 0.6, 120), 0, 1)
    head = TaskHead("label", "binary", ("normal", "pneumonia"))
    result = patient_level(head, y, np.stack([1 - p1, p1], 1), patients, n_boot=50)
    assert result["patients"] == result["n"] == 40 and result["images"] == 120 and 0.5 < result["auc"] <= 1

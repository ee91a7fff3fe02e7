"""TaskLoss: each task's loss on the images labelled for it, weighted and summed."""

import torch
from torch.nn import functional as F

from medclass.core.heads import TaskHead, encode_targets
from medclass.data.base import Sample
from medclass.training.losses import TaskLoss

ORGAN = TaskHead("organ", "multiclass", ("Brain", "Breast", "Lung"))
MALIGNANCY = TaskHead("malignancy", "binary", ("benign", "malignant"))
FINDINGS = TaskHead("findings", "multilabel", ("Effusion", "Mass"))


def test_one_task_is_plain_cross_entropy_with_smoothing_and_class_weights():
    logits, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    weights = [1.0, 2.0, 0.5]
    loss = TaskLoss([ORGAN], class_weights={"organ": weights}, label_smoothing=0.1)
    expected = F.cross_entropy(logits, y, weight=torch.tensor(weights), label_smoothing=0.1)
    torch.testing.assert_close(loss(logits, y[:, None]), expected)


def test_unlabelled_images_are_masked_per_task_and_weights_scale_each_task():
    samples = [Sample("a", {"organ": "Lung", "malignancy": "malignant", "findings": ("Mass",)}),
               Sample("b", {"organ": "Brain", "findings": ()}),
               Sample("c", {"organ": "Breast", "malignancy": "benign"})]
    heads = [ORGAN, MALIGNANCY, FINDINGS]
    y = torch.as_tensor(encode_targets(heads, samples))
    logits = torch.randn(3, 7, requires_grad=True)
    loss = TaskLoss(heads, task_weights={"malignancy": 2.0, "findings": 0.5})(logits, y)
    organ = F.cross_entropy(logits[:, :3], y[:, 0])
    malignancy = F.cross_entropy(logits[[0, 2], 3:5], y[[0, 2], 1])  # b has no malignancy label
    findings = F.binary_cross_entropy_with_logits(logits[:2, 5:], y[:2, 2:].float())  # c has no findings label
    torch.testing.assert_close(loss, organ + 2.0 * malignancy + 0.5 * findings)
    loss.backward()
    assert logits.grad[1, 3:5].abs().sum() == 0 and logits.grad[2, 5:].abs().sum() == 0


def test_a_batch_without_labels_for_a_task_adds_zero_not_nan():
    y = torch.tensor([[0, -1], [2, -1]])
    loss = TaskLoss([ORGAN, MALIGNANCY])(torch.randn(2, 5), y)
    assert torch.isfinite(loss)

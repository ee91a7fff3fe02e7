"""CAM target layers of every registered model, which output is explained, and that explaining changes nothing."""

import numpy as np
import pytest
import torch
from PIL import Image

from medclass.data.demo import phantom
from medclass.core.errors import MedclassError
from medclass.explain import explain_cam, explained_output
from medclass.explain.cam import CAM_METHODS, cam_maps
from medclass.explain.localize import inside, random_point
from medclass.core.heads import TaskHead
from medclass.models import cam_target_layer, create_model, list_models, model_entry
from medclass.core.preprocessing import Preprocessing

CHEAP = {"smallcnn", "resnet18", "resnet18_small", "efficientnet_lite0"}  # also tried in RGB with two task heads


def cam_side(name: str) -> int:
    """64 px, or more where the last feature map would be 1x1 (a CAM of one cell is constant)."""
    return 160 if name == "inception_v3" else max(64, model_entry(name).min_input)


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_a_target_layer_whose_cam_varies_over_the_image(name):
    torch.manual_seed(0)
    side = cam_side(name)
    variants = [(1, None)] + ([(3, [3, 2])] if name in CHEAP else [])
    for in_chans, task_outputs in variants:
        model = create_model(name, 5, in_chans, task_outputs=task_outputs).eval()
        layer = cam_target_layer(name, model)
        assert any(module is layer for module in model.modules())
        # LayerCAM (positive gradients only): a random network's Grad-CAM of one class may be zero everywhere
        maps, logits = cam_maps(model, torch.randn(1, in_chans, side, side), [4], "layercam", model_name=name)
        assert maps.shape == (1, side, side) and logits.shape == (1, 5)
        assert maps.min() >= 0 and maps.max() <= 1 and maps.std() > 0.01


def test_explained_output_follows_each_kind_of_head():
    heads = [TaskHead("malignancy", "binary", ("benign", "malignant"), positive_index=1),
             TaskHead("organ", "multiclass", ("brain", "breast", "lung")),
             TaskHead("findings", "multilabel", ("Mass", "Nodule", "Effusion"))]
    proba = np.array([0.9, 0.1, 0.2, 0.7, 0.1, 0.3, 0.2, 0.8])
    assert explained_output(heads, proba)[1:] == (1, 1)  # binary: the positive class, however improbable
    assert explained_output(heads, proba, task="organ")[1:] == (1, 3)  # multiclass: the predicted class
    assert explained_output(heads, proba, task="findings")[1:] == (2, 7)  # multilabel: the most probable finding
    assert explained_output(heads, proba, class_name="Nodule")[1:] == (1, 6)  # found by class alone
    with pytest.raises(MedclassError, match="class 'Mass' is not a class of task 'organ'"):
        explained_output(heads, proba, task="organ", class_name="Mass")
    with pytest.raises(MedclassError, match="no task 'grade' in this model; tasks: malignancy, organ, findings"):
        explained_output(heads, proba, task="grade")


def test_explaining_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = create_model("smallcnn", 2, 1, width=8).train()
    pre = Preprocessing(32, 1, (0.5,), (0.5,))
    images = [Image.fromarray(phantom(np.random.default_rng(i), "malignant", 40)[0]) for i in range(3)]
    batch = torch.stack([pre.eval_transform()(im) for im in images])
    with torch.no_grad():
        before = model.eval()(batch)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm statistics included
    heads = [TaskHead("label", "binary", ("normal", "malignant"), positive_index=1)]
    for method in CAM_METHODS:
        explanations = explain_cam(model, heads, pre, images, method, model_name="smallcnn")
        assert [e.heatmap.shape for e in explanations] == [(40, 40)] * 3
    assert model.training  # its mode restored
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(batch), before)


def test_heatmap_and_boxes_come_back_at_the_original_size():
    torch.manual_seed(0)
    model = create_model("smallcnn", 3, 3, width=8).eval()
    heads = [TaskHead("label", "multiclass", ("a", "b", "c"))]
    pre = Preprocessing(32, 3, (0.5,) * 3, (0.5,) * 3)
    wide = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 90, 3), dtype=np.uint8))
    (explanation,) = explain_cam(model, heads, pre, [wide], class_name="c", model_name="smallcnn")
    assert explanation.heatmap.shape == (30, 90) and explanation.class_name == "c" and explanation.output_index == 2
    assert all(0 <= b.x0 < b.x1 <= 90 and 0 <= b.y0 < b.y1 <= 30 for b in explanation.boxes)
    x, y = explanation.peak
    assert explanation.heatmap[int(y), int(x)] == explanation.heatmap.max()


def test_grad_cam_of_a_trained_lesion_classifier_points_into_the_lesion_more_often_than_chance():
    """smallcnn (narrow, for speed) learns normal vs malignant phantoms (lesions at random places); on new
    malignant phantoms the heatmap's maximum should fall inside the lesion box far more often than a random point."""
    rng, size = np.random.default_rng(0), 48
    pre = Preprocessing(size, 1, (0.5,), (0.5,))
    pixels = [phantom(rng, ("normal", "malignant")[i % 2], size)[0] for i in range(160)]
    x = torch.stack([pre.eval_transform()(Image.fromarray(p)) for p in pixels])
    y = torch.arange(160) % 2
    torch.manual_seed(0)
    model = create_model("smallcnn", 2, 1, width=8)
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
    for _ in range(15):
        for batch in torch.randperm(len(x)).split(32):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    test = [phantom(rng, "malignant", size) for _ in range(40)]
    heads = [TaskHead("label", "binary", ("normal", "malignant"), positive_index=1)]
    explanations = explain_cam(model.eval(), heads, pre, [Image.fromarray(p) for p, _ in test], model_name="smallcnn")
    hits = sum(inside(e.peak, [box]) for e, (_, box) in zip(explanations, test))
    chance = np.random.default_rng(1)
    random_hits = sum(inside(random_point((size, size), chance), [box]) for _, box in test)
    assert hits >= 2 * random_hits + 8, (hits, random_hits)


def test_an_input_size_heatmap_maps_back_to_a_non_square_original_per_axis():
    from medclass.explain.cam import to_explanation
    from medclass.explain.explainer import Target

    heat = np.zeros((32, 32), np.float32)
    heat[8:16, 4:12] = 1  # rows (y) 8-16, columns (x) 4-12 of the 32-px input
    head = TaskHead("findings", "multilabel", ("Mass", "Nodule"))
    original = Image.new("L", (64, 128))  # twice as wide, four times as tall as the input
    explanation = to_explanation(original, heat, Target(head, 1, 1), 0.7,
                                 preprocessing=Preprocessing(32, 1, (0.5,), (0.5,)), method="gradcam",
                                 box_threshold=0.5)
    assert explanation.heatmap.shape == (128, 64) and explanation.class_name == "Nodule"
    assert explanation.boxes[0].corners() == (8, 32, 24, 64)
    x, y = explanation.peak
    assert 8 <= x < 24 and 32 <= y < 64

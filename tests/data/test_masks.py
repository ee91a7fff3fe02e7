"""Segmentation masks beside their images: paired by name, left out with their reason unless kept, their regions
read as boxes; binary pixels alone leave an image in."""

import numpy as np
import pytest
from PIL import Image

from medclass.data import open_dataset
from medclass.data.audit import audit_dataset
from medclass.data.base import Sample
from medclass.data.masks import find_masks, mask_boxes, with_mask_boxes


def save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)
    return path


def texture(seed, size=16):
    return np.random.default_rng(seed).integers(0, 256, (size, size))


def test_masks_pair_with_the_image_of_their_stem_in_the_same_folder():
    names = ["a/benign (1).png", "a/benign (1)_mask.png", "a/benign (1)_mask_1.png", "a/x.jpg", "a/x-seg.png",
             "a/y.png", "a/y_segmentation.png", "b/benign (1)_mask.png", "a/unmasked.png", "a/mask_003.png"]
    of_image, orphans = find_masks([Sample(name, {"label": "a"}) for name in names])
    assert of_image == {"a/benign (1).png": ["a/benign (1)_mask.png", "a/benign (1)_mask_1.png"],
                        "a/x.jpg": ["a/x-seg.png"], "a/y.png": ["a/y_segmentation.png"]}
    assert orphans == ["b/benign (1)_mask.png"]  # its image is in another folder


def test_folder_with_masks_leaves_them_out_unless_kept(tmp_path):
    for label in ("benign", "normal"):
        for i in range(3):
            save(tmp_path / label / f"{label} ({i}).png", texture(i))
            save(tmp_path / label / f"{label} ({i})_mask.png", np.zeros((16, 16)))
    save(tmp_path / "benign" / "lost_mask.png", np.zeros((16, 16)))
    data = open_dataset(tmp_path)
    assert len(data) == 6 and not any("mask" in s.source.rsplit("/", 1)[1] for s in data.samples)
    reasons = {r["source"].rsplit("/", 1)[1]: r["reason"] for r in data.meta["excluded"]}
    assert len(reasons) == 7 and reasons["benign (0)_mask.png"] == "segmentation mask of benign (0).png"
    assert reasons["lost_mask.png"] == "segmentation mask, image missing (no lost.* beside it)"
    kept = open_dataset(tmp_path, keep_masks=True)
    assert len(kept) == 13 and "excluded" not in kept.meta


def test_without_any_pair_mask_like_names_and_binary_images_stay_and_are_reported(tmp_path):
    """Binary pixels alone are not enough to drop an image (a CSV may list binary images on purpose); nor is a
    mask-like name in data whose masks pair with nothing. The audit names both."""
    rows = ["image,label"]
    for i in range(6):
        label = "ab"[i % 2]
        save(tmp_path / f"img{i}.png", texture(i))
        rows.append(f"img{i}.png,{label}")
    save(tmp_path / "blank.png", np.zeros((16, 16)))
    save(tmp_path / "case_seg.png", np.where(texture(9) > 128, 255, 0))
    rows += ["blank.png,a", "case_seg.png,b"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = open_dataset(tmp_path / "labels.csv")
    assert len(data) == 8 and "excluded" not in data.meta
    flagged = {m["path"].rsplit("/", 1)[1] for m in audit_dataset(data)["masks"]}
    assert flagged == {"blank.png", "case_seg.png"}


def test_mask_regions_become_the_images_boxes(tmp_path):
    mask = np.zeros((20, 30))
    mask[2:6, 3:9] = 255
    mask[10:19, 20:28] = 255
    save(tmp_path / "c" / "x_mask.png", mask)
    second = np.zeros((20, 30))
    second[0:2, 0:2] = 1  # a 0/1 mask
    save(tmp_path / "c" / "x_mask_1.png", second)
    save(tmp_path / "c" / "x.png", texture(1, 20)[:, :20].repeat(2, 1)[:, :30])
    save(tmp_path / "d" / "y.png", texture(2))
    save(tmp_path / "d" / "y_mask.png", np.zeros((16, 16)))
    data = with_mask_boxes(open_dataset(tmp_path))
    boxes = {s.source.rsplit("/", 1)[1]: [(b.label, b.x0, b.y0, b.x1, b.y1) for b in s.boxes] for s in data.samples}
    assert boxes["x.png"] == [("c", 3, 2, 9, 6), ("c", 20, 10, 28, 19), ("c", 0, 0, 2, 2)]
    assert boxes["y.png"] == []  # an all-black mask: no lesion, no box
    assert mask_boxes([str(tmp_path / "d" / "y_mask.png")], "d") == ()


@pytest.mark.parametrize("keep", [False, True])
def test_split_file_round_trip_keeps_the_masks_excluded_with_their_reason(tmp_path, keep):
    from medclass.data.splits import load_splits, make_splits, save_splits

    for label in ("a", "b"):
        for i in range(10):
            save(tmp_path / "data" / label / f"{label}{i}.png", texture(i + 20 * (label == "b")))
            save(tmp_path / "data" / label / f"{label}{i}_mask.png", np.zeros((16, 16)))
    data = open_dataset(tmp_path / "data", keep_masks=keep or None)
    save_splits(make_splits(data, group_duplicates=False), tmp_path / "s.csv")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert len(lines) == 41 and (lines[0].endswith(",reason") != keep)
    reloaded = load_splits(open_dataset(tmp_path / "data", keep_masks=keep or None), tmp_path / "s.csv")
    assert len(reloaded) == (40 if keep else 20) and len(reloaded.meta.get("excluded", [])) == (0 if keep else 20)

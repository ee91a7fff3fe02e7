"""One explanation option set: parsed and refused alike wherever it is given, its polarity from the modality."""

import numpy as np
import pytest

from medclass.data.demo import phantom
from medclass.core.errors import MedclassError
from medclass.explain.boxes import otsu_boxes
from medclass.explain.options import FLAG_NAMES, FORM_NAMES, ExplainOptions, polarity_for


def test_options_parse_text_and_name_what_the_user_typed_when_refused():
    assert ExplainOptions.parse("OTSU", " dark ", "0.3") == ExplainOptions("otsu", "dark", 0.3)
    assert ExplainOptions.parse(None, "", "") == ExplainOptions("gradcam", None, 0.5)
    for args, message in (((("lime",)), "--explain must be one of gradcam, gradcam++"),
                          (("otsu", "dim"), "--polarity must be one of auto, dark, bright; got 'dim'"),
                          (("gradcam", None, "1.5"), "--box-threshold must be a share of the heatmap's maximum"),
                          (("gradcam", None, "half"), "--box-threshold must be a number between 0 and 1")):
        with pytest.raises(MedclassError, match=message):
            ExplainOptions.parse(*args, names=FLAG_NAMES)
    with pytest.raises(MedclassError, match="^polarity must be one of"):
        ExplainOptions.parse("otsu", "dim", names=FORM_NAMES)
    with pytest.raises(MedclassError, match="^method must be one of"):
        ExplainOptions("lime")


def test_polarity_comes_from_the_modality_unless_given():
    assert polarity_for("ultrasound") == "dark" and polarity_for("xray") == "bright"
    assert polarity_for("mri") == polarity_for(None) == "auto"
    assert ExplainOptions("otsu").resolved("ultrasound").polarity == "dark"
    assert ExplainOptions("otsu", "bright").resolved("ultrasound").polarity == "bright"


def hit(box, truth) -> bool:
    x, y = box.centre
    return truth[0] <= x < truth[2] and truth[1] <= y < truth[3]


def test_otsu_auto_finds_ultrasound_lesions_about_as_often_as_dark_not_the_tissue_band():
    """Ultrasound-like phantoms (medclass.data.demo: bright tissue layers at the top, darker depths, a dark lesion
    inside): `auto` once boxed the bright band that lines the top edge; its best box now holds the lesion's centre
    about as often as `dark`'s, far more often than `bright`'s."""
    rng = np.random.default_rng(11)
    images = [phantom(rng, label, 48) for label in ("benign", "malignant") for _ in range(30)]
    rates = {polarity: np.mean([hit(otsu_boxes(pixels, polarity)[0], truth) for pixels, truth in images])
             for polarity in ("auto", "dark", "bright")}
    assert rates["auto"] >= rates["dark"] - 0.1 and rates["auto"] > rates["bright"] + 0.2, rates
    on_top_edge = np.mean([otsu_boxes(pixels, "auto")[0].y0 == 0 for pixels, _ in images])
    assert on_top_edge < 0.5

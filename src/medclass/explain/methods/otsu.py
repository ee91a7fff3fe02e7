"""Classic boxes without a model: Otsu's threshold and contours (explain/boxes.py `otsu_boxes`), each explanation
labelled with the prediction it sits beside."""

from __future__ import annotations

import math

from medclass.explain.explainer import Explainer, Explanation, register_method

OTSU = "otsu"


class OtsuExplainer(Explainer):
    """Boxes of the image alone; the task, class and probability shown are the prediction's (`proba`), or the
    class asked for. `options.polarity`: the side of the threshold (None: auto)."""

    def explain(self, pictures, *, batch=None, proba=None, task=None, class_name=None) -> list[Explanation]:
        from medclass.explain.boxes import otsu_boxes  # OpenCV: only when explaining
        from medclass.explain.targets import explained_output

        polarity = self.options.polarity or "auto"
        rows = proba if proba is not None else [None] * len(pictures)
        explained = []
        for picture, row in zip(pictures, rows):
            head, index, output = explained_output(self.heads, row, task, class_name)
            boxes = otsu_boxes(picture, polarity, label=head.classes[index])
            peak = boxes[0].centre if boxes else (picture.width / 2, picture.height / 2)
            probability = float(row[output]) if row is not None else math.nan  # no prediction to show
            explained.append(Explanation(None, head.name, head.classes[index], output, probability, self.method,
                                         boxes, peak, polarity))
        return explained


register_method(OTSU, OtsuExplainer, uses_network=False, summary="classic boxes")

"""The CAM family, computed by pytorch-grad-cam (explain/cam.py `CamExplainer`): each name and its class there,
registered with the class's name (`args`), so nothing of pytorch-grad-cam loads before a CAM is asked for.

Only those that need one forward and one backward pass: Score-CAM and Ablation-CAM re-run the network per channel.
gradcam, the first, is the default method.
"""

from __future__ import annotations

from medclass.explain.explainer import register_method

CAM_CLASSES = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM",
               "layercam": "LayerCAM", "hirescam": "HiResCAM", "eigencam": "EigenCAM",
               "eigengradcam": "EigenGradCAM", "gradcam-elementwise": "GradCAMElementWise"}


def build_cam(parts, options, cam_class: str):
    from medclass.explain.cam import CamExplainer  # torch, OpenCV and pytorch-grad-cam: only when explaining

    return CamExplainer(parts, options, cam_class=cam_class)


for _name, _cam_class in CAM_CLASSES.items():
    register_method(_name, build_cam, uses_network=True, args={"cam_class": _cam_class})

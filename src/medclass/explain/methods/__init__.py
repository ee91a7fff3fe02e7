"""The built-in explanation methods, one plug-in module each (a family, such as the CAMs, may share one): every
module here is imported on the first lookup of `medclass.explain.explainer.EXPLAINERS` and registers its methods
with `register_method`. Methods are listed in the order of their modules' names, then of registration.

Keep these modules light (no PyTorch, OpenCV or pytorch-grad-cam at import): the command line imports them for
its help text. What a method needs is imported when its explainer is built.
"""

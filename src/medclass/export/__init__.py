"""Exports for other runtimes (ONNX Runtime, ncnn) and int8 quantisation. Each runtime is one module here that
registers its `BackendEntry` in inference/backends.py `BACKENDS` on import; the registry imports every module of
this package on its first lookup, so a new module is all a new backend takes.

The built-in backends are imported first, in the order help lists them (after torch); any other module of the
package registers after them. Like every module here, they import PyTorch and their runtime inside functions only:
the command line loads the registry for its help text.
"""

from medclass.export import onnx, ncnn  # noqa: F401  (registers them, in this order)

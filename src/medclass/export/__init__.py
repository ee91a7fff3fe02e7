"""Exports for other runtimes (ONNX Runtime, ncnn) and int8 quantisation; each backend module registers itself
(inference/backends.py `BACKENDS`)."""

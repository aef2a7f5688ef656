"""onnxruntime, as both network ports run it: one place for its session settings.

The CNN detector (:mod:`facecluster.detect.mmod`) and the encoder's ResNet
(:mod:`facecluster.embed.resnet`) build their ONNX graphs in memory from dlib's own
weight files and run them here, one thread per session (the tool runs one
worker process per core).  Both fall back to numpy where onnxruntime is
missing.  Importing this module imports neither onnx nor onnxruntime.
"""

from __future__ import annotations

from typing import Callable

BACKENDS = ("onnxruntime", "numpy")


def default_backend() -> str:
    """onnxruntime where it (and onnx, which builds the graphs) can be imported, else
    numpy; finding them imports neither."""
    import importlib.util

    found = all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))
    return "onnxruntime" if found else "numpy"


def session(model: bytes, threads: int, *, shapes_vary: bool = False):
    """An onnxruntime CPU session for the serialized ONNX ``model``.

    ``threads``: its thread count, fixed when it is made (numpy's BLAS setting
    does not reach it).  ``shapes_vary``: the input size changes from call to
    call (every photo has its own), so no memory is planned per shape.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = not shapes_vary
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def cached_session(name: str, version: int, weights_file: str, build: Callable[[], bytes], threads: int):
    """:func:`session` of the graph ``build()`` makes from ``weights_file``, the graph
    kept on disk between runs (:mod:`.model_cache`: a 22 MB read instead of parsing
    dlib's file, importing onnx and serializing a graph); ``version`` is the graph's
    form, so one kept by other code is never used."""
    from . import cache as model_cache

    return model_cache.kept(f"{name}.onnx", f"graph v{version}|{model_cache.file_key(weights_file)}",
                            lambda path: path.write_bytes(build()),
                            lambda path: session(path.read_bytes(), threads))

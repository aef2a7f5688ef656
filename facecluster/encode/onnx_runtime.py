"""onnxruntime, as both network ports run it: one place for its session settings.

The CNN detector (:mod:`.mmod_numpy`) and the encoder's ResNet
(:mod:`.fast_encoder`) build their ONNX graphs in memory from dlib's own
weight files and run them here, one thread per session (the tool runs one
worker process per core).  Both fall back to numpy where onnxruntime is
missing.  Importing this module imports neither onnx nor onnxruntime.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
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


# Bump when either port's graph changes shape, so graphs kept on disk are rebuilt.
GRAPH_VERSION = 1


def cache_folder() -> Path:
    """Where built graphs are kept: ``$XDG_CACHE_HOME/facecluster`` (default ``~/.cache/facecluster``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facecluster"


def cached_session(name: str, weights_file: str, build: Callable[[], bytes], threads: int):
    """:func:`session` of the graph ``build()`` makes from ``weights_file``, the graph
    kept on disk between runs (:func:`cached_model`); one found damaged is built again."""
    try:
        return session(cached_model(name, weights_file, build), threads)
    except Exception:  # onnxruntime's own errors for a graph it cannot load (a damaged file)
        return session(cached_model(name, weights_file, build, rebuild=True), threads)


def cached_model(name: str, weights_file: str, build: Callable[[], bytes], rebuild: bool = False) -> bytes:
    """The serialized ONNX graph ``build()`` makes from ``weights_file``, kept on disk.

    The graph is a pure function of the weight file, so it is stored under a key
    of the file's real path, size and modification time and :data:`GRAPH_VERSION`,
    and read back on later runs (a 22 MB read instead of parsing dlib's file and
    serializing a graph).  Where the cache cannot be read or written the graph
    is simply built, every time; ``rebuild`` replaces what is kept.
    """
    info = os.stat(weights_file)
    key = f"{GRAPH_VERSION}|{os.path.realpath(weights_file)}|{info.st_size}|{info.st_mtime_ns}"
    path = cache_folder() / f"{name}-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}.onnx"
    if not rebuild:
        try:
            return path.read_bytes()
        except OSError:
            pass
    model = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{name}-", delete=False) as handle:
            handle.write(model)
        os.replace(handle.name, path)  # whole or not at all, whichever worker finishes first
    except OSError:
        pass
    return model

"""dlib's face-recognition ResNet, run outside dlib: the same 128-d encodings, faster.

``dlib.face_recognition_model_v1.compute_face_descriptor`` is the largest cost
of a run: the ``dlib-bin`` wheel is built without BLAS, so every convolution of
its 29-layer ResNet goes through dlib's own matrix code (~80-130 ms per face on
one core).  This module reads the very same weights from
``dlib_face_recognition_resnet_model_v1.dat`` and evaluates the network in
float32, giving encodings that match dlib's to about 1e-6 (the tests hold every
face to 1e-4), with one of two backends:

- ``onnxruntime`` (the default where it is installed): the network as one ONNX
  graph built in memory (``onnx.helper``; input the uint8 chips themselves,
  normalized in the graph), run by an onnxruntime session with one thread:
  ~5.3 ms a chip here.  The built graph is kept on disk between runs
  (:mod:`.model_cache`).
- ``numpy``: im2col + ``numpy`` matrix products (OpenBLAS): ~9.3 ms a chip.

Only the network is replaced.  Face chips are still cut by dlib
(:func:`face_chips`, the same ``get_face_chip_details(shape, 150, 0.25)`` +
``extract_image_chips`` that ``compute_face_descriptor`` uses), so::

    face_recognition.face_encodings(rgb, boxes)        # dlib, num_jitters=1
    encode_chips(face_chips(rgb, shapes))              # this module

agree for the same 5-point shapes.  ``num_jitters > 1`` (random jitter) is not
reproduced here.

The encoder is made once per process, lazily, on the first
:func:`load_encoder` / :func:`encode_chips` call (the model file is parsed
then, unless its onnxruntime graph is already kept); importing this module
loads nothing (neither onnxruntime nor dlib).  The tool runs one worker
process per core, so the onnxruntime session has one thread, and the numpy
path is normally wrapped in ``threadpoolctl.threadpool_limits(1)``.  The model
file itself is read by :mod:`facecluster.embed.resnet_file`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from ..models import onnx_runtime
from ..models.dlib_format import ModelFormatError, fold_affine
from ..records import ENCODING_SIZE
from .resnet_file import CHIP_SIZE, Layer, parse
from ..models.onnx_runtime import BACKENDS, default_backend

CHIP_PADDING = 0.25
# Chips per network call, measured best on a 2-core AVX2 box: numpy's im2col falls out of
# cache in bigger batches; onnxruntime gains up to 8 (5.2 ms a chip against 5.9 in pairs).
DEFAULT_BATCH = {"onnxruntime": 8, "numpy": 4}

__all__ = [
    "BACKENDS",
    "CHIP_SIZE",
    "CHIP_PADDING",
    "FastEncoder",
    "ModelFormatError",
    "load_encoder",
    "encode_chips",
    "face_chips",
    "default_model_path",
]


def default_model_path() -> str:
    from ..models.dlib_models import model_files

    return model_files().face_recognition_model_location()



# --------------------------------------------------------------------------
# The network as a short program over NHWC float32 arrays


@dataclass
class _Conv:
    w: np.ndarray  # (kh*kw*cin, cout) float32, C-contiguous, affine folded in
    b: np.ndarray  # (cout,) float32
    k: int
    stride: int
    pad: int
    cin: int
    cout: int


def _fold(con: Layer, aff: Layer) -> _Conv:
    cout, cin, kh, kw = con.params["w"].shape
    sy, sx = con.params["stride"]
    py, px = con.params["pad"]
    if kh != kw or sy != sx or py != px:
        raise ModelFormatError("only square kernels / strides / padding are supported")
    w, b = fold_affine(con.params["w"], con.params["b"], aff.params["gamma"], aff.params["beta"])
    wf = w.transpose(2, 3, 1, 0).reshape(kh * kw * cin, cout)
    return _Conv(np.ascontiguousarray(wf, dtype=np.float32), b.astype(np.float32), kh, sy, py, cin, cout)


def _build_program(layers: list[Layer]):
    kinds = [l.kind for l in layers]
    i = 0

    def take(*expected):
        nonlocal i
        got = tuple(kinds[i : i + len(expected)])
        if got != expected:
            raise ModelFormatError(f"unexpected layer sequence at {i}: {got} != {expected}")
        out = layers[i : i + len(expected)]
        i += len(expected)
        return out

    con, aff, _, pool = take("con", "affine", "relu", "maxpool")
    stem = _fold(con, aff)
    mp = pool.params
    if mp["size"] != (3, 3) or mp["stride"] != (2, 2) or mp["pad"] != (0, 0):
        raise ModelFormatError("unexpected max_pool")
    blocks = []
    while i < len(layers) and kinds[i] == "con":
        c1, a1, _, c2, a2 = take("con", "affine", "relu", "con", "affine")
        down = i < len(kinds) and kinds[i] == "avgpool"
        if down:
            (ap,) = take("avgpool")
            p = ap.params
            if p["size"] != (2, 2) or p["stride"] != (2, 2) or p["pad"] != (0, 0):
                raise ModelFormatError("unexpected residual avg_pool")
        take("add_prev", "relu")
        blocks.append((_fold(c1, a1), _fold(c2, a2), down))
    (gp,) = take("avgpool")
    if gp.params["size"] != (0, 0):
        raise ModelFormatError("expected avg_pool_everything")
    (fc,) = take("fc")
    if i != len(layers):
        raise ModelFormatError("trailing layers")
    return stem, blocks, np.ascontiguousarray(fc.params["w"], dtype=np.float32)


def _im2col(x: np.ndarray, k: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    """(n, h, w, c) -> (n*ho*wo, k*k*c) patches, ordered (ky, kx, c)."""
    n, h, w, c = x.shape
    if pad:
        xp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype)
        xp[:, pad : pad + h, pad : pad + w] = x
        x = xp
        h += 2 * pad
        w += 2 * pad
    ho = (h - k) // stride + 1
    wo = (w - k) // stride + 1
    s0, s1, s2, s3 = x.strides
    view = np.lib.stride_tricks.as_strided(
        x, (n, ho, wo, k, k, c), (s0, s1 * stride, s2 * stride, s1, s2, s3), writeable=False
    )
    return view.reshape(n * ho * wo, k * k * c), ho, wo


def _conv(x: np.ndarray, cv: _Conv, relu: bool) -> np.ndarray:
    n = x.shape[0]
    cols, ho, wo = _im2col(x, cv.k, cv.stride, cv.pad)
    out = cols @ cv.w
    out += cv.b
    if relu:
        np.maximum(out, 0, out=out)
    return out.reshape(n, ho, wo, cv.cout)


def _max_pool_3x3_s2(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    ho = (h - 3) // 2 + 1
    wo = (w - 3) // 2 + 1
    # rows first, then columns: max over 3 taps each
    r = np.maximum(np.maximum(x[:, 0 : 2 * ho - 1 : 2], x[:, 1 : 2 * ho : 2]), x[:, 2 : 2 * ho + 1 : 2])
    return np.maximum(np.maximum(r[:, :, 0 : 2 * wo - 1 : 2], r[:, :, 1 : 2 * wo : 2]), r[:, :, 2 : 2 * wo + 1 : 2])


def _avg_pool_2x2_s2(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    ho, wo = (h - 2) // 2 + 1, (w - 2) // 2 + 1
    x = x[:, : 2 * ho, : 2 * wo]
    s = x[:, 0::2, 0::2] + x[:, 0::2, 1::2]
    s += x[:, 1::2, 0::2]
    s += x[:, 1::2, 1::2]
    s *= np.float32(0.25)
    return s


# --------------------------------------------------------------------------
# The same program as an ONNX graph, for onnxruntime


def _conv_out(shape: tuple[int, int, int], cv: _Conv) -> tuple[int, int, int]:
    _, h, w = shape
    return cv.cout, (h + 2 * cv.pad - cv.k) // cv.stride + 1, (w + 2 * cv.pad - cv.k) // cv.stride + 1


# The graph's form: bump it whenever _onnx_model changes, so graphs kept on disk by
# earlier code (keyed by it and by the weight file) are not used.
_GRAPH_VERSION = 1


def _onnx_model(mean: np.ndarray, stem: _Conv, blocks: list, fc: np.ndarray) -> bytes:
    """The network as a serialized ONNX graph: input ``chips`` (n, 150, 150, 3)
    uint8 RGB, normalized in the graph as dlib does; output ``y`` (n, 128).
    Shapes are fixed by the chip size, so each residual addition's zero padding
    (see :meth:`FastEncoder._forward`) is worked out here, once, as Pad nodes."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    weights: list = []

    def node(op: str, inputs: list[str], **attributes) -> str:
        name = f"{op.lower()}{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [name], **attributes))
        return name

    def constant(array: np.ndarray) -> str:
        name = f"c{len(weights)}"
        weights.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def conv(x: str, cv: _Conv, relu: bool) -> str:
        w = cv.w.reshape(cv.k, cv.k, cv.cin, cv.cout).transpose(3, 2, 0, 1)  # -> (out, in, kh, kw)
        y = node("Conv", [x, constant(w), constant(cv.b)], kernel_shape=[cv.k] * 2, strides=[cv.stride] * 2, pads=[cv.pad] * 4)
        return node("Relu", [y]) if relu else y

    def padded(x: str, shape: tuple, target: tuple) -> str:
        if shape == target:
            return x
        after = [t - s for s, t in zip(shape, target)]
        return node("Pad", [x, constant(np.array([0, 0, 0, 0, 0, *after], dtype=np.int64))])

    # input_rgb_image_sized: (pixel - mean) / 256 per channel, in float32, then NCHW
    x = node("Cast", ["chips"], to=TensorProto.FLOAT)
    x = node("Mul", [node("Sub", [x, constant(mean.astype(np.float32))]), constant(np.array(1 / 256, dtype=np.float32))])
    x = conv(node("Transpose", [x], perm=[0, 3, 1, 2]), stem, relu=True)
    shape = _conv_out((3, CHIP_SIZE, CHIP_SIZE), stem)
    x = node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    shape = (shape[0], (shape[1] - 3) // 2 + 1, (shape[2] - 3) // 2 + 1)
    for c1, c2, down in blocks:
        y = conv(conv(x, c1, relu=True), c2, relu=False)
        y_shape = _conv_out(_conv_out(shape, c1), c2)
        skip, skip_shape = x, shape
        if down:
            skip = node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
            skip_shape = (shape[0], (shape[1] - 2) // 2 + 1, (shape[2] - 2) // 2 + 1)
        shape = tuple(max(a, b) for a, b in zip(y_shape, skip_shape))
        x = node("Relu", [node("Add", [padded(y, y_shape, shape), padded(skip, skip_shape, shape)])])
    x = node("Flatten", [node("GlobalAveragePool", [x])])
    nodes.append(helper.make_node("MatMul", [x, constant(fc)], ["y"]))
    graph = helper.make_graph(
        nodes,
        "dlib_face_recognition_resnet",
        [helper.make_tensor_value_info("chips", TensorProto.UINT8, ["n", CHIP_SIZE, CHIP_SIZE, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", ENCODING_SIZE])],
        weights,
    )
    # Not checked here (onnx.checker costs ~0.08 s of every run's start); the tests check it.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()



class FastEncoder:
    """dlib's ``face_recognition_model_v1`` network, evaluated with onnxruntime or numpy.

    ``backend``: one of :data:`BACKENDS`, or None for onnxruntime where it is
    installed.  ``threads``: onnxruntime's thread count (one: workers run one
    per core).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, backend: str | None = None, threads: int = 1):
        backend = backend or default_backend()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.model_path = os.fspath(model_path) if model_path is not None else default_model_path()
        self.backend = backend
        self._session = None
        if backend == "onnxruntime":
            # The graph is kept on disk between runs: building it (and importing onnx) would
            # add ~0.2 s to every run's start.
            self._session = onnx_runtime.cached_session("dlib-resnet", _GRAPH_VERSION, self.model_path,
                                                        lambda: _onnx_model(*self._program()), threads)
        else:
            self._mean, self._stem, self._blocks, self._fc = self._program()

    def _program(self) -> tuple[np.ndarray, _Conv, list, np.ndarray]:
        """The model file's channel means, stem, residual blocks and final matrix."""
        with open(self.model_path, "rb") as f:
            data = f.read()
        try:
            means, layers = parse(data)
            return (np.array(means, dtype=np.float32), *_build_program(layers))
        except ModelFormatError as exc:
            raise ModelFormatError(f"{self.model_path}: {exc}") from None
        except (IndexError, ValueError, UnicodeDecodeError) as exc:  # garbage in the file
            raise ModelFormatError(f"{self.model_path}: not a dlib face recognition model ({exc})") from None

    def _forward(self, chips: np.ndarray) -> np.ndarray:
        if self._session is not None:
            return self._session.run(None, {"chips": np.ascontiguousarray(chips)})[0]
        # input_rgb_image_sized: (pixel - mean) / 256, per channel, in float32
        x = chips.astype(np.float32)
        x -= self._mean
        x *= np.float32(1.0 / 256.0)
        x = _conv(x, self._stem, relu=True)
        x = _max_pool_3x3_s2(x)
        for c1, c2, down in self._blocks:
            y = _conv(x, c1, relu=True)
            y = _conv(y, c2, relu=False)
            skip = _avg_pool_2x2_s2(x) if down else x
            # add_prev: the output takes the larger of each dimension and the
            # smaller tensor is added into its top-left corner (zeros elsewhere)
            if skip.shape == y.shape:
                y += skip
            else:
                shape = tuple(max(a, b) for a, b in zip(y.shape, skip.shape))
                z = np.zeros(shape, dtype=np.float32)
                z[:, : y.shape[1], : y.shape[2], : y.shape[3]] = y
                z[:, : skip.shape[1], : skip.shape[2], : skip.shape[3]] += skip
                y = z
            np.maximum(y, 0, out=y)
            x = y
        feat = x.mean(axis=(1, 2), dtype=np.float32)  # avg_pool_everything
        return feat @ self._fc

    def encode_chips(self, chips: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """``(n, 150, 150, 3)`` uint8 RGB chips -> ``(n, 128)`` float64 encodings."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"expected (n, 150, 150, 3) RGB chips, got shape {chips.shape}")
        if chips.dtype != np.uint8:
            raise ValueError(f"expected uint8 chips, got {chips.dtype}")
        out = np.empty((chips.shape[0], ENCODING_SIZE), dtype=np.float64)
        step = max(1, int(batch_size or DEFAULT_BATCH[self.backend]))
        for start in range(0, chips.shape[0], step):
            out[start : start + step] = self._forward(chips[start : start + step])
        return out


_ENCODERS: dict[tuple[str, str], FastEncoder] = {}
_LOCK = threading.Lock()


def load_encoder(model_path: str | os.PathLike | None = None, backend: str | None = None) -> FastEncoder:
    """The process-wide encoder for ``model_path`` (default: face_recognition_models')
    on ``backend`` (default: :func:`default_backend`), made on first use."""
    path = os.fspath(model_path) if model_path is not None else default_model_path()
    key = (path, backend or default_backend())
    with _LOCK:
        enc = _ENCODERS.get(key)
        if enc is None:
            enc = _ENCODERS[key] = FastEncoder(path, key[1])
        return enc


def encode_chips(chips: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """``(n, 150, 150, 3)`` uint8 RGB chips -> ``(n, 128)`` float64, like dlib's
    ``compute_face_descriptor`` with ``num_jitters <= 1``."""
    return load_encoder().encode_chips(chips, batch_size=batch_size)


def face_chips(rgb: np.ndarray, shapes) -> np.ndarray:
    """Cut the aligned 150x150 chips ``compute_face_descriptor`` would use.

    ``shapes`` are dlib ``full_object_detection`` (5- or 68-point) for faces
    in ``rgb`` (an ``(h, w, 3)`` uint8 RGB array).  Returns ``(n, 150, 150, 3)``
    uint8.
    """
    import dlib

    shapes = list(shapes)
    if not shapes:
        return np.empty((0, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    dets = dlib.full_object_detections()
    for s in shapes:
        dets.append(s)
    chips = dlib.get_face_chips(rgb, dets, size=CHIP_SIZE, padding=CHIP_PADDING)
    return np.stack([np.asarray(c, dtype=np.uint8) for c in chips])

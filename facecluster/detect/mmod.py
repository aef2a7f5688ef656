"""dlib's CNN (MMOD) face detector, run with onnxruntime: the same boxes, much faster.

``dlib.cnn_face_detection_model_v1(path)(image, upsample_num_times)`` runs
dlib's ``mmod_human_face_detector.dat`` network (King, "Max-Margin Object
Detection", arXiv:1502.00046; dlib's examples/dnn_mmod_face_detection_ex.cpp).
The ``dlib-bin`` wheel has no BLAS, so that takes ~1.5 s for a 250x250 photo
upsampled once and ~6 s for a web photo.  This module evaluates the same
weights (parsed by :mod:`facecluster.detect.mmod_file`) and reproduces every
step around the network from dlib's source:

1. tools/python/src/cnn_face_detector.cpp: ``pyramid_up`` the image
   ``upsample_num_times`` (``pyramid_down<2>``), run the net, map the boxes
   back with ``rect_down``;
2. dlib/dnn/input.h ``input_rgb_image_pyramid<pyramid_down<6>>``: (pixel -
   mean) / 256 into the top-left tile of a zeroed tensor, then each smaller
   pyramid level (5/6 of the previous, bilinear) tiled beside it
   (dlib/image_transforms/image_pyramid.h, ``compute_tiled_image_pyramid_details``);
3. the convolutions (dlib/dnn/layers.h; affine folded in);
4. dlib/dnn/loss.h ``loss_mmod_::to_label``: every output cell scoring above
   ``adjust_threshold`` becomes the detector window centred on the cell's
   input position, mapped from its pyramid tile back to the image, rounded,
   then greedy non-max suppression by descending score.

Bilinear resampling is done by ``dlib.resize_image`` -- the very routine the
C++ code calls -- so the network input is bit-identical to dlib's.

The convolutions, where all the time goes, have two backends:

- ``onnxruntime`` (the default): the six 5x5 layers as one ONNX graph built in
  memory (``onnx.helper``; input (1, 3, h, w) of any size, so one session
  serves every photo) and run by an onnxruntime session with one thread.
  Hidden channels are widened from 45 to 48 with zero filters so that every
  layer runs in onnxruntime's blocked NCHWc layout.  The 1-filter 9x9 scorer
  on top is done in numpy as 81 tap planes (one matmul, then shifted adds):
  ~6x faster than onnxruntime's convolution for one output channel;
- ``numpy``: im2col + float32 matmul per layer (OpenBLAS), used where
  onnxruntime is not installed; its thread count is numpy's BLAS setting
  (``threadpoolctl.threadpool_limits(1)`` in worker processes).

The score maps of the two agree to ~5e-6 and the boxes are identical.  One
thread, against dlib-bin (benchmarks/cnn_speed.py, docs/detection.md):
onnxruntime 16-21x, numpy 8-11x; onnxruntime is 1.7-2.2x the numpy path.
The same graph in OpenCV's DNN module (``cv2.dnn.readNetFromONNX``, one
thread) was tried too: 0.9-1.2x the numpy path, so it is not used.

The model is parsed, and the session made, once per process on first use;
importing loads nothing (neither dlib nor onnxruntime).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ..models import onnx_runtime
from .mmod_file import ConvLayer, MmodModel, parse
from .mmod_pyramid import overlaps, pyramid_up_size, rect_down_2, round_half_up, tile_layout, to_image
from ..models.onnx_runtime import BACKENDS, default_backend

__all__ = ["BACKENDS", "Detection", "MmodDetector", "default_backend", "default_model_path", "load_detector", "detect"]

_ROWS_PER_BLOCK = 1024  # im2col rows per matmul: measured best (512-1024) on a 2-core EPYC, keeps the patch block in cache


class Detection(NamedTuple):
    """A face box in dlib's inclusive pixel convention, with dlib's confidence."""

    left: int
    top: int
    right: int
    bottom: int
    confidence: float


def default_model_path() -> str:
    """``mmod_human_face_detector.dat`` from face_recognition_models."""
    from ..models.dlib_models import model_files

    return model_files().cnn_face_detector_model_location()


# --------------------------------------------------------------------------
# The network over (h, w, c) float32 arrays


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, layer: ConvLayer) -> np.ndarray:
    """One convolution (+ relu) by im2col + matmul, in blocks of output rows.

    ``x`` is (h, w, cin); ``w`` is the (k*k*cin, cout) matrix.  dlib's
    output size: 1 + (in + 2*pad - k) // stride.
    """
    k, s, p = layer.weights.shape[2], layer.stride, layer.pad
    if p:
        x = np.pad(x, ((p, p), (p, p), (0, 0)))
    h, wd, c = x.shape
    ho, wo = (h - k) // s + 1, (wd - k) // s + 1
    out = np.empty((ho, wo, w.shape[1]), dtype=np.float32)
    if ho <= 0 or wo <= 0:
        return out
    s0, s1, s2 = x.strides
    patches = np.lib.stride_tricks.as_strided(x, (ho, wo, k, k, c), (s0 * s, s1 * s, s0, s1, s2), writeable=False)
    step = max(1, _ROWS_PER_BLOCK // wo)
    for r in range(0, ho, step):
        block = patches[r : r + step].reshape(-1, k * k * c)
        res = out[r : r + step].reshape(-1, w.shape[1])
        np.matmul(block, w, out=res)
        res += b
        if layer.relu:
            np.maximum(res, 0, out=res)
    return out


def _tap_matrix(layer: ConvLayer) -> np.ndarray:
    """``layer``'s weights as the (cout*k*k, cin) matrix :func:`_conv_by_taps` takes: rows (cout, ky, kx)."""
    return np.ascontiguousarray(layer.weights.transpose(0, 2, 3, 1).reshape(-1, layer.weights.shape[1]))


def _conv_by_taps(x: np.ndarray, taps: np.ndarray, b: np.ndarray, layer: ConvLayer) -> np.ndarray:
    """A stride-1 convolution with few outputs (the 1-filter 9x9 scorer) of a
    (cin, h, w) input, giving (cout, ho, wo).

    im2col would copy k*k*cin values per output for a single dot product;
    instead one matmul ``taps @ x`` with ``taps`` (cout*k*k, cin,
    :func:`_tap_matrix`) gives every tap's response as a whole plane, and the
    output adds the k*k planes, each shifted by its tap's offset and clipped at
    the border (the zero padding), so nothing is padded or gathered with a
    stride.  ~3x faster than the same on (h, w, c) arrays.
    """
    cout, _, k, _ = layer.weights.shape
    p = layer.pad
    c, h, w = x.shape
    ho, wo = h + 2 * p - k + 1, w + 2 * p - k + 1
    resp = (taps @ x.reshape(c, -1)).reshape(cout, k, k, h, w)
    out = np.empty((cout, max(ho, 0), max(wo, 0)), dtype=np.float32)
    out[:] = b[:, None, None]
    for ky in range(k):
        dy = ky - p  # out[y] takes resp[y + dy]
        y0, y1 = max(0, -dy), min(ho, h - dy)
        for kx in range(k):
            dx = kx - p
            x0, x1 = max(0, -dx), min(wo, w - dx)
            if y0 < y1 and x0 < x1:
                out[:, y0:y1, x0:x1] += resp[:, ky, kx, y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    if layer.relu:
        np.maximum(out, 0, out=out)
    return out


def _onnx_model(layers: list[ConvLayer]) -> bytes:
    """``layers`` as a serialized ONNX graph: Conv (+ Relu) each, input ``x``
    (1, cin, h, w) float32 of any h and w, output ``y``."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []
    name = "x"
    for i, layer in enumerate(layers):
        k = layer.weights.shape[2]
        weights += [numpy_helper.from_array(layer.weights, f"w{i}"), numpy_helper.from_array(layer.bias, f"b{i}")]
        conv = dict(kernel_shape=[k, k], strides=[layer.stride] * 2, pads=[layer.pad] * 4)
        nodes.append(helper.make_node("Conv", [name, f"w{i}", f"b{i}"], [f"conv{i}"], **conv))
        name = f"conv{i}"
        if layer.relu:
            nodes.append(helper.make_node("Relu", [name], [f"relu{i}"]))
            name = f"relu{i}"
    nodes[-1].output[0] = "y"
    cin, cout = layers[0].weights.shape[1], layers[-1].weights.shape[0]
    graph = helper.make_graph(
        nodes,
        "mmod",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, "oh", "ow"])],
        weights,
    )
    # Not checked here (onnx.checker adds to the start of the first CNN look); the tests check it.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def _output_size(layers: list[ConvLayer], rows: int, cols: int) -> tuple[int, int]:
    """The (rows, cols) the layers make of a (rows, cols) input; <= 0 if none."""
    for layer in layers:
        k = layer.weights.shape[2]
        rows = (rows + 2 * layer.pad - k) // layer.stride + 1
        cols = (cols + 2 * layer.pad - k) // layer.stride + 1
        if rows <= 0 or cols <= 0:
            return 0, 0
    return rows, cols


class _OrtLayers:
    """Convolution layers as one onnxruntime session: (cin, h, w) -> (cout, ho, wo).

    ``threads`` is the session's thread count, fixed when it is made (numpy's
    BLAS setting does not reach it).  Every photo has its own input size, so
    the session plans no memory per shape (``enable_mem_pattern``).
    """

    def __init__(self, layers: list[ConvLayer], threads: int) -> None:
        self.layers = layers
        self.cout = layers[-1].weights.shape[0]
        self.session = onnx_runtime.session(_onnx_model(layers), threads, shapes_vary=True)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        rows, cols = _output_size(self.layers, x.shape[1], x.shape[2])
        if rows <= 0:
            return np.zeros((self.cout, 0, 0), dtype=np.float32)
        return self.session.run(None, {"x": x[None]})[0][0]


def _receptive_centre(layers: tuple[ConvLayer, ...]) -> tuple[int, int]:
    """(scale, offset) with input = scale * output + offset.

    dlib's ``output_tensor_to_input_tensor``: each con_ maps p to
    p*stride - pad + k/2 (integer k/2), from the top layer down.
    """
    scale, offset = 1, 0
    for layer in reversed(layers):
        k = layer.weights.shape[2]
        offset = offset * layer.stride - layer.pad + k // 2
        scale *= layer.stride
    return scale, offset


_CHANNEL_MULTIPLE = 8  # see _widened
_ORT_CHANNEL_MULTIPLE = 16  # onnxruntime's blocked (NCHWc) convolutions take channels in blocks of 16 (AVX-512) or 8
_FEW_TAP_OUTPUTS = 128  # k*k*cout up to which _conv_by_taps beats im2col (measured: the 9x9 scorer)


def _widened(layers: tuple[ConvLayer, ...], multiple: int) -> list[ConvLayer]:
    """The same network with hidden channel counts rounded up to ``multiple``.

    The extra filters have zero weights and bias, so they output zeros and the
    next layer gives them zero weights: results are unchanged, but OpenBLAS
    runs the 45-column GEMMs faster as 48 columns (measured ~15%), and
    onnxruntime runs every layer in its blocked layout only when the channel
    counts are multiples of its block.
    """
    out: list[ConvLayer] = []
    extra_in = 0
    for i, l in enumerate(layers):
        cout = l.weights.shape[0]
        extra_out = 0 if i == len(layers) - 1 else -cout % multiple
        w = np.pad(l.weights, ((0, extra_out), (0, extra_in), (0, 0), (0, 0)))
        out.append(ConvLayer(w, np.pad(l.bias, (0, extra_out)), l.stride, l.pad, l.relu))
        extra_in = extra_out
    return out


def _few_taps(layer: ConvLayer) -> bool:
    """Whether ``layer`` is cheaper as tap planes than as a convolution (the 1-filter 9x9 scorer)."""
    cout, _, k, _ = layer.weights.shape
    return layer.stride == 1 and k * k * cout <= _FEW_TAP_OUTPUTS


def _step(layer: ConvLayer) -> Callable[[np.ndarray], np.ndarray]:
    """The fastest numpy evaluation of ``layer`` as a function of its (h, w, cin) input."""
    cout = layer.weights.shape[0]
    if _few_taps(layer):
        taps = _tap_matrix(layer)
        return lambda x: _conv_by_taps(np.ascontiguousarray(x.transpose(2, 0, 1)), taps, layer.bias, layer).transpose(1, 2, 0)
    mat = np.ascontiguousarray(layer.weights.transpose(2, 3, 1, 0).reshape(-1, cout))  # rows (ky, kx, cin)
    return functools.partial(_conv, w=mat, b=layer.bias, layer=layer)


def _numpy_network(layers: tuple[ConvLayer, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """The network in numpy: (3, h, w) input planes -> (rows, cols, windows) scores."""
    steps = [_step(l) for l in _widened(layers, _CHANNEL_MULTIPLE)]

    def run(planes: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(planes.transpose(1, 2, 0))
        for step in steps:
            x = step(x)
        return x

    return run


class _OrtNetwork:
    """The network in onnxruntime, but for a few-tap scorer on top, which numpy
    does ~6x faster as tap planes: (3, h, w) planes -> (rows, cols, windows) scores."""

    def __init__(self, layers: tuple[ConvLayer, ...], threads: int) -> None:
        wide = _widened(layers, _ORT_CHANNEL_MULTIPLE)
        self.scorer = wide.pop() if _few_taps(wide[-1]) and len(wide) > 1 else None
        self.body = _OrtLayers(wide, threads)
        if self.scorer is not None:
            self.taps = _tap_matrix(self.scorer)

    def __call__(self, planes: np.ndarray) -> np.ndarray:
        x = self.body(planes)
        if self.scorer is not None:
            x = _conv_by_taps(x, self.taps, self.scorer.bias, self.scorer)
        return x.transpose(1, 2, 0)


@dataclass
class _Program:
    model: MmodModel
    network: Callable[[np.ndarray], np.ndarray]
    scale: int
    offset: int


class MmodDetector:
    """``dlib.cnn_face_detection_model_v1`` evaluated with onnxruntime (or numpy).

    ``backend``: ``"onnxruntime"``, ``"numpy"``, or None for onnxruntime where
    it is installed.  ``threads``: onnxruntime's thread count (one: workers
    run one process per core); the numpy backend follows numpy's BLAS setting.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, backend: str | None = None, threads: int = 1) -> None:
        backend = backend or default_backend()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        path = os.fspath(model_path) if model_path is not None else default_model_path()
        with open(path, "rb") as f:
            model = parse(f.read())
        scale, offset = _receptive_centre(model.layers)
        network = _OrtNetwork(model.layers, threads) if backend == "onnxruntime" else _numpy_network(model.layers)
        self.model_path = path
        self.backend = backend
        self._p = _Program(model, network, scale, offset)

    def _tiled_input(self, rgb: np.ndarray) -> tuple[np.ndarray, list]:
        """``input_rgb_image_pyramid::to_tensor`` -> ((3, rows, cols) float32, level rects)."""
        import dlib

        m = self._p.model
        rects, nr, nc = tile_layout(rgb.shape[0], rgb.shape[1], m.pyramid_padding, m.pyramid_outer_padding)
        planes = np.zeros((3, nr, nc), dtype=np.float32)
        l, t, r, b = rects[0]
        for ch in range(3):
            plane = rgb[:, :, ch].astype(np.float32) - np.float32(m.means[ch])
            planes[ch, t : b + 1, l : r + 1] = plane * np.float32(1 / 256)
        for (l0, t0, r0, b0), (l1, t1, r1, b1) in zip(rects, rects[1:]):
            for ch in range(3):
                src = np.ascontiguousarray(planes[ch, t0 : b0 + 1, l0 : r0 + 1])
                planes[ch, t1 : b1 + 1, l1 : r1 + 1] = dlib.resize_image(src, b1 - t1 + 1, r1 - l1 + 1)
        return planes, rects

    def scores(self, rgb: np.ndarray) -> tuple[np.ndarray, list]:
        """The network's output map (rows, cols, windows) for ``rgb`` and the level rects."""
        planes, rects = self._tiled_input(rgb)
        return self._p.network(planes), rects

    def __call__(self, image: np.ndarray, upsample_num_times: int = 0, adjust_threshold: float = 0.0) -> list[Detection]:
        """Detect faces like ``cnn_face_detection_model_v1(image, upsample_num_times)``.

        ``image`` is (h, w, 3) uint8 RGB or (h, w) uint8 grayscale.  Returns
        :class:`Detection` boxes in ``image`` coordinates, highest confidence
        first.  ``adjust_threshold`` is loss_mmod's score threshold (0 in the
        python binding); lower finds more, less certain faces.
        """
        rgb = _as_rgb(image)
        for _ in range(upsample_num_times):
            import dlib

            rgb = dlib.resize_image(rgb, *pyramid_up_size(rgb.shape[0], rgb.shape[1]))
        if rgb.size == 0:
            return []
        out, rects = self.scores(rgb)
        return self._decode(out, rects, adjust_threshold, upsample_num_times)

    def _decode(self, out: np.ndarray, rects: list, threshold: float, upsample: int) -> list[Detection]:
        """``loss_mmod_::tensor_to_dets`` + non-max suppression + ``rect_down``."""
        m, p = self._p.model, self._p
        found = []
        for k, (width, height) in enumerate(m.windows):
            rows, cols = np.nonzero(out[:, :, k] > threshold)
            for r, c in zip(rows.tolist(), cols.tolist()):
                box = to_image(rects, c * p.scale + p.offset, r * p.scale + p.offset, width, height)
                found.append((float(out[r, c, k]), tuple(round_half_up(v) for v in box)))
        found.sort(key=lambda d: -d[0])
        kept: list[tuple[float, tuple]] = []
        for score, box in found:
            if not any(overlaps(b, box, m.nms_iou, m.nms_covered) for _, b in kept):
                kept.append((score, box))
        return [Detection(*rect_down_2(box, upsample), score) for score, box in kept]


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 3) RGB or (h, w) gray -> contiguous (h, w, 3) uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) RGB or (h, w) gray image, got shape {image.shape}")
    return np.ascontiguousarray(image)


@functools.cache
def _detector_at(path: str) -> MmodDetector:
    return MmodDetector(path)


def load_detector(model_path: str | os.PathLike | None = None) -> MmodDetector:
    """The process-wide detector for ``model_path`` (default: face_recognition_models'),
    parsed on first use."""
    return _detector_at(os.fspath(model_path) if model_path is not None else default_model_path())


def detect(image: np.ndarray, upsample_num_times: int = 0, adjust_threshold: float = 0.0) -> list[Detection]:
    """Faces in ``image`` (uint8 RGB or gray) as :class:`Detection` boxes, like
    ``dlib.cnn_face_detection_model_v1(...)(image, upsample_num_times)``."""
    return load_detector()(image, upsample_num_times, adjust_threshold)

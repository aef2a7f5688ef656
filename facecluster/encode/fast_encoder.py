"""dlib's face-recognition ResNet, run with numpy: the same 128-d encodings, faster.

``dlib.face_recognition_model_v1.compute_face_descriptor`` is the largest cost
of a run: the ``dlib-bin`` wheel is built without BLAS, so every convolution of
its 29-layer ResNet goes through dlib's own matrix code (~80-130 ms per face on
one core).  This module reads the very same weights from
``dlib_face_recognition_resnet_model_v1.dat`` and evaluates the network with
float32 ``numpy`` matrix products (OpenBLAS), giving encodings that match
dlib's to about 1e-6 (the tests hold every face to 1e-4).

Only the network is replaced.  Face chips are still cut by dlib
(:func:`face_chips`, the same ``get_face_chip_details(shape, 150, 0.25)`` +
``extract_image_chips`` that ``compute_face_descriptor`` uses), so::

    face_recognition.face_encodings(rgb, boxes)        # dlib, num_jitters=1
    encode_chips(face_chips(rgb, shapes))              # this module

agree for the same 5-point shapes.  ``num_jitters > 1`` (random jitter) is not
reproduced here.

The model file is parsed once per process, lazily, on the first
:func:`load_encoder` / :func:`encode_chips` call; importing this module loads
nothing.  Thread count is whatever numpy's BLAS is set to: the tool runs one
worker process per core, so callers normally wrap the work in
``threadpoolctl.threadpool_limits(1)``.

The file format (dlib/serialize.h, dlib/dnn/core.h, layers.h, input.h):

- integers: one header byte (low nibble = byte count, bit 7 = negative) and
  that many little-endian bytes;
- floats: a mantissa and an exponent integer (value = m * 2**e);
- strings: length integer + bytes;
- tensors: version 2, four dims (n, k, nr, nc), then raw little-endian float32;
- a network: every ``add_layer`` writes its version and then its sub-network
  first, so the file holds the loss layer, a run of version numbers, the input
  layer, and then each layer's details from the input upwards, each followed
  by three flag bytes and three (empty) tensors.  Tag/skip layers write no
  details; the residual wiring is implied by the architecture, which
  :func:`_build_program` checks against the layer sequence found.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25
ENCODING_SIZE = 128
DEFAULT_BATCH = 4  # measured best on a 2-core AVX2 box: bigger batches fall out of cache

__all__ = [
    "CHIP_SIZE",
    "CHIP_PADDING",
    "FastEncoder",
    "ModelFormatError",
    "load_encoder",
    "encode_chips",
    "face_chips",
    "default_model_path",
]


class ModelFormatError(ValueError):
    """The .dat file is not the network this module knows how to run."""


def default_model_path() -> str:
    import face_recognition_models

    return face_recognition_models.face_recognition_model_location()


# --------------------------------------------------------------------------
# Reading dlib's serialization format


class _Reader:
    def __init__(self, data: bytes):
        self.buf = data
        self.pos = 0

    def int(self) -> int:
        buf, pos = self.buf, self.pos
        if pos >= len(buf):
            raise ModelFormatError("unexpected end of file")
        head = buf[pos]
        size = head & 0x0F
        if size > 8 or head & 0x70:
            raise ModelFormatError(f"bad integer header 0x{head:02x} at byte {pos}")
        value = int.from_bytes(buf[pos + 1 : pos + 1 + size], "little")
        self.pos = pos + 1 + size
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        return float(mantissa) * 2.0**exponent

    def string(self) -> str:
        n = self.int()
        if not 0 <= n <= 256:
            raise ModelFormatError(f"implausible string length {n} at byte {self.pos}")
        s = self.buf[self.pos : self.pos + n]
        self.pos += n
        return s.decode("latin-1")

    def peek_string(self) -> str | None:
        """The string starting here, if the bytes look like a layer name."""
        save = self.pos
        try:
            n = self.int()
            if not 4 <= n <= 40:
                return None
            s = self.buf[self.pos : self.pos + n]
            if not all(c == 0x5F or 0x30 <= c <= 0x39 or 0x61 <= c <= 0x7A for c in s):
                return None
            return s.decode("ascii")
        except ModelFormatError:
            return None
        finally:
            self.pos = save

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise ModelFormatError(f"tensor version {version} at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if end > len(self.buf):
            raise ModelFormatError("tensor runs past the end of the file")
        arr = np.frombuffer(self.buf, dtype="<f4", count=count, offset=self.pos)
        self.pos = end
        return arr.astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise ModelFormatError(f"alias_tensor version {version}")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


@dataclass
class _Layer:
    kind: str
    params: dict


def _read_layer(r: _Reader, name: str) -> _Layer:
    if name == "con_4":
        params = r.tensor().reshape(-1)
        num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(7))
        f_shape = r.alias()
        b_shape = r.alias()
        for _ in range(4):  # learning-rate / weight-decay multipliers
            r.float()
        n_w = int(np.prod(f_shape))
        if f_shape[0] != num_filters or f_shape[2:] != (nr, nc) or params.size != n_w + num_filters:
            raise ModelFormatError(f"inconsistent con_ layer {f_shape} {b_shape} {params.size}")
        return _Layer(
            "con",
            dict(
                w=params[:n_w].reshape(f_shape),  # (out, in, kh, kw)
                b=params[n_w:].copy(),
                stride=(stride_y, stride_x),
                pad=(pad_y, pad_x),
            ),
        )
    if name == "affine_":
        params = r.tensor().reshape(-1)
        g_shape = r.alias()
        r.alias()
        mode = r.int()
        c = int(np.prod(g_shape))
        if params.size != 2 * c or mode != 0:  # 0 == CONV_MODE: one gamma/beta per channel
            raise ModelFormatError(f"unsupported affine_ layer (mode {mode}, {params.size} params)")
        return _Layer("affine", dict(gamma=params[:c].copy(), beta=params[c:].copy()))
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(6))
        return _Layer(
            name[:-2].replace("_pool", "pool"),
            dict(size=(nr, nc), stride=(stride_y, stride_x), pad=(pad_y, pad_x)),
        )
    if name == "relu_":
        return _Layer("relu", {})
    if name == "add_prev_":
        return _Layer("add_prev", {})
    if name == "fc_2":
        num_outputs = r.int()
        num_inputs = r.int()
        params = r.tensor().reshape(-1)
        w_shape = r.alias()
        r.alias()
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if bias_mode != 1 or params.size != num_inputs * num_outputs:  # 1 == FC_NO_BIAS
            raise ModelFormatError("only fc_no_bias is supported")
        return _Layer("fc", dict(w=params.reshape(w_shape[0], w_shape[1])))
    raise ModelFormatError(f"unsupported layer {name!r}")


def _parse(data: bytes) -> tuple[tuple[float, float, float], list[_Layer]]:
    r = _Reader(data)
    if r.int() != 1 or r.string() != "loss_metric_2":
        raise ModelFormatError("not a dlib loss_metric network")
    r.float()  # margin
    r.float()  # distance threshold
    # the version numbers of every add_layer / tag / skip, outermost first
    while r.peek_string() is None:
        r.int()
    if r.string() != "input_rgb_image_sized":
        raise ModelFormatError("expected an input_rgb_image_sized input layer")
    means = (r.float(), r.float(), r.float())
    if (r.int(), r.int()) != (CHIP_SIZE, CHIP_SIZE):
        raise ModelFormatError("the network does not take 150x150 chips")
    layers: list[_Layer] = []
    while r.pos < len(data):
        name = r.peek_string()
        if name is None:
            r.int()  # e.g. the input-level add_layer's sample-expansion factor
            continue
        r.string()
        layers.append(_read_layer(r, name))
        r.pos += 3  # this_layer_setup_called, gradient_input_is_stale, output disabled
        for _ in range(3):  # x_grad, cached_output, params_grad
            r.tensor()
    return means, layers


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


def _fold(con: _Layer, aff: _Layer) -> _Conv:
    w = con.params["w"].astype(np.float64)  # (out, in, kh, kw)
    cout, cin, kh, kw = w.shape
    sy, sx = con.params["stride"]
    py, px = con.params["pad"]
    if kh != kw or sy != sx or py != px:
        raise ModelFormatError("only square kernels / strides / padding are supported")
    gamma = aff.params["gamma"].astype(np.float64)
    beta = aff.params["beta"].astype(np.float64)
    wf = (w * gamma[:, None, None, None]).transpose(2, 3, 1, 0).reshape(kh * kw * cin, cout)
    bf = con.params["b"].astype(np.float64) * gamma + beta
    return _Conv(
        np.ascontiguousarray(wf, dtype=np.float32), bf.astype(np.float32), kh, sy, py, cin, cout
    )


def _build_program(layers: list[_Layer]):
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


class FastEncoder:
    """dlib's ``face_recognition_model_v1`` network, evaluated with numpy."""

    def __init__(self, model_path: str | os.PathLike | None = None):
        path = os.fspath(model_path) if model_path is not None else default_model_path()
        with open(path, "rb") as f:
            data = f.read()
        try:
            means, layers = _parse(data)
            self._stem, self._blocks, self._fc = _build_program(layers)
        except ModelFormatError as exc:
            raise ModelFormatError(f"{path}: {exc}") from None
        except (IndexError, ValueError, UnicodeDecodeError) as exc:  # garbage in the file
            raise ModelFormatError(f"{path}: not a dlib face recognition model ({exc})") from None
        self.model_path = path
        self._mean = np.array(means, dtype=np.float32)

    def _forward(self, chips: np.ndarray) -> np.ndarray:
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

    def encode_chips(self, chips: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """``(n, 150, 150, 3)`` uint8 RGB chips -> ``(n, 128)`` float64 encodings."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"expected (n, 150, 150, 3) RGB chips, got shape {chips.shape}")
        if chips.dtype != np.uint8:
            raise ValueError(f"expected uint8 chips, got {chips.dtype}")
        out = np.empty((chips.shape[0], ENCODING_SIZE), dtype=np.float64)
        step = max(1, int(batch_size))
        for start in range(0, chips.shape[0], step):
            out[start : start + step] = self._forward(chips[start : start + step])
        return out


_ENCODERS: dict[str, FastEncoder] = {}
_LOCK = threading.Lock()


def load_encoder(model_path: str | os.PathLike | None = None) -> FastEncoder:
    """The process-wide encoder for ``model_path`` (default: face_recognition_models'),
    parsed on first use."""
    path = os.fspath(model_path) if model_path is not None else default_model_path()
    with _LOCK:
        enc = _ENCODERS.get(path)
        if enc is None:
            enc = _ENCODERS[path] = FastEncoder(path)
        return enc


def encode_chips(chips: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
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

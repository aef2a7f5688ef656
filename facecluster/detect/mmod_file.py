"""Read dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``).

The file is a serialized ``dlib::loss_mmod<...>`` network (dlib's
examples/dnn_mmod_face_detection_ex.cpp; the loss is King, "Max-Margin Object
Detection", arXiv:1502.00046)::

    loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<downsampler<
        input_rgb_image_pyramid<pyramid_down<6>>>>>>>>

where ``rcon5`` is relu(affine(con 45 5x5 stride 1)) and ``downsampler`` three
relu(affine(con 5x5 stride 2)) with 16, 32, 32 filters.

dlib's serialization (dlib/serialize.h): an integer is one header byte (low
nibble = byte count, bit 7 = sign) plus that many little-endian bytes; a float
is a mantissa and an exponent integer; a string is a length and its bytes; a
tensor is version 2, four dims (n, k, nr, nc) and raw float32.  The network
file holds the loss layer (``loss_mmod_`` + its ``mmod_options``), a run of
``add_layer`` version numbers, the input layer, then each layer's details from
the input upwards, each followed by three flag bytes and three empty tensors.

The affine layers were saved as batch-norm (``bn_con2``); dlib turns them into
``affine_`` on load with gamma / sqrt(running_var + eps) and
beta - gamma * running_mean (dlib/dnn/layers.h), and so does :func:`parse`.

:func:`parse` returns a :class:`MmodModel`; nothing is read at import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ConvLayer", "MmodModel", "MmodFormatError", "parse"]


class MmodFormatError(ValueError):
    """The bytes are not the MMOD network this module knows."""


@dataclass(frozen=True)
class ConvLayer:
    """One ``con_`` layer with the following ``affine_`` folded in (if any).

    ``weights`` is (out, in, kh, kw) float32, ``bias`` (out,) float32; ``relu``
    says whether a relu follows.
    """

    weights: np.ndarray
    bias: np.ndarray
    stride: int
    pad: int
    relu: bool


@dataclass(frozen=True)
class MmodModel:
    """Everything needed to run the detector.

    - ``means``: per-channel (R, G, B) averages the input layer subtracts;
    - ``pyramid_padding`` / ``pyramid_outer_padding``: the tiled pyramid's gaps;
    - ``windows``: detector window (width, height) per output channel;
    - ``nms_iou`` / ``nms_covered``: the ``overlaps_nms`` test_box_overlap;
    - ``layers``: the convolutions from the input upwards.
    """

    means: tuple[float, float, float]
    pyramid_padding: int
    pyramid_outer_padding: int
    windows: tuple[tuple[int, int], ...]
    nms_iou: float
    nms_covered: float
    layers: tuple[ConvLayer, ...]


class _Stream:
    """A cursor over dlib-serialized bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def integer(self) -> int:
        if self.pos >= len(self.data):
            raise MmodFormatError("the file ends early")
        head = self.data[self.pos]
        size = head & 0x0F
        if size > 8 or head & 0x70:
            raise MmodFormatError(f"not an integer at byte {self.pos}")
        start = self.pos + 1
        self.pos = start + size
        value = int.from_bytes(self.data[start : self.pos], "little")
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        return mantissa * 2.0 ** self.integer()

    def text(self) -> str:
        size = self.integer()
        if not 0 <= size <= 64:
            raise MmodFormatError(f"string of length {size} at byte {self.pos}")
        start = self.pos
        self.pos += size
        return self.data[start : self.pos].decode("latin-1")

    def name_ahead(self) -> bool:
        """True when a layer/version name (a lowercase identifier) starts here."""
        head = self.data[self.pos] if self.pos < len(self.data) else 0
        size = self.data[self.pos + 1] if head == 1 and self.pos + 1 < len(self.data) else 0
        word = self.data[self.pos + 2 : self.pos + 2 + size]
        return 4 <= size <= 40 and len(word) == size and word[:1].isalpha() and word.isascii() and word == word.lower()

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise MmodFormatError(f"unknown tensor version at byte {self.pos}")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        if self.pos + 4 * count > len(self.data):
            raise MmodFormatError("a tensor runs past the end of the file")
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values.reshape(shape)

    def alias(self) -> tuple[int, ...]:
        if self.integer() != 1:
            raise MmodFormatError(f"unknown alias_tensor version at byte {self.pos}")
        return tuple(self.integer() for _ in range(4))


def _loss_options(s: _Stream) -> tuple[tuple[tuple[int, int], ...], float, float]:
    """``loss_mmod_`` + ``mmod_options`` (dlib/dnn/loss.h) -> windows, nms thresholds."""
    if s.integer() != 1 or s.text() != "loss_mmod_":
        raise MmodFormatError("not a dlib loss_mmod network")
    version = s.integer()
    if version == 1:
        windows: list[tuple[int, int]] = [(s.integer(), s.integer())]
    elif 2 <= version <= 4:
        windows = []
        for _ in range(s.integer()):
            if s.integer() not in (1, 2):
                raise MmodFormatError("unknown detector_window_details version")
            windows.append((s.integer(), s.integer()))
            if version >= 2:
                s.text()  # label
    else:
        raise MmodFormatError(f"mmod_options version {version}")
    s.real(), s.real(), s.real()  # loss per false alarm / missed target, truth IoU
    nms_iou, nms_covered = s.real(), s.real()
    s.real(), s.real()  # overlaps_ignore
    if version >= 3:
        s.pos += 1  # assume_image_pyramid (uint8): yes for this network
    if version >= 4 and s.data[s.pos] != 0x30:
        raise MmodFormatError("bounding box regression is not supported")
    if version >= 4:
        s.pos += 1
        s.real()  # bbr_lambda
    return tuple(windows), nms_iou, nms_covered


def _input_layer(s: _Stream) -> tuple[tuple[float, float, float], int, int]:
    """``input_rgb_image_pyramid`` (dlib/dnn/input.h) -> means, padding, outer padding."""
    while not s.name_ahead():
        s.integer()  # add_layer version numbers
    version = s.text()
    if version not in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        raise MmodFormatError(f"unexpected input layer {version!r}")
    means = (s.real(), s.real(), s.real())
    if version == "input_rgb_image_pyramid2":
        return means, s.integer(), s.integer()
    return means, 10, 11  # what dlib assumes for files written before the padding was saved


def _conv(s: _Stream) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``con_4`` details -> (weights (out,in,kh,kw), bias, stride, pad)."""
    params = s.tensor().reshape(-1)
    out, nr, nc, stride_y, stride_x, pad_y, pad_x = (s.integer() for _ in range(7))
    shape = s.alias()
    s.alias()
    for _ in range(4):
        s.real()  # learning-rate / weight-decay multipliers
    n_weights = int(np.prod(shape))
    if shape[0] != out or shape[2:] != (nr, nc) or params.size != n_weights + out:
        raise MmodFormatError("inconsistent con_ layer")
    if nr != nc or stride_y != stride_x or pad_y != pad_x:
        raise MmodFormatError("only square convolutions are supported")
    return params[:n_weights].reshape(shape), params[n_weights:].copy(), stride_y, pad_y


def _batch_norm(s: _Stream) -> tuple[np.ndarray, np.ndarray]:
    """``bn_con2`` details -> the (gamma, beta) of the equivalent ``affine_``."""
    params = s.tensor().reshape(-1)
    s.alias(), s.alias()
    for _ in range(2):
        s.tensor()  # batch statistics of the last training step
    running_mean = s.tensor().reshape(-1).astype(np.float64)
    running_var = s.tensor().reshape(-1).astype(np.float64)
    s.integer(), s.integer()  # num_updates, running_stats_window_size
    for _ in range(4):
        s.real()
    eps = s.real()
    half = params.size // 2
    gamma = params[:half].astype(np.float64) / np.sqrt(running_var + eps)
    beta = params[half:].astype(np.float64) - gamma * running_mean
    return gamma, beta


def _affine(s: _Stream) -> tuple[np.ndarray, np.ndarray]:
    """``affine_`` details (version 1 or 2) -> (gamma, beta)."""
    params = s.tensor().reshape(-1).astype(np.float64)
    s.alias(), s.alias()
    s.integer()  # mode
    half = params.size // 2
    return params[:half], params[half:]


def _fold(conv: tuple, affine: tuple | None, relu: bool) -> ConvLayer:
    """Fold y = gamma * conv(x) + beta into the convolution's weights and bias."""
    w, b, stride, pad = conv
    if affine is not None:
        gamma, beta = affine
        w = w.astype(np.float64) * gamma[:, None, None, None]
        b = b.astype(np.float64) * gamma + beta
    return ConvLayer(w.astype(np.float32), b.astype(np.float32), stride, pad, relu)


def _layers(s: _Stream) -> list[tuple[str, object]]:
    """The layer details from the input upwards, as (kind, parsed) pairs."""
    found: list[tuple[str, object]] = []
    while s.pos < len(s.data):
        if not s.name_ahead():
            s.integer()
            continue
        name = s.text()
        if name == "con_4":
            found.append(("con", _conv(s)))
        elif name == "bn_con2":
            found.append(("affine", _batch_norm(s)))
        elif name in ("affine_", "affine_2"):
            found.append(("affine", _affine(s)))
            if name == "affine_2":
                s.pos += 1  # disabled flag
        elif name == "relu_":
            found.append(("relu", None))
        else:
            raise MmodFormatError(f"unsupported layer {name!r}")
        s.pos += 3  # setup-called / gradient-stale / output-disabled flags
        for _ in range(3):
            s.tensor()  # x_grad, cached_output, params_grad (empty)
    return found


def _program(found: list[tuple[str, object]]) -> tuple[ConvLayer, ...]:
    """Group con [affine] [relu] runs into :class:`ConvLayer` steps."""
    layers: list[ConvLayer] = []
    i = 0
    while i < len(found):
        kind, conv = found[i]
        if kind != "con":
            raise MmodFormatError(f"expected a con_ layer, found {kind}")
        i += 1
        affine = None
        if i < len(found) and found[i][0] == "affine":
            affine = found[i][1]
            i += 1
        relu = i < len(found) and found[i][0] == "relu"
        i += relu
        layers.append(_fold(conv, affine, relu))  # type: ignore[arg-type]
    return tuple(layers)


def parse(data: bytes) -> MmodModel:
    """The bytes of ``mmod_human_face_detector.dat`` -> :class:`MmodModel`.

    Raises :class:`MmodFormatError` for anything else.
    """
    s = _Stream(data)
    try:
        windows, nms_iou, nms_covered = _loss_options(s)
        means, padding, outer = _input_layer(s)
        layers = _program(_layers(s))
    except (IndexError, UnicodeDecodeError) as exc:
        raise MmodFormatError(f"not a dlib MMOD network ({exc})") from None
    if not layers or layers[-1].weights.shape[0] != len(windows):
        raise MmodFormatError("the last layer does not score one map per detector window")
    return MmodModel(means, padding, outer, windows, nms_iou, nms_covered, layers)

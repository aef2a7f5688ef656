"""Read dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``).

The file is a serialized ``dlib::loss_mmod<...>`` network (dlib's
examples/dnn_mmod_face_detection_ex.cpp; the loss is King, "Max-Margin Object
Detection", arXiv:1502.00046)::

    loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<downsampler<
        input_rgb_image_pyramid<pyramid_down<6>>>>>>>>

where ``rcon5`` is relu(affine(con 45 5x5 stride 1)) and ``downsampler`` three
relu(affine(con 5x5 stride 2)) with 16, 32, 32 filters.

The format is dlib's serialization (:mod:`facecluster.models.dlib_format`):
the loss layer (``loss_mmod_`` + its ``mmod_options``), a run of ``add_layer``
version numbers, the input layer, then each layer's details from the input
upwards.

The affine layers were saved as batch-norm (``bn_con2``); dlib turns them into
``affine_`` on load with gamma / sqrt(running_var + eps) and
beta - gamma * running_mean (dlib/dnn/layers.h), and so does :func:`parse`.

:func:`parse` returns a :class:`MmodModel`; nothing is read at import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.dlib_format import DlibReader, ModelFormatError, fold_affine

__all__ = ["ConvLayer", "ModelFormatError", "MmodModel", "parse"]


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


def _loss_options(s: DlibReader) -> tuple[tuple[tuple[int, int], ...], float, float]:
    """``loss_mmod_`` + ``mmod_options`` (dlib/dnn/loss.h) -> windows, nms thresholds."""
    if s.integer() != 1 or s.text() != "loss_mmod_":
        raise ModelFormatError("not a dlib loss_mmod network")
    version = s.integer()
    if version == 1:
        windows: list[tuple[int, int]] = [(s.integer(), s.integer())]
    elif 2 <= version <= 4:
        windows = []
        for _ in range(s.integer()):
            if s.integer() not in (1, 2):
                raise ModelFormatError("unknown detector_window_details version")
            windows.append((s.integer(), s.integer()))
            if version >= 2:
                s.text()  # label
    else:
        raise ModelFormatError(f"mmod_options version {version}")
    s.real(), s.real(), s.real()  # loss per false alarm / missed target, truth IoU
    nms_iou, nms_covered = s.real(), s.real()
    s.real(), s.real()  # overlaps_ignore
    if version >= 3:
        s.pos += 1  # assume_image_pyramid (uint8): yes for this network
    if version >= 4 and s.data[s.pos] != 0x30:
        raise ModelFormatError("bounding box regression is not supported")
    if version >= 4:
        s.pos += 1
        s.real()  # bbr_lambda
    return tuple(windows), nms_iou, nms_covered


def _input_layer(s: DlibReader) -> tuple[tuple[float, float, float], int, int]:
    """``input_rgb_image_pyramid`` (dlib/dnn/input.h) -> means, padding, outer padding."""
    version = s.next_name()
    if version not in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        raise ModelFormatError(f"unexpected input layer {version!r}")
    means = (s.real(), s.real(), s.real())
    if version == "input_rgb_image_pyramid2":
        return means, s.integer(), s.integer()
    return means, 10, 11  # what dlib assumes for files written before the padding was saved


def _conv(s: DlibReader) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``con_4`` details -> (weights (out,in,kh,kw), bias, stride, pad)."""
    params = s.tensor().reshape(-1)
    out, nr, nc, stride_y, stride_x, pad_y, pad_x = (s.integer() for _ in range(7))
    shape = s.alias()
    s.alias()
    for _ in range(4):
        s.real()  # learning-rate / weight-decay multipliers
    n_weights = int(np.prod(shape))
    if shape[0] != out or shape[2:] != (nr, nc) or params.size != n_weights + out:
        raise ModelFormatError("inconsistent con_ layer")
    if nr != nc or stride_y != stride_x or pad_y != pad_x:
        raise ModelFormatError("only square convolutions are supported")
    return params[:n_weights].reshape(shape), params[n_weights:].copy(), stride_y, pad_y


def _batch_norm(s: DlibReader) -> tuple[np.ndarray, np.ndarray]:
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


def _affine(s: DlibReader) -> tuple[np.ndarray, np.ndarray]:
    """``affine_`` details (version 1 or 2) -> (gamma, beta)."""
    params = s.tensor().reshape(-1).astype(np.float64)
    s.alias(), s.alias()
    s.integer()  # mode
    half = params.size // 2
    return params[:half], params[half:]


def _fold(conv: tuple, affine: tuple | None, relu: bool) -> ConvLayer:
    """One :class:`ConvLayer`: y = gamma * conv(x) + beta folded into the convolution."""
    w, b, stride, pad = conv
    if affine is not None:
        w, b = fold_affine(w, b, *affine)
    return ConvLayer(w.astype(np.float32), b.astype(np.float32), stride, pad, relu)


def _layers(s: DlibReader) -> list[tuple[str, object]]:
    """The layer details from the input upwards, as (kind, parsed) pairs."""
    found: list[tuple[str, object]] = []
    while (name := s.next_name()) is not None:
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
            raise ModelFormatError(f"unsupported layer {name!r}")
        s.layer_end()
    return found


def _program(found: list[tuple[str, object]]) -> tuple[ConvLayer, ...]:
    """Group con [affine] [relu] runs into :class:`ConvLayer` steps."""
    layers: list[ConvLayer] = []
    i = 0
    while i < len(found):
        kind, conv = found[i]
        if kind != "con":
            raise ModelFormatError(f"expected a con_ layer, found {kind}")
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

    Raises :class:`ModelFormatError` for anything else.
    """
    s = DlibReader(data)
    try:
        windows, nms_iou, nms_covered = _loss_options(s)
        means, padding, outer = _input_layer(s)
        layers = _program(_layers(s))
    except (IndexError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"not a dlib MMOD network ({exc})") from None
    if not layers or layers[-1].weights.shape[0] != len(windows):
        raise ModelFormatError("the last layer does not score one map per detector window")
    return MmodModel(means, padding, outer, windows, nms_iou, nms_covered, layers)

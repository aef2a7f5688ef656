"""Reading dlib's serialized face-recognition network (``dlib_face_recognition_resnet_model_v1.dat``).

:func:`parse` returns the input means and the layers with their weights, for
:mod:`facecluster.embed.resnet` to run.

The format is dlib's serialization (:mod:`facecluster.models.dlib_format`).
Tag/skip layers write no details; the residual wiring is implied by the
architecture, which :func:`facecluster.embed.resnet._build_program` checks
against the layer sequence found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.dlib_format import DlibReader, ModelFormatError

__all__ = ["CHIP_SIZE", "Layer", "ModelFormatError", "parse"]

CHIP_SIZE = 150  # the network takes 150x150 RGB chips


@dataclass
class Layer:
    kind: str
    params: dict


def _read_layer(r: DlibReader, name: str) -> Layer:
    if name == "con_4":
        params = r.tensor().reshape(-1)
        num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(7))
        f_shape = r.alias()
        b_shape = r.alias()
        for _ in range(4):  # learning-rate / weight-decay multipliers
            r.real()
        n_w = int(np.prod(f_shape))
        if f_shape[0] != num_filters or f_shape[2:] != (nr, nc) or params.size != n_w + num_filters:
            raise ModelFormatError(f"inconsistent con_ layer {f_shape} {b_shape} {params.size}")
        return Layer(
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
        mode = r.integer()
        c = int(np.prod(g_shape))
        if params.size != 2 * c or mode != 0:  # 0 == CONV_MODE: one gamma/beta per channel
            raise ModelFormatError(f"unsupported affine_ layer (mode {mode}, {params.size} params)")
        return Layer("affine", dict(gamma=params[:c].copy(), beta=params[c:].copy()))
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc, stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(6))
        return Layer(
            name[:-2].replace("_pool", "pool"),
            dict(size=(nr, nc), stride=(stride_y, stride_x), pad=(pad_y, pad_x)),
        )
    if name == "relu_":
        return Layer("relu", {})
    if name == "add_prev_":
        return Layer("add_prev", {})
    if name == "fc_2":
        num_outputs = r.integer()
        num_inputs = r.integer()
        params = r.tensor().reshape(-1)
        w_shape = r.alias()
        r.alias()
        bias_mode = r.integer()
        for _ in range(4):
            r.real()
        if bias_mode != 1 or params.size != num_inputs * num_outputs:  # 1 == FC_NO_BIAS
            raise ModelFormatError("only fc_no_bias is supported")
        return Layer("fc", dict(w=params.reshape(w_shape[0], w_shape[1])))
    raise ModelFormatError(f"unsupported layer {name!r}")


def parse(data: bytes) -> tuple[tuple[float, float, float], list[Layer]]:
    r = DlibReader(data)
    if r.integer() != 1 or r.text() != "loss_metric_2":
        raise ModelFormatError("not a dlib loss_metric network")
    r.real()  # margin
    r.real()  # distance threshold
    # past the version numbers of every add_layer / tag / skip, outermost first
    if r.next_name() != "input_rgb_image_sized":
        raise ModelFormatError("expected an input_rgb_image_sized input layer")
    means = (r.real(), r.real(), r.real())
    if (r.integer(), r.integer()) != (CHIP_SIZE, CHIP_SIZE):
        raise ModelFormatError("the network does not take 150x150 chips")
    layers: list[Layer] = []
    while (name := r.next_name()) is not None:  # past e.g. the input add_layer's sample-expansion factor
        layers.append(_read_layer(r, name))
        r.layer_end()
    return means, layers

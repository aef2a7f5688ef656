"""Reading dlib's serialized face-recognition network (``dlib_face_recognition_resnet_model_v1.dat``).

:func:`parse` returns the input means and the layers with their weights, for
:mod:`facecluster.embed.resnet` to run.

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
  :func:`facecluster.embed.resnet._build_program` checks against the layer sequence found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHIP_SIZE = 150  # the network takes 150x150 RGB chips


class ModelFormatError(ValueError):
    """The .dat file is not the network this module knows how to run."""


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
class Layer:
    kind: str
    params: dict


def _read_layer(r: _Reader, name: str) -> Layer:
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
        mode = r.int()
        c = int(np.prod(g_shape))
        if params.size != 2 * c or mode != 0:  # 0 == CONV_MODE: one gamma/beta per channel
            raise ModelFormatError(f"unsupported affine_ layer (mode {mode}, {params.size} params)")
        return Layer("affine", dict(gamma=params[:c].copy(), beta=params[c:].copy()))
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(6))
        return Layer(
            name[:-2].replace("_pool", "pool"),
            dict(size=(nr, nc), stride=(stride_y, stride_x), pad=(pad_y, pad_x)),
        )
    if name == "relu_":
        return Layer("relu", {})
    if name == "add_prev_":
        return Layer("add_prev", {})
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
        return Layer("fc", dict(w=params.reshape(w_shape[0], w_shape[1])))
    raise ModelFormatError(f"unsupported layer {name!r}")


def parse(data: bytes) -> tuple[tuple[float, float, float], list[Layer]]:
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
    layers: list[Layer] = []
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

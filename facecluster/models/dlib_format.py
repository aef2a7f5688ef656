"""dlib's serialization (dlib/serialize.h, dlib/dnn/core.h), the one format both of
dlib's networks are saved in: the ResNet encoder (:mod:`facecluster.embed.resnet_file`)
and the MMOD CNN detector (:mod:`facecluster.detect.mmod_file`) read it here.

- an integer: one header byte (low nibble = byte count, bit 7 = negative) and
  that many little-endian bytes;
- a float: a mantissa and an exponent integer (value = m * 2**e);
- a string: a length integer and its bytes;
- a tensor: version 2, four dims (n, k, nr, nc), then raw little-endian float32;
- an alias_tensor: version 1 and four dims;
- a network: every ``add_layer`` writes its version and then its sub-network
  first, so the file holds the loss layer, a run of version numbers, the input
  layer, and then each layer's details from the input upwards (a name, then
  its fields), each followed by three flag bytes and three empty tensors.
"""

from __future__ import annotations

import numpy as np


class ModelFormatError(ValueError):
    """A model file is not the network this project knows how to run."""


class DlibReader:
    """A cursor over dlib-serialized bytes; each call reads one value and moves on."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def integer(self) -> int:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise ModelFormatError("the file ends early")
        head = data[pos]
        size = head & 0x0F
        if size > 8 or head & 0x70:
            raise ModelFormatError(f"not an integer (header 0x{head:02x}) at byte {pos}")
        value = int.from_bytes(data[pos + 1 : pos + 1 + size], "little")
        self.pos = pos + 1 + size
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        return float(mantissa) * 2.0 ** self.integer()

    def text(self) -> str:
        size = self.integer()
        if not 0 <= size <= 256:
            raise ModelFormatError(f"implausible string length {size} at byte {self.pos}")
        start = self.pos
        self.pos += size
        return self.data[start : self.pos].decode("latin-1")

    def next_name(self) -> str | None:
        """The next layer or version name (``con_4``, ``input_rgb_image_sized``), read
        past the ``add_layer`` version numbers before it; ``None`` at the end."""
        while self.pos < len(self.data):
            name = self._name_here()
            if name is not None:
                self.text()
                return name
            self.integer()
        return None

    def _name_here(self) -> str | None:
        """The name starting here, without reading it; None where the bytes are something else."""
        save = self.pos
        try:
            size = self.integer()
            word = self.data[self.pos : self.pos + size]
        except ModelFormatError:
            return None
        finally:
            self.pos = save
        if not 4 <= size <= 40 or len(word) != size or not 0x61 <= word[0] <= 0x7A:
            return None
        if not all(c == 0x5F or 0x30 <= c <= 0x39 or 0x61 <= c <= 0x7A for c in word):
            return None
        return word.decode("ascii")

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise ModelFormatError(f"unknown tensor version at byte {self.pos}")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        if self.pos + 4 * count > len(self.data):
            raise ModelFormatError("a tensor runs past the end of the file")
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values.reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        if self.integer() != 1:
            raise ModelFormatError(f"unknown alias_tensor version at byte {self.pos}")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]

    def layer_end(self) -> None:
        """What follows every layer's details: three flags (setup called,
        gradient stale, output disabled) and three empty tensors (x_grad,
        cached_output, params_grad)."""
        self.pos += 3
        for _ in range(3):
            self.tensor()


def fold_affine(weights: np.ndarray, bias: np.ndarray, gamma: np.ndarray,
                beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A convolution (weights ``(out, in, kh, kw)``, bias ``(out,)``) followed by
    ``y = gamma * x + beta`` per output channel, as one convolution: float64
    weights and bias."""
    gamma = np.asarray(gamma, dtype=np.float64)
    folded = weights.astype(np.float64) * gamma[:, None, None, None]
    return folded, bias.astype(np.float64) * gamma + np.asarray(beta, dtype=np.float64)

"""dlib's serialization, read once for both networks (facecluster.models.dlib_format)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from facecluster.models.dlib_format import DlibReader, ModelFormatError, fold_affine


def integer(value: int) -> bytes:
    """dlib's encoding: a header byte (byte count, bit 7 = negative), then the magnitude little-endian."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little") if magnitude else b""
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def text(word: str) -> bytes:
    return integer(len(word)) + word.encode("latin-1")


def test_values_are_read_in_turn() -> None:
    data = (integer(0) + integer(-300) + integer(2**40) + integer(3) + integer(-2)  # 3 * 2**-2
            + text("con_4") + integer(2) + b"".join(integer(d) for d in (1, 2, 1, 1))
            + struct.pack("<2f", 1.5, -2.0) + integer(1) + b"".join(integer(d) for d in (4, 3, 2, 1)))
    reader = DlibReader(data)
    assert [reader.integer(), reader.integer(), reader.integer()] == [0, -300, 2**40]
    assert reader.real() == 0.75
    assert reader.text() == "con_4"
    assert reader.tensor().tolist() == [[[[1.5]], [[-2.0]]]]
    assert reader.alias() == (4, 3, 2, 1)
    assert reader.pos == len(data)


def test_the_next_name_is_read_past_the_version_numbers_before_it() -> None:
    # 1: a version number; 5: a length, but what follows is no name
    reader = DlibReader(integer(1) + integer(5) + text("input_rgb_image_sized") + integer(2))
    assert reader.next_name() == "input_rgb_image_sized"
    assert reader.pos == 4 + len(text("input_rgb_image_sized"))
    assert reader.next_name() is None  # only a number left: the end
    assert reader.pos == len(reader.data)
    assert DlibReader(b"").next_name() is None


@pytest.mark.parametrize("data", [b"", b"\x30", integer(2) + integer(1000) + integer(1) * 3, integer(7)])
def test_damaged_bytes_raise_model_format_error(data: bytes) -> None:
    reader = DlibReader(data)
    with pytest.raises(ModelFormatError):
        reader.tensor()


def test_folding_an_affine_into_its_convolution_gives_the_same_outputs() -> None:
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(3, 2, 1, 1)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    x = rng.normal(size=2)
    then_affine = gamma * (weights[:, :, 0, 0] @ x + bias) + beta
    folded_weights, folded_bias = fold_affine(weights, bias, gamma, beta)
    assert np.allclose(folded_weights[:, :, 0, 0] @ x + folded_bias, then_affine)

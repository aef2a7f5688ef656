"""Face encoders: 128-d encodings of the faces at given boxes, one interface.

Like a detector, an encoder is a small frozen object chosen once per run::

    encoder.cache_key()                   -> str: part of the key under which results are reused
    encoder.preload()                     loads its models (before the workers fork)
    encoder.encode(rgb, boxes)            -> list of 128-d float64 arrays, one per box
    encoder.encode_batch(rgbs, box_lists) -> one such list per photo

Both compute ``face_recognition.face_encodings(rgb, boxes, num_jitters,
model=landmarks)``: dlib finds the landmarks and cuts the aligned chips either
way; :class:`NumpyEncoder` then runs dlib's ResNet, with its own weights,
through :mod:`facecluster.encode.fast_encoder` (within 1e-6 of dlib, about 8x
faster on a BLAS-less dlib build); :class:`DlibEncoder` calls dlib, and alone
does random jitter (``num_jitters > 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from ..records import Box, box_to_dlib
from .models import dlib_encoder, landmark_predictor

LANDMARK_MODELS = ("small", "large")  # 5-point (face_recognition's default) or 68-point
ENCODERS = ("numpy", "dlib")


class Encoder(Protocol):
    name: str

    def cache_key(self) -> str: ...

    def preload(self) -> None: ...

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]: ...

    def encode_batch(self, rgbs: list[np.ndarray], box_lists: list[list[Box]]) -> list[list[np.ndarray]]: ...


@dataclass(frozen=True)
class _LandmarkEncoder:
    """What both encoders share: landmarks first, then the ResNet (:meth:`_encode_shapes`)."""

    name: ClassVar[str] = ""
    landmarks: str = "small"
    num_jitters: int = 1

    def __post_init__(self) -> None:
        if self.landmarks not in LANDMARK_MODELS:
            raise ValueError(f"--landmarks must be one of {LANDMARK_MODELS}")
        if self.num_jitters < 1:
            raise ValueError("--jitters must be at least 1")

    def cache_key(self) -> str:
        return f"jit={self.num_jitters}/lm={self.landmarks}/enc={self.name}"

    def preload(self) -> None:
        landmark_predictor(self.landmarks)
        self._load()

    def _load(self) -> None:
        raise NotImplementedError

    def _encode_shapes(self, rgb: np.ndarray, shapes) -> list[np.ndarray]:
        raise NotImplementedError

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        """128-d float64 encodings of the faces at ``boxes`` in ``rgb``, in order."""
        if not boxes:
            return []
        import dlib

        predictor = landmark_predictor(self.landmarks)
        shapes = dlib.full_object_detections()
        for box in boxes:
            shapes.append(predictor(rgb, box_to_dlib(box)))
        return self._encode_shapes(rgb, shapes)

    def encode_batch(self, rgbs: list[np.ndarray], box_lists: list[list[Box]]) -> list[list[np.ndarray]]:
        """:meth:`encode` for each photo, in order."""
        return [self.encode(rgb, boxes) for rgb, boxes in zip(rgbs, box_lists)]


@dataclass(frozen=True)
class NumpyEncoder(_LandmarkEncoder):
    """dlib's ResNet and weights evaluated with numpy: the same encodings, faster here."""

    name: ClassVar[str] = "numpy"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_jitters != 1:
            raise ValueError("the numpy encoder has no jitter; use the dlib encoder for --jitters > 1")

    def _load(self) -> None:
        from .fast_encoder import load_encoder

        load_encoder()

    def _encode_shapes(self, rgb: np.ndarray, shapes) -> list[np.ndarray]:
        from .fast_encoder import encode_chips, face_chips

        return list(encode_chips(face_chips(rgb, shapes)))


@dataclass(frozen=True)
class DlibEncoder(_LandmarkEncoder):
    """dlib's own ``face_recognition_model_v1``, as face_recognition calls it."""

    name: ClassVar[str] = "dlib"

    def _load(self) -> None:
        dlib_encoder()

    def _encode_shapes(self, rgb: np.ndarray, shapes) -> list[np.ndarray]:
        descriptors = dlib_encoder().compute_face_descriptor(rgb, shapes, self.num_jitters)
        return [np.array(descriptor, dtype=np.float64) for descriptor in descriptors]


def choose_encoder(requested: str, landmarks: str = "small", num_jitters: int = 1) -> tuple[_LandmarkEncoder, str]:
    """The encoder for ``--encoder requested`` and why, in words.

    Jitter is dlib's alone (random re-samplings of the chip), so
    ``--jitters`` over 1 runs dlib's encoder whatever was asked, and says so.
    """
    if requested not in ENCODERS:
        raise ValueError(f"--encoder must be one of {ENCODERS}, not {requested!r}")
    if requested == "numpy" and num_jitters > 1:
        why = f"--jitters {num_jitters} needs dlib's encoder, whose jitter is random: dlib runs instead of numpy"
        return DlibEncoder(landmarks, num_jitters), why
    if requested == "numpy":
        return NumpyEncoder(landmarks), "dlib's ResNet and weights evaluated with numpy: the same encodings, faster here"
    return DlibEncoder(landmarks, num_jitters), "asked for"

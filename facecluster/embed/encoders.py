"""Face encoders: 128-d encodings of the faces at given boxes, one interface.

Like a detector, an encoder is a small frozen object chosen once per run::

    encoder.cache_key()                   -> str: part of the key under which results are reused
    encoder.preload()                     loads its models (before the workers fork)
    encoder.encode(rgb, boxes)            -> list of 128-d float64 arrays, one per box
    encoder.encode_batch(rgbs, box_lists) -> one such list per photo

Both compute ``face_recognition.face_encodings(rgb, boxes, num_jitters,
model=landmarks)``: dlib finds the landmarks and cuts the aligned chips either
way; :class:`OnnxEncoder` then runs dlib's ResNet, with its own weights,
through :mod:`facecluster.embed.resnet` (within 1e-6 of dlib; with
onnxruntime ~20x faster than a BLAS-less dlib build, with numpy alone ~10x);
:class:`DlibEncoder` calls dlib, and alone does random jitter
(``num_jitters > 1``).

With ``mirror=True`` (:data:`DEFAULT_MIRROR`; ``--no-mirror`` turns it off)
each face is encoded twice and the two averaged: once in the photo, once in
the photo mirrored left to right (dlib's landmarks found again there, dlib's
chip cut there, the same network).  The result is the same for a photo and
its mirror image, and on LFW's verification pairs it is more accurate (10
folds: 0.9917 against 0.9888 for the single pass; see docs/encoding.md).
The average is then stretched about a fixed centre
(:mod:`.mirror_scale`) so that photos of one person lie as far apart as
with the single pass: the tutorial's fixed thresholds keep their meaning,
and the gain shows as different people further apart.
With the ResNet on onnxruntime a whole run takes 1.0-1.2x as long with it as
without (large photos to small ones; docs/encoding.md).  It is the
deterministic form of what dlib's own ``num_jitters`` does (random small
crops, half of them mirrored, averaged); the two are alternatives, so
``num_jitters > 1`` runs without the mirror pass.  ``mirror=False`` is exactly ``face_recognition.face_encodings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from ..records import Box, box_to_dlib
from ..models.dlib_models import dlib_encoder, landmark_predictor
from .mirror_scale import MIRROR_SCALE, rescale

LANDMARK_MODELS = ("small", "large")  # 5-point (face_recognition's default) or 68-point
ENCODERS = ("numpy", "dlib")
DEFAULT_MIRROR = True  # every clustering default is measured on these encodings (docs/clustering.md)


class Encoder(Protocol):
    name: str
    photos_per_task: int  # photos whose faces it would rather encode together

    def cache_key(self) -> str: ...

    def preload(self) -> None: ...

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]: ...

    def encode_batch(self, rgbs: list[np.ndarray], box_lists: list[list[Box]]) -> list[list[np.ndarray]]: ...


@dataclass(frozen=True)
class _LandmarkEncoder:
    """What both encoders share: landmarks first, then the ResNet (:meth:`_encode_views`)."""

    name: ClassVar[str] = ""
    photos_per_task: ClassVar[int] = 1
    landmarks: str = "small"
    num_jitters: int = 1
    mirror: bool = False  # average with the encoding of the face in the mirrored photo (the tool's default: choose_encoder)

    def __post_init__(self) -> None:
        if self.landmarks not in LANDMARK_MODELS:
            raise ValueError(f"--landmarks must be one of {LANDMARK_MODELS}")
        if self.num_jitters < 1:
            raise ValueError("--jitters must be at least 1")
        if self.mirror and self.num_jitters > 1:
            raise ValueError("--jitters over 1 runs dlib's jitter (half its re-samplings mirrored) "
                             "instead of the mirror pass: give mirror=False")

    def cache_key(self) -> str:
        # Without the mirror pass the key (and the encodings) are those of before it existed.  With
        # it, the key names the rescaling, so encodings averaged under another (or none) are redone.
        return f"jit={self.num_jitters}/lm={self.landmarks}/enc={self.name}" + (f"/mirror-x{MIRROR_SCALE:g}" if self.mirror else "")

    def preload(self) -> None:
        landmark_predictor(self.landmarks)
        self._load()

    def _load(self) -> None:
        raise NotImplementedError

    def _encode_views(self, views: list[tuple[np.ndarray, object]]) -> list[list[np.ndarray]]:
        """For each ``(rgb, shapes)``: the encodings of those landmark shapes in that picture."""
        raise NotImplementedError

    def _shapes(self, rgb: np.ndarray, boxes: list[Box]):
        import dlib

        predictor = landmark_predictor(self.landmarks)
        shapes = dlib.full_object_detections()
        for box in boxes:
            shapes.append(predictor(rgb, box_to_dlib(box)))
        return shapes

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        """128-d float64 encodings of the faces at ``boxes`` in ``rgb``, in order.

        With ``mirror``, each is the mean of the face's encoding in ``rgb`` and
        in ``rgb`` mirrored left to right (landmarks found again there),
        rescaled to the single pass's distances (:func:`.mirror_scale.rescale`).
        """
        return self.encode_batch([rgb], [boxes])[0]

    def encode_batch(self, rgbs: list[np.ndarray], box_lists: list[list[Box]]) -> list[list[np.ndarray]]:
        """:meth:`encode` for each photo, in order; every face of every photo in one
        :meth:`_encode_views` call (one batch through the network)."""
        views = []
        for rgb, boxes in zip(rgbs, box_lists):
            if boxes:
                views += [(rgb, boxes), mirror_photo(rgb, boxes)] if self.mirror else [(rgb, boxes)]
        if not views:
            return [[] for _ in box_lists]
        passes = iter(self._encode_views([(picture, self._shapes(picture, where)) for picture, where in views]))
        encodings: list[list[np.ndarray]] = []
        for boxes in box_lists:
            if not boxes:
                encodings.append([])
            elif self.mirror:
                encodings.append([rescale((seen + mirrored) / 2) for seen, mirrored in zip(next(passes), next(passes))])
            else:
                encodings.append(next(passes))
        return encodings


@dataclass(frozen=True)
class OnnxEncoder(_LandmarkEncoder):
    """dlib's ResNet and weights evaluated outside dlib (onnxruntime, or numpy where it
    is missing): the same encodings, faster here.  The name is the option's, kept
    with its cache key: both backends give the same encodings (within 1e-6)."""

    name: ClassVar[str] = "numpy"
    # The faces of 4 photos through the network as one batch: 14.2 ms a small (LFW) photo
    # with the mirror pass, against 16.9 ms photo by photo.
    photos_per_task: ClassVar[int] = 4

    def __post_init__(self) -> None:
        if self.num_jitters != 1:
            raise ValueError("the numpy encoder has no jitter; use the dlib encoder for --jitters > 1")
        super().__post_init__()

    def _load(self) -> None:
        from .resnet import load_encoder

        load_encoder()

    def _encode_views(self, views: list[tuple[np.ndarray, object]]) -> list[list[np.ndarray]]:
        from .resnet import encode_chips, face_chips

        # Both passes' chips through the network together: one batch, not two.
        encodings = list(encode_chips(np.concatenate([face_chips(rgb, shapes) for rgb, shapes in views])))
        counts = np.cumsum([0] + [len(shapes) for _, shapes in views])
        return [encodings[start:end] for start, end in zip(counts[:-1], counts[1:])]


@dataclass(frozen=True)
class DlibEncoder(_LandmarkEncoder):
    """dlib's own ``face_recognition_model_v1``, as face_recognition calls it."""

    name: ClassVar[str] = "dlib"

    def _load(self) -> None:
        dlib_encoder()

    def _encode_views(self, views: list[tuple[np.ndarray, object]]) -> list[list[np.ndarray]]:
        model = dlib_encoder()
        return [[np.array(descriptor, dtype=np.float64)
                 for descriptor in model.compute_face_descriptor(rgb, shapes, self.num_jitters)]
                for rgb, shapes in views]


def mirror_photo(rgb: np.ndarray, boxes: list[Box]) -> tuple[np.ndarray, list[Box]]:
    """``rgb`` mirrored left to right, and ``boxes`` where they fall in it."""
    # cv2's flip: ~10x numpy's reversed copy (2 ms against 21 ms for 2000x1428).  Imported here,
    # in the worker (0.15 s, which resizing photos for detection often pays already), not in
    # preload, where the whole run would wait for it.
    import cv2

    last = rgb.shape[1] - 1  # boxes hold inclusive pixel columns, as dlib's rectangles do
    return cv2.flip(np.ascontiguousarray(rgb), 1), [(top, last - left, bottom, last - right) for top, right, bottom, left in boxes]


def choose_encoder(requested: str, landmarks: str = "small", num_jitters: int = 1,
                   mirror: bool = DEFAULT_MIRROR) -> tuple[_LandmarkEncoder, str]:
    """The encoder for ``--encoder requested`` and why, in words.

    Jitter is dlib's alone (random re-samplings of the chip, half of them
    mirrored), so ``--jitters`` over 1 runs dlib's encoder whatever was
    asked, in place of the mirror pass, and says so.
    """
    if requested not in ENCODERS:
        raise ValueError(f"--encoder must be one of {ENCODERS}, not {requested!r}")
    if num_jitters > 1:
        jitter = "random jitter (half the re-samplings mirrored) in place of the mirror pass"
        if requested == "numpy":
            why = f"--jitters {num_jitters} needs dlib's encoder, whose jitter is random: dlib runs instead of numpy, its {jitter}"
        else:
            why = f"asked for; --jitters {num_jitters}: dlib's {jitter}"
        return DlibEncoder(landmarks, num_jitters, mirror=False), why
    passes = ("each face and its mirror image, averaged, at the single pass's distances" if mirror
              else "each face once, as face_recognition does (--no-mirror)")
    if requested == "numpy":
        return OnnxEncoder(landmarks, mirror=mirror), f"dlib's ResNet and weights evaluated outside dlib (dlib's encodings, faster here); {passes}"
    return DlibEncoder(landmarks, mirror=mirror), f"asked for; {passes}"

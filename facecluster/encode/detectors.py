"""Detecting faces and computing their 128-d encodings.

The models are face_recognition's (dlib's HOG detector, its CNN detector,
the 5- and 68-point landmark predictors and the ResNet encoder, from the
face_recognition_models files), built exactly as face_recognition's api.py
builds them.  Each is loaded on first use, once per process -- never at
import; :func:`preload` loads a run's set up front, which the encoding run
does once in the process its workers are forked from.

Detection runs at a scale chosen from the photo's size (:func:`detection_scale`):
small photos are upsampled as face_recognition does by default, large ones are
detected on a reduced copy.  Boxes are mapped back, and encodings are always
computed on the photo's own pixels.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import types
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..records import Box, box_from_dlib, box_to_dlib, clip_box, scale_box

DETECTION_METHODS = ("auto", "hog", "cnn")
LANDMARK_MODELS = ("small", "large")  # 5-point (face_recognition's default) or 68-point
ENCODERS = ("numpy", "dlib")  # same network and weights; numpy runs it ~8x faster here
CNN_SECONDS_PER_PHOTO_CPU = 22.0  # measured on a 2-core CPU without CUDA
RETRY_MAX_SIDE = 4096  # the largest copy a face-less photo is searched again at
# Part of the key under which results are reused: bump it whenever a change
# here would find or encode faces differently, so old results are redone.
PIPELINE_VERSION = 2


@dataclass(frozen=True)
class DetectionOptions:
    """How faces are found and encoded; part of the key under which results are reused.

    ``upsample``: ``None`` picks per photo (:func:`detection_scale`), or a
    fixed number of 2x upsamplings as in face_recognition.
    ``max_detect_side``: the long side of the copy the detector sees is at
    most this many pixels (``0`` = no limit).
    """

    method: str = "hog"
    upsample: int | None = None
    max_detect_side: int = 2000
    min_detect_side: int = 700
    num_jitters: int = 1
    landmarks: str = "small"
    encoder: str = "numpy"

    def __post_init__(self) -> None:
        if self.method not in ("hog", "cnn"):
            raise ValueError(f"detection method must be 'hog' or 'cnn', not {self.method!r}")
        if self.upsample is not None and not 0 <= self.upsample <= 4:
            raise ValueError(f"--upsample must be 0..4 or auto, not {self.upsample}")
        if self.max_detect_side < 0 or (0 < self.max_detect_side < 80):
            raise ValueError("--max-detect-side must be 0 (no limit) or at least 80 pixels")
        if self.num_jitters < 1:
            raise ValueError("--jitters must be at least 1")
        if self.landmarks not in LANDMARK_MODELS:
            raise ValueError(f"--landmarks must be one of {LANDMARK_MODELS}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"--encoder must be one of {ENCODERS}")

    def cache_key(self) -> str:
        return (
            f"v{PIPELINE_VERSION}/{self.method}/up={self.upsample}/max={self.max_detect_side}/min={self.min_detect_side}"
            f"/jit={self.num_jitters}/lm={self.landmarks}/enc={self.encoder}"
        )


class Face(NamedTuple):
    box: Box  # in the pixels of the image it was found in
    encoding: np.ndarray


def cuda_available() -> bool:
    """Whether this dlib was built with CUDA (so the CNN detector is fast)."""
    import dlib

    return bool(getattr(dlib, "DLIB_USE_CUDA", False))


def resolve_detection_method(requested: str) -> tuple[str, str]:
    """``auto`` -> ``cnn`` with CUDA, else ``hog``.  Returns ``(method, why)``."""
    if requested not in DETECTION_METHODS:
        raise ValueError(f"detection method must be one of {DETECTION_METHODS}, not {requested!r}")
    has_cuda = cuda_available()
    if requested == "auto":
        if has_cuda:
            return "cnn", "dlib was built with CUDA"
        return "hog", "dlib has no CUDA here, and the CNN detector is slow on a CPU"
    if requested == "cnn" and not has_cuda:
        return "cnn", (
            f"asked for; dlib has no CUDA here, so expect about {CNN_SECONDS_PER_PHOTO_CPU:.0f} s "
            "per photo on this CPU"
        )
    return requested, "asked for"


def _install_pkg_resources_shim() -> None:
    """face_recognition_models needs ``pkg_resources.resource_filename``.

    setuptools 81+ no longer ships ``pkg_resources`` and a fresh Python 3.12+
    venv has no setuptools at all; face_recognition then says "Please install
    face_recognition_models" and quits.  The one function it uses is a path
    join, so supply it when the real module is missing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pkg_resources  # noqa: F401
        return
    except ImportError:
        pass

    def resource_filename(package: str, resource: str) -> str:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"package {package} not found")
        return os.path.join(list(spec.submodule_search_locations)[0], resource)

    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = resource_filename  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = shim


@functools.cache
def _model_files() -> types.ModuleType:
    """face_recognition_models, which only knows where the model files are."""
    _install_pkg_resources_shim()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition_models
    return face_recognition_models


# Each model is loaded on first use, once per process: a run that never needs
# the 68-point predictor or the CNN never pays for loading them.  These are the
# objects face_recognition's api.py builds from the same files.

@functools.cache
def hog_detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.cache
def cnn_detector():
    import dlib

    return dlib.cnn_face_detection_model_v1(_model_files().cnn_face_detector_model_location())


@functools.cache
def landmark_predictor(model: str = "small"):
    import dlib

    files = _model_files()
    if model == "large":
        return dlib.shape_predictor(files.pose_predictor_model_location())
    return dlib.shape_predictor(files.pose_predictor_five_point_model_location())


@functools.cache
def dlib_encoder():
    import dlib

    return dlib.face_recognition_model_v1(_model_files().face_recognition_model_location())


def preload(options: "DetectionOptions") -> None:
    """Load what ``options`` needs now (e.g. before forking workers that share it)."""
    (cnn_detector if options.method == "cnn" else hog_detector)()
    landmark_predictor(options.landmarks)
    if options.encoder == "numpy":
        from .fast_encoder import load_encoder

        load_encoder()
    else:
        dlib_encoder()


def detection_scale(width: int, height: int, options: DetectionOptions) -> float:
    """The factor by which a ``width`` x ``height`` photo is resized for detection.

    With a fixed ``upsample`` it is ``2 ** upsample`` (face_recognition's
    behaviour); otherwise photos whose long side is under ``min_detect_side``
    are upsampled (at most 2x), since dlib's HOG detector finds faces of
    about 80 px and up.  Either way the detector never sees a long side over
    ``max_detect_side``.
    """
    long_side = max(width, height, 1)
    if options.upsample is not None:
        factor = float(2**options.upsample)
    else:
        factor = min(2.0, max(1.0, options.min_detect_side / long_side))
    if options.max_detect_side and long_side * factor > options.max_detect_side:
        factor = options.max_detect_side / long_side
    return factor


def _resized(rgb: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interpolation)


def _run_detector(detector_image: np.ndarray, method: str, upsample: int) -> list[Box]:
    if method == "cnn":
        return [box_from_dlib(d.rect) for d in cnn_detector()(detector_image, upsample)]
    return [box_from_dlib(rect) for rect in hog_detector()(detector_image, upsample)]


def _detector_input(rgb: np.ndarray, factor: float) -> tuple[np.ndarray, int, float]:
    """What the detector is given to see ``rgb`` at ``factor``.

    Returns ``(image, upsample, shrink)``: the image, how many times dlib
    upsamples it itself, and what the boxes it finds must be divided by.  A
    factor of exactly 1, 2 or 4 uses dlib's own pyramid upsampling, so results
    match face_recognition's ``face_locations`` exactly; any other factor
    detects on a resized copy.
    """
    for upsample in (0, 1, 2):
        if abs(factor - 2**upsample) < 1e-9:
            return rgb, upsample, 1.0
    return _resized(rgb, factor), 0, factor


def _detect_at(rgb: np.ndarray, method: str, factor: float) -> list[Box]:
    """Detect on ``rgb`` seen at ``factor``; boxes in ``rgb``'s pixels."""
    image, upsample, shrink = _detector_input(rgb, factor)
    return [scale_box(box, 1 / shrink) for box in _run_detector(image, method, upsample)]


def retry_scale(width: int, height: int, options: DetectionOptions) -> float | None:
    """The larger scale to look again at when the first found no face, or ``None``.

    Only with ``upsample`` auto: face_recognition's 2x, but with the long side
    capped at ``RETRY_MAX_SIDE``, so a photo of a crowd far away, or a film
    still with small faces, is never reported face-less where the tutorial
    would have found one.  Photos with faces -- nearly all -- never pay for it.
    """
    if options.upsample is not None:
        return None
    first = detection_scale(width, height, options)
    second = min(2.0, RETRY_MAX_SIDE / max(width, height, 1))
    return second if second > first * 1.2 else None


def detect_faces(rgb: np.ndarray, options: DetectionOptions) -> list[Box]:
    """Find the faces in an RGB photo.  Boxes are in ``rgb``'s pixels, clipped to it.

    Detects at :func:`detection_scale`; when that finds nothing, looks once
    more at :func:`retry_scale`.
    """
    height, width = rgb.shape[:2]
    boxes = _detect_at(rgb, options.method, detection_scale(width, height, options))
    if not boxes:
        retry = retry_scale(width, height, options)
        if retry is not None:
            boxes = _detect_at(rgb, options.method, retry)
    return [clip_box(box, width, height) for box in boxes]


def detect_faces_batch(rgbs: list[np.ndarray], options: DetectionOptions, batch_size: int = 32) -> list[list[Box]]:
    """CNN detection of many photos in batches (fast on CUDA dlib).

    dlib batches only images of one size, so photos are grouped by what the
    detector sees (:func:`_detector_input`), which makes each photo's boxes
    the same as :func:`detect_faces` gives; the result is in the order of ``rgbs``.
    """
    if options.method != "cnn":
        return [detect_faces(rgb, options) for rgb in rgbs]
    inputs = [_detector_input(rgb, detection_scale(rgb.shape[1], rgb.shape[0], options)) for rgb in rgbs]
    groups: dict[tuple, list[int]] = {}
    for index, (image, upsample, _) in enumerate(inputs):
        groups.setdefault((image.shape, upsample), []).append(index)
    results: list[list[Box]] = [[] for _ in rgbs]
    cnn = cnn_detector()
    for (_, upsample), indices in groups.items():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            detections = cnn([inputs[i][0] for i in chunk], upsample, batch_size=len(chunk))
            for index, found in zip(chunk, detections):
                height, width = rgbs[index].shape[:2]
                shrink = inputs[index][2]
                results[index] = [clip_box(scale_box(box_from_dlib(d.rect), 1 / shrink), width, height) for d in found]
    for index, rgb in enumerate(rgbs):
        retry = None if results[index] else retry_scale(rgb.shape[1], rgb.shape[0], options)
        if retry is not None:
            results[index] = [clip_box(box, rgb.shape[1], rgb.shape[0]) for box in _detect_at(rgb, "cnn", retry)]
    return results


def encode_faces(
    rgb: np.ndarray, boxes: list[Box], num_jitters: int = 1, landmarks: str = "small", encoder: str = "numpy"
) -> list[np.ndarray]:
    """128-d encodings of the faces at ``boxes`` in ``rgb``.

    The same numbers as ``face_recognition.face_encodings(rgb, boxes,
    num_jitters, model=landmarks)``: dlib finds the landmarks and cuts the
    aligned chips either way.  ``encoder="numpy"`` then runs dlib's ResNet,
    with its own weights, through :mod:`facecluster.encode.fast_encoder` (within
    1e-6 of dlib, about 8x faster on a BLAS-less dlib build); random jitter
    (``num_jitters > 1``) is dlib's alone.
    """
    if not boxes:
        return []
    import dlib

    predictor = landmark_predictor(landmarks)
    shapes = dlib.full_object_detections()
    for box in boxes:
        shapes.append(predictor(rgb, box_to_dlib(box)))
    if encoder == "numpy" and num_jitters <= 1:
        from .fast_encoder import encode_chips, face_chips

        return list(encode_chips(face_chips(rgb, shapes)))
    descriptors = dlib_encoder().compute_face_descriptor(rgb, shapes, num_jitters)
    return [np.array(descriptor, dtype=np.float64) for descriptor in descriptors]


def find_faces(rgb: np.ndarray, options: DetectionOptions) -> list[Face]:
    """Detect and encode every face in one RGB photo."""
    boxes = [box for box in detect_faces(rgb, options) if box[2] > box[0] and box[1] > box[3]]
    encodings = encode_faces(rgb, boxes, options.num_jitters, options.landmarks, options.encoder)
    return [Face(box, encoding) for box, encoding in zip(boxes, encodings)]

"""Face detectors: chosen once per run, each with its cache key and a batch call.

A detector is a small frozen object (it travels to every worker by pickle)
that finds faces in RGB arrays::

    detector.cache_key()         -> str: part of the key under which results are reused
    detector.preload()           loads its model (before the workers fork)
    detector.detect(rgb)         -> list[Box]: the full look (see below)
    detector.detect_batch(rgbs)  -> list[list[Box]], in the order of ``rgbs``
    detector.quick_look(rgb)     -> list[Box]: the first look only (video frames)
    detector.photos_per_task     how many photos a worker takes at once

Boxes are ``(top, right, bottom, left)`` in the array's pixels, clipped to it,
never empty.  A new detector is one more class here and one more entry in
:data:`DETECTORS`.

The detectors: dlib's HOG; dlib's CNN (``mmod_human_face_detector.dat``), run
by dlib where it has CUDA and by :mod:`.mmod` (the same weights, the same
boxes, ~10x faster than dlib-bin without BLAS) on a CPU; and, for ``-d auto``
on a CPU, :class:`HogThenCnn`: HOG, and the CNN only where HOG finds nothing.

They run at a scale chosen from the photo's size
(:meth:`DlibDetector.detection_scale`): small photos are upsampled as
face_recognition does by default, large ones are detected on a reduced copy.
A photo where nothing was found gets a second look at a larger scale, then a
look for one face that fills the picture (:meth:`DlibDetector.crop_look`:
exported thumbnails, aligned datasets); ``-d auto``'s CNN comes after all
three.  That is the full look, :meth:`detect`.  :meth:`quick_look` is the
first look alone (``-d auto``: HOG's, then the CNN's): for a video's frames,
where the next frames give a face missed now another chance, and most of the
full look's cost is on frames with no face at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from ..records import Box, box_from_dlib, clip_box, scale_box
from ..models.dlib_models import cnn_detector, cuda_available, hog_detector

CNN_SECONDS_PER_PHOTO_CPU = 22.0  # dlib-bin's own CNN, measured on a 2-core CPU without CUDA
RETRY_MAX_SIDE = 4096  # the largest copy a face-less photo is searched again at
# A face crop (aligned 112x112 datasets, exported thumbnails) is searched at this
# long side with a 25% mirrored border: the detectors need context around a face.
# Measured on glint_aligned_crops' 96 HOG misses: HOG then finds 46, HOG or CNN 94
# (side 160 or 224 found no more and cost 2-7x more).
CROP_SIDE = 112
CROP_BORDER = 0.25
# Only a picture shaped like a face crop gets that look: near square and small
# (aligned sets are 112-250 px, thumbnails a few hundred).  A wide video frame or
# a large photo with no face found is not one, and there the look's only finds
# were false (a dark stage background in a 640x360 frame).
CROP_MAX_SIDE = 600
CROP_MAX_ASPECT = 1.5


def could_be_a_face_crop(width: int, height: int) -> bool:
    """Whether a ``width`` x ``height`` picture is shaped like a face crop (see ``CROP_MAX_SIDE``)."""
    long_side, short_side = max(width, height), max(1, min(width, height))
    return long_side <= CROP_MAX_SIDE and long_side / short_side <= CROP_MAX_ASPECT


class Detector(Protocol):
    name: str

    @property
    def photos_per_task(self) -> int: ...

    def cache_key(self) -> str: ...

    def preload(self) -> None: ...

    def detect(self, rgb: np.ndarray) -> list[Box]: ...

    def detect_batch(self, rgbs: list[np.ndarray]) -> list[list[Box]]: ...

    def quick_look(self, rgb: np.ndarray) -> list[Box]: ...


def _resized(rgb: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interpolation)


def detector_input(rgb: np.ndarray, factor: float) -> tuple[np.ndarray, int, float]:
    """What a dlib detector is given to see ``rgb`` at ``factor``.

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


def _usable(boxes: list[Box], width: int, height: int) -> list[Box]:
    """Boxes clipped to the picture (detections may overhang it), empty ones dropped."""
    clipped = [clip_box(box, width, height) for box in boxes]
    return [box for box in clipped if box[2] > box[0] and box[1] > box[3]]


@dataclass(frozen=True)
class DlibDetector:
    """One of dlib's detectors at a scale chosen per photo; subclasses name the model.

    ``upsample``: ``None`` picks the scale per photo, or a fixed number of 2x
    upsamplings as in face_recognition.  ``max_detect_side``: the long side of
    the copy the detector sees is at most this many pixels (``0`` = no limit).
    """

    name: ClassVar[str] = ""
    retry_max_side: ClassVar[int] = RETRY_MAX_SIDE
    upsample: int | None = None
    max_detect_side: int = 2000
    min_detect_side: int = 700

    def __post_init__(self) -> None:
        if self.upsample is not None and not 0 <= self.upsample <= 4:
            raise ValueError(f"--upsample must be 0..4 or auto, not {self.upsample}")
        if self.max_detect_side < 0 or (0 < self.max_detect_side < 80):
            raise ValueError("--max-detect-side must be 0 (no limit) or at least 80 pixels")

    @property
    def photos_per_task(self) -> int:
        return 1

    def cache_key(self) -> str:
        return f"{self.name}/up={self.upsample}/max={self.max_detect_side}/min={self.min_detect_side}/crop={CROP_SIDE}"

    def preload(self) -> None:
        self._model()

    def _model(self):
        raise NotImplementedError

    def _run(self, image: np.ndarray, upsample: int) -> list[Box]:
        """The model's boxes in ``image`` (upsampled ``upsample`` times by dlib)."""
        raise NotImplementedError

    def detection_scale(self, width: int, height: int) -> float:
        """The factor by which a ``width`` x ``height`` photo is resized for detection.

        With a fixed ``upsample`` it is ``2 ** upsample`` (face_recognition's
        behaviour); otherwise photos whose long side is under ``min_detect_side``
        are upsampled (at most 2x), since dlib's HOG detector finds faces of
        about 80 px and up.  Either way the detector never sees a long side over
        ``max_detect_side``.
        """
        long_side = max(width, height, 1)
        if self.upsample is not None:
            factor = float(2**self.upsample)
        else:
            factor = min(2.0, max(1.0, self.min_detect_side / long_side))
        if self.max_detect_side and long_side * factor > self.max_detect_side:
            factor = self.max_detect_side / long_side
        return factor

    def retry_scale(self, width: int, height: int) -> float | None:
        """The larger scale to look again at when the first found no face, or ``None``.

        Only with ``upsample`` auto: face_recognition's 2x -- or 4x for a small
        photo already seen at 2x (a 25 px face in a 315 px web photo) -- with the
        long side capped at ``retry_max_side``, so a photo of a crowd far away,
        or a film still with small faces, is never reported face-less where the
        tutorial would have found one.  Photos with faces -- nearly all -- never
        pay for it.
        """
        if self.upsample is not None:
            return None
        first = self.detection_scale(width, height)
        largest = 4.0 if first >= 2.0 else 2.0
        second = min(largest, self.retry_max_side / max(width, height, 1))
        return second if second > first * 1.2 else None

    def look(self, rgb: np.ndarray, factor: float) -> list[Box]:
        """Detect on ``rgb`` seen at ``factor``; boxes in ``rgb``'s pixels, unclipped."""
        image, upsample, shrink = detector_input(rgb, factor)
        return [scale_box(box, 1 / shrink) for box in self._run(image, upsample)]

    def crop_look(self, rgb: np.ndarray) -> list[Box]:
        """Look for a face that fills the picture; boxes in ``rgb``'s pixels, unclipped.

        The photo is resized to a long side of ``CROP_SIDE`` and given a mirrored
        border of ``CROP_BORDER`` of that side (a detector frames a face only with
        some context around it), so the look is cheap at any photo size.
        """
        import cv2

        if not could_be_a_face_crop(rgb.shape[1], rgb.shape[0]):
            return []
        factor = CROP_SIDE / max(rgb.shape[0], rgb.shape[1], 1)
        small = _resized(rgb, factor)
        height, width = small.shape[:2]
        pad = round(CROP_BORDER * CROP_SIDE)
        padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        found = [(top - pad, right - pad, bottom - pad, left - pad) for top, right, bottom, left in self._run(padded, 0)]
        # a face cut by the edge and completed by its mirror image is not in the picture
        inside = [box for box in found if 0 <= box[0] + box[2] < 2 * height and 0 <= box[1] + box[3] < 2 * width]
        return [scale_box(box, 1 / factor) for box in inside]

    def _finish(self, rgb: np.ndarray, first_look: list[Box]) -> list[Box]:
        """The second look and then the crop look where nothing was found, then the usable boxes."""
        height, width = rgb.shape[:2]
        boxes = first_look
        retry = None if boxes else self.retry_scale(width, height)
        if retry is not None:
            boxes = self.look(rgb, retry)
        if not boxes:
            boxes = self.crop_look(rgb)
        return _usable(boxes, width, height)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """The faces in one RGB photo (see the module docstring)."""
        return self._finish(rgb, self.look(rgb, self.detection_scale(rgb.shape[1], rgb.shape[0])))

    def quick_look(self, rgb: np.ndarray) -> list[Box]:
        """The faces of :meth:`detect`'s first look alone: no larger look, no crop look where it found none."""
        height, width = rgb.shape[:2]
        return _usable(self.look(rgb, self.detection_scale(width, height)), width, height)

    def detect_batch(self, rgbs: list[np.ndarray]) -> list[list[Box]]:
        """:meth:`detect` for each photo, in order."""
        return [self.detect(rgb) for rgb in rgbs]


@dataclass(frozen=True)
class HogDetector(DlibDetector):
    """dlib's HOG detector (face_recognition's ``model="hog"``): fast on a CPU."""

    name: ClassVar[str] = "hog"

    def _model(self):
        return hog_detector()

    def _run(self, image: np.ndarray, upsample: int) -> list[Box]:
        return [box_from_dlib(rect) for rect in hog_detector()(image, upsample)]


@dataclass(frozen=True)
class CnnDetector(DlibDetector):
    """dlib's CNN detector (``model="cnn"``): finds more faces; fast only with CUDA.

    ``batch_size`` photos go to dlib at once where they share a size (which
    is where CUDA gains); the boxes are the same as photo by photo.
    """

    name: ClassVar[str] = "cnn"
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")

    @property
    def photos_per_task(self) -> int:
        return self.batch_size

    def _model(self):
        return cnn_detector()

    def _run(self, image: np.ndarray, upsample: int) -> list[Box]:
        return [box_from_dlib(found.rect) for found in cnn_detector()(image, upsample)]

    def detect_batch(self, rgbs: list[np.ndarray]) -> list[list[Box]]:
        """Like :meth:`detect` for each photo, with the first looks batched.

        dlib batches only images of one size, so photos are grouped by what
        the detector sees (:func:`detector_input`); the result is in the order
        of ``rgbs``.
        """
        inputs = [detector_input(rgb, self.detection_scale(rgb.shape[1], rgb.shape[0])) for rgb in rgbs]
        groups: dict[tuple, list[int]] = {}
        for index, (image, upsample, _) in enumerate(inputs):
            groups.setdefault((image.shape, upsample), []).append(index)
        first_looks: list[list[Box]] = [[] for _ in rgbs]
        for (_, upsample), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                found = cnn_detector()([inputs[i][0] for i in chunk], upsample, batch_size=len(chunk))
                for index, detections in zip(chunk, found):
                    shrink = inputs[index][2]
                    first_looks[index] = [scale_box(box_from_dlib(d.rect), 1 / shrink) for d in detections]
        return [self._finish(rgb, boxes) for rgb, boxes in zip(rgbs, first_looks)]


@dataclass(frozen=True)
class OnnxCnnDetector(DlibDetector):
    """dlib's CNN detector evaluated by :mod:`.mmod` (onnxruntime, or numpy
    where it is missing): the same weights and boxes as :class:`CnnDetector`,
    16-21x faster than dlib-bin's (numpy: 8-11x).

    ~0.08 s for a 250x250 photo at 2x, ~0.3 s for a 1000 px one at 1x (one core,
    onnxruntime), so its second look goes no larger than 1400 px (HOG's goes to
    4096 px).  The name (``cnn-numpy``, in cache keys) is kept: the boxes are the same.
    """

    name: ClassVar[str] = "cnn-numpy"
    retry_max_side: ClassVar[int] = 1400

    def _model(self):
        from .mmod import load_detector

        return load_detector()

    def _run(self, image: np.ndarray, upsample: int) -> list[Box]:
        return [(d.top, d.right, d.bottom, d.left) for d in self._model()(image, upsample)]


@dataclass(frozen=True)
class HogThenCnn:
    """``-d auto`` on a CPU: HOG's faces, and the CNN's where HOG finds none.

    HOG is ~4-5x cheaper than even the onnxruntime CNN (~10x than the numpy
    one), and finds a face in nearly every photo that has one; the CNN is paid
    for only where HOG found nothing, and finds what dlib's CNN finds there (on
    LFW: all 67 photos).
    """

    name: ClassVar[str] = "hog+cnn"
    photos_per_task: ClassVar[int] = 1  # each photo's CNN look, if any, is its own
    hog: HogDetector
    cnn: OnnxCnnDetector

    def cache_key(self) -> str:
        return f"{self.name}/{self.hog.cache_key()}/{self.cnn.cache_key()}"

    def preload(self) -> None:
        # Only HOG: most runs never need the CNN (parsing it costs ~0.3-0.9 s, 5% of
        # encoding face_recognition's 26 example photos); a worker that meets a
        # photo without a HOG face loads it then, once.
        self.hog.preload()

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """HOG's boxes (after its retry and crop looks), else the CNN's."""
        return self.hog.detect(rgb) or self.cnn.detect(rgb)

    def quick_look(self, rgb: np.ndarray) -> list[Box]:
        """HOG's first look, else the CNN's first look: neither's larger look nor crop look.

        Not HOG's alone: on the video benchmark's clip the CNN's first look finds
        faces in profile and small ones that HOG never does (18 tracks, not 13).
        """
        return self.hog.quick_look(rgb) or self.cnn.quick_look(rgb)

    def detect_batch(self, rgbs: list[np.ndarray]) -> list[list[Box]]:
        """:meth:`detect` for each photo, in order."""
        return [self.detect(rgb) for rgb in rgbs]


DETECTORS: dict[str, type[DlibDetector]] = {"hog": HogDetector, "cnn": CnnDetector}
DETECTION_METHODS = ("auto", *DETECTORS)


def choose_detector(requested: str, batch_size: int = 32, **scale) -> tuple[Detector, str]:
    """The detector for ``-d requested`` and why, in words.

    With CUDA, ``cnn`` and ``auto`` are dlib's CNN, batched (``batch_size``).
    Without, ``cnn`` runs the same network with onnxruntime (or numpy) and ``auto`` is
    :class:`HogThenCnn`.  ``scale`` holds the :class:`DlibDetector` settings
    (``upsample``, ``max_detect_side``).
    """
    if requested not in DETECTION_METHODS:
        raise ValueError(f"detection method must be one of {DETECTION_METHODS}, not {requested!r}")
    if requested == "hog":
        return HogDetector(**scale), "asked for"
    asked = "asked for" if requested == "cnn" else None
    if cuda_available():
        return CnnDetector(batch_size=batch_size, **scale), asked or "dlib was built with CUDA"
    from ..models.onnx_runtime import default_backend

    runtime = default_backend()
    if requested == "cnn":
        cost = "~0.3 s" if runtime == "onnxruntime" else "~1 s"
        return OnnxCnnDetector(**scale), (f"asked for; dlib has no CUDA here, so dlib's CNN runs with {runtime} "
                                           f"(same boxes, {cost} per web photo)")
    return HogThenCnn(HogDetector(**scale), OnnxCnnDetector(**scale)), (
        f"dlib has no CUDA here: HOG, and dlib's CNN (with {runtime}) on photos where HOG finds no face")


def slow_on_this_machine(detector: Detector, photos: int, workers: int) -> str | None:
    """A warning when ``detector`` will be slow here (dlib's own CNN without CUDA), else ``None``."""
    if not isinstance(detector, CnnDetector) or cuda_available():
        return None
    seconds = CNN_SECONDS_PER_PHOTO_CPU * photos / max(1, workers)
    estimate = f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"
    return f"CNN detection on the CPU: expect up to about {estimate} for {photos} photo(s) of web size; -d hog is far faster"

"""The face record that every stage passes along, and the one box convention.

A *record* is the tutorial's plain dict, so a pickle written here loads in the
tutorial's own scripts and the other way round::

    {"imagePath": str, "loc": (top, right, bottom, left), "encoding": ndarray[128] float64}

A face from a video adds ``"frame": int`` and ``"time": float`` (seconds from
the video's first frame) and, from encode_faces.py, ``"track": int`` (faces of
one video with the same track were followed on screen as one person; numbered
from 0 in each video); ``imagePath`` is then the video's path.  Readers treat
``track`` as optional: older files and other tools' lack it.

Boxes are always ``(top, right, bottom, left)`` in pixels of the original,
upright (EXIF-rotated) photo -- face_recognition's convention.  dlib rectangles
and OpenCV ``(x, y, w, h)`` are converted only at the edges, here.

While a video is read, its faces are :class:`Sighting` s, followed on screen as
:class:`Track` s (:mod:`facecluster.run.tracks`) and kept per segment
(:mod:`facecluster.store.video_cache`); a few of each track become records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, TypedDict

import numpy as np

Box = tuple[int, int, int, int]
"""``(top, right, bottom, left)`` in original-image pixels."""

ENCODING_SIZE = 128

UNKNOWN_LABEL = -1
"""The cluster label of faces that belong to no cluster: the tutorial's "Unknown Faces"."""


class Face(NamedTuple):
    """One face found in a photo: its box and its 128-d encoding.

    The one shape of a face inside the package; it becomes the tutorial's
    record dict only where records are made (:func:`make_record`).
    """

    box: Box
    encoding: np.ndarray


class FaceRecord(TypedDict):
    imagePath: str
    loc: Box
    encoding: np.ndarray


def make_record(image_path: str, box: Box, encoding: np.ndarray) -> FaceRecord:
    """Build one record, normalising types to the tutorial's (ints, float64)."""
    top, right, bottom, left = (int(v) for v in box)
    return {
        "imagePath": image_path,
        "loc": (top, right, bottom, left),
        "encoding": np.asarray(encoding, dtype=np.float64).reshape(ENCODING_SIZE),
    }


def make_video_record(video_path: str, box: Box, encoding: np.ndarray, frame: int, time: float,
                      track: int | None = None) -> FaceRecord:
    """A record of a face seen in a video: ``imagePath`` is the video, plus ``frame``, ``time``
    (seconds) and, when given, ``track`` (the number of the track it was followed on)."""
    record = make_record(video_path, box, encoding)
    record.update(frame=int(frame), time=round(float(time), 3))  # type: ignore[typeddict-unknown-key]
    if track is not None:
        record["track"] = int(track)  # type: ignore[typeddict-unknown-key]
    return record


def scale_box(box: Box, factor: float) -> Box:
    """Multiply every coordinate by ``factor`` (e.g. to map a detection back
    from a resized copy to the original photo), rounding to whole pixels."""
    return tuple(int(round(v * factor)) for v in box)  # type: ignore[return-value]


def box_area(box: Box) -> int:
    """Pixels inside the box (0 for an empty one)."""
    top, right, bottom, left = box
    return max(0, bottom - top) * max(0, right - left)


def clip_box(box: Box, width: int, height: int) -> Box:
    """Clip a box to the image: detector boxes may overhang the picture."""
    top, right, bottom, left = box
    return (max(0, top), min(width, right), min(height, bottom), max(0, left))


def box_from_dlib(rect) -> Box:
    """dlib.rectangle -> ``(top, right, bottom, left)``."""
    return (rect.top(), rect.right(), rect.bottom(), rect.left())


def box_to_dlib(box: Box):
    """``(top, right, bottom, left)`` -> dlib.rectangle."""
    import dlib

    top, right, bottom, left = box
    return dlib.rectangle(left, top, right, bottom)


def is_from_video(record: Mapping) -> bool:
    """Whether a record is a face of a video frame (it has a ``time``) rather than of a photo."""
    return "time" in record


@dataclass(frozen=True)
class Sighting:
    """A face of a video, at one look: where, when, its encoding and how good a picture it is."""

    frame: int
    time: float
    box: Box
    encoding: np.ndarray
    quality: float


@dataclass
class Track:
    """One face followed over consecutive looks (oldest first)."""

    sightings: list[Sighting] = field(default_factory=list)

    @property
    def first(self) -> Sighting:
        return self.sightings[0]

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]

"""One segment of one video, in a worker: sample its frames, find and encode faces, follow them.

A worker's task is a :class:`Segment` (a video and a stretch of it in
seconds); it returns a :class:`~facecluster.store.video_cache.SegmentDone`
whose tracks hold only the faces that can still be kept (each track's
representatives, and its first and last face for stitching segments), so a
minute on screen costs a few hundred bytes, not a frame per look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..sources.skips import ImageSkipped
from ..records import Face
from ..sources.video import FrameSampler, Look, VideoInfo
from .pipeline import Method
from ..records import Sighting, Track
from .tracks import Tracker, face_quality, representatives
from ..store.video_cache import SegmentDone

# Longest and shortest stretch of video one task covers.  Short videos are
# still split in four, so a single clip keeps every core busy; long ones are
# cut every minute, so a killed run loses at most a minute of video per worker.
MAX_SEGMENT_SECONDS = 60.0
MIN_SEGMENT_SECONDS = 5.0
# Bhattacharyya distance between colour histograms of consecutive looks above
# which the shot changed (a cut); a person moving within a shot stays well under.
SHOT_CHANGE = 0.5
_QUALITY_CROP = 48  # side of the grayscale square the face quality is measured on
# Every this many looks is a full look (the detector's larger look and its
# crop look where the first look finds nothing); the others are its first look
# alone.  On a frame with no face a full look costs about 3-4 quick ones, a
# scene with no face may last minutes, and a small face that stays on screen
# is still found within a few looks (docs/video.md).
FULL_LOOK_EVERY = 4


@dataclass(frozen=True)
class Segment:
    """A stretch of one video: ``start`` to ``end`` seconds from its first frame."""

    path: str
    info: VideoInfo
    start: float
    end: float  # math.inf for the last segment: read to the end, whatever the header said

    @property
    def seconds(self) -> float:
        """Seconds of video this segment stands for (for progress)."""
        return max(0.0, min(self.end, self.info.duration) - self.start)


def plan_segments(path: str, info: VideoInfo) -> list[Segment]:
    """Cut a video into segments; the same video always gets the same cuts (so cached ones match)."""
    length = min(MAX_SEGMENT_SECONDS, max(MIN_SEGMENT_SECONDS, info.duration / 4))
    count = max(1, math.ceil(info.duration / length - 1e-6))
    starts = [round(index * length, 3) for index in range(count)]
    return [Segment(path, info, start, starts[i + 1] if i + 1 < count else math.inf) for i, start in enumerate(starts)]


def _histogram(rgb: np.ndarray) -> np.ndarray:
    small = cv2.resize(rgb, (96, 54), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    return cv2.normalize(hist, hist).flatten()


def shot_changed(before: np.ndarray | None, now: np.ndarray) -> bool:
    """Whether two looks' colour histograms differ like two shots, not like one shot moving."""
    return before is not None and cv2.compareHist(before, now, cv2.HISTCMP_BHATTACHARYYA) > SHOT_CHANGE


def _sighting(look: Look, face: Face) -> Sighting:
    top, right, bottom, left = face.box
    gray = cv2.cvtColor(look.rgb[top:bottom, left:right], cv2.COLOR_RGB2GRAY)
    side = max(1, min(bottom - top, right - left))
    quality = face_quality(cv2.resize(gray, (_QUALITY_CROP, _QUALITY_CROP), interpolation=cv2.INTER_AREA), side)
    return Sighting(look.frame, look.time, face.box, np.asarray(face.encoding, dtype=np.float64), quality)


def kept_part(track: Track, faces_per_track: int) -> Track:
    """The track reduced to what may still be kept: representatives, and its first and last face."""
    chosen = representatives(track.sightings, faces_per_track)
    keep = {id(s) for s in chosen} | {id(track.first), id(track.last)}
    return Track([s for s in track.sightings if id(s) in keep])


def encode_segment(segment: Segment, method: Method, step: float, faces_per_track: int) -> SegmentDone:
    """A worker's task: the tracks of ``segment`` (see the module docstring).

    Raises :class:`~facecluster.sources.images.ImageSkipped` when the video cannot be
    opened any more; a frame the models fail on is passed over.
    """
    sampler = FrameSampler(segment.path, segment.info, segment.start, segment.end, step)
    tracker = Tracker(step)
    looks, before = 0, None
    for look in sampler:
        now = _histogram(look.rgb)
        if shot_changed(before, now):
            tracker.cut()
        before = now
        try:
            faces = method.find_faces([look.rgb], quick=looks % FULL_LOOK_EVERY != 0)[0]
        except (RuntimeError, ValueError):  # dlib on a pathological frame: the next look goes on
            continue
        tracker.add(look.time, [_sighting(look, face) for face in faces])
        looks += 1
    tracks = [kept_part(track, faces_per_track) for track in tracker.finish()]
    return SegmentDone(segment.start, tracks, looks, sampler.last_time, sampler.stopped or "")


def run_segment(segment: Segment, method: Method, step: float, faces_per_track: int) -> SegmentDone | ImageSkipped:
    """:func:`encode_segment`, with a video that can't be read as the returned reason (never raises for it)."""
    try:
        return encode_segment(segment, method, step, faces_per_track)
    except ImageSkipped as skipped:
        return skipped
    except MemoryError:
        return ImageSkipped("out of memory while finding faces", "out of memory", transient=True)
    except Exception as error:  # the worker's boundary: whatever a hostile file provokes is its own line
        return ImageSkipped(f"could not be processed: {type(error).__name__}: {error}", "failed")

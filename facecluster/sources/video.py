"""Frames from videos: found by content, probed, sampled at a step in seconds, upright.

Decoding is PyAV's (``av``), whose wheel ships its own FFmpeg, so no system
package is needed.  Frames are streamed one at a time (a 4K video never holds
more than the frame being looked at), turned upright from the stream's display
matrix (phone videos), and timed from their presentation stamps, so a
variable frame rate gives true times.  Every failure is an
:class:`~facecluster.sources.images.ImageSkipped` with a one-line reason, or, after
the first frames, a note that decoding stopped early (the faces found before
that are kept).

Times are seconds from the first frame (what a browser's ``#t=`` means);
``frame`` numbers are that time at the stream's average rate.
"""

from __future__ import annotations

import itertools
import math
import os
import stat
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..files import open_regular
from .images import LoadedImage
from .skips import ImageSkipped

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .qt .mkv .webm .avi .wmv .asf .mpg .mpeg .ts .mts .m2ts .3gp .3g2 .flv .ogv".split()
)
# ISO-BMFF brands that are still pictures, not movies (images.py reads those).
_PICTURE_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")
# QuickTime files may open with one of these atoms instead of ``ftyp``.
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def sniff_video(head: bytes) -> bool:
    """Whether a file's first bytes (200 or more for MPEG-TS) look like a video container we decode."""
    if head[4:8] == b"ftyp":
        return head[8:12] not in _PICTURE_BRANDS
    if head[4:8] in _QUICKTIME_ATOMS:
        return True
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, WebM
        return True
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return True
    if head.startswith((b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", b"FLV\x01", b"\x00\x00\x01\xba", b"OggS")):
        return True  # ASF/WMV, FLV, MPEG program stream, Ogg (an Ogg without video is told apart on probing)
    if len(head) > 196 and head[4] == 0x47 and head[196] == 0x47:  # M2TS (AVCHD): 4-byte stamp per packet
        return True
    return len(head) > 188 and head[0] == 0x47 and head[188] == 0x47  # MPEG transport stream


def named_like_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoInfo:
    """What a probe of a video found: its length, rate and upright size."""

    duration: float  # seconds (container's, or the stream's)
    fps: float  # average frame rate
    width: int  # upright
    height: int
    start: float  # presentation time of the first frame, in seconds


def _av():
    # Imported on use: the photo-only path never loads FFmpeg.  PyAV's log level is
    # left alone: a Python log callback from FFmpeg's decoding threads can deadlock.
    try:
        import av
    except ImportError:  # a photo-only install: each video is skipped with this line
        raise ImageSkipped("videos need PyAV: pip install av", "no decoder") from None
    return av


def _open(path: str):
    """The open container and its first video stream; ImageSkipped when there is none."""
    av = _av()
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or /dev/stdin would block FFmpeg forever
            raise ImageSkipped("not a regular file", "not a file")
        if info.st_size == 0:
            raise ImageSkipped("empty file (0 bytes)", "empty")
        container = av.open(path, metadata_errors="ignore")
    except ImageSkipped:
        raise
    except av.error.PermissionError:
        raise ImageSkipped("permission denied", "unreadable") from None
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        if _looks_like_video(path):  # a container we know, damaged: e.g. cut off before its index
            raise ImageSkipped(f"corrupt or truncated video, cannot be opened ({_why(error)})", "corrupt") from None
        raise ImageSkipped(f"not a video (unrecognised content: {_why(error)})", "not a video") from None
    except OSError as error:
        raise ImageSkipped(f"cannot read ({error.strerror or error})", "unreadable") from None
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams})
        container.close()
        if "audio" in kinds:
            raise ImageSkipped("audio only: no video stream", "no video")
        raise ImageSkipped("no video stream", "no video")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame threads: decoding is a small part of the time
    return container, stream


def _looks_like_video(path: str) -> bool:
    try:
        with open_regular(path) as handle:
            return sniff_video(handle.read(256))
    except OSError:
        return False


def _why(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.split(":")[-1].strip() or type(error).__name__


def _first_frame(container, stream):
    for frame in container.decode(stream):
        return frame
    return None


def probe_video(path: str) -> VideoInfo:
    """Open ``path`` and read its first frame; ImageSkipped (one-line reason) when unusable."""
    av = _av()
    container, stream = _open(path)
    try:
        try:
            first = _first_frame(container, stream)
        except av.FFmpegError as error:
            raise ImageSkipped(f"corrupt video: no frame could be decoded ({_why(error)})", "corrupt") from None
        if first is None or first.time is None:
            raise ImageSkipped("corrupt or truncated video: no frame could be decoded", "corrupt")
        rate = stream.average_rate or stream.guessed_rate or 25
        duration = _duration(container, stream, first.time)
        width, height = (first.height, first.width) if _quarter_turns(first) % 2 else (first.width, first.height)
        return VideoInfo(duration=duration, fps=float(rate), width=width, height=height, start=float(first.time))
    finally:
        container.close()


def _duration(container, stream, first_time: float) -> float:
    """Seconds from the first frame to the end, from the stream's or the container's header."""
    if stream.duration is not None and stream.time_base is not None:
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else first_time
        return max(0.0, float(stream.duration * stream.time_base) + start - first_time)
    if container.duration is not None:
        return max(0.0, container.duration / 1_000_000 - first_time)
    return 0.0  # unknown (a raw stream): one segment, read to its end


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that make ``frame`` upright (its display matrix)."""
    try:
        degrees = frame.rotation or 0
    except (AttributeError, ValueError):
        return 0
    return int(round(degrees / 90)) % 4


def upright_rgb(frame) -> np.ndarray:
    """The decoded frame as an upright, contiguous 8-bit RGB array."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


@dataclass(frozen=True)
class Look:
    """One sampled frame: its number, its time (seconds from the first frame) and pixels."""

    frame: int
    time: float
    rgb: np.ndarray


class FrameSampler:
    """The frames of ``path`` from ``start`` to ``end`` seconds, one every ``step`` seconds.

    Looks fall on the grid ``0, step, 2*step, ...`` (whatever the segment), so
    segments of one video see the same frames as one pass would.  Iterate to
    get :class:`Look` s; afterwards ``stopped`` holds why decoding ended early
    (``None`` when the part was read to its end) and ``last_time`` the time of
    the last frame decoded.
    """

    def __init__(self, path: str, info: VideoInfo, start: float, end: float, step: float):
        self.path, self.info, self.start, self.end, self.step = path, info, start, end, step
        self.stopped: str | None = None
        self.last_time = start

    def __iter__(self) -> Iterator[Look]:
        av = _av()
        with _Decoding(self.path, self.info, self.start) as decoding:
            next_look = math.ceil(self.start / self.step - 1e-9) * self.step
            early = min(0.5 / self.info.fps, self.step / 4)  # a frame this close before a look's time is its frame
            try:
                for frame in decoding.frames:
                    time = frame.time - self.info.start
                    self.last_time = max(self.last_time, time)
                    if time + early >= self.end:  # that look is the next segment's
                        break
                    if time + early < next_look:
                        continue
                    yield Look(round(time * self.info.fps), round(time, 3), upright_rgb(frame))
                    next_look = (math.floor((time + early) / self.step + 1e-9) + 1) * self.step
            except av.FFmpegError as error:
                self.stopped = f"decoding stopped at {self.last_time:.1f} s ({_why(error)})"


# A seek that lands this much after its target found no keyframe near it (a
# stream without an index); a stream with keyframes every few seconds lands closer.
SEEK_SLACK = 10.0


class _Decoding:
    """The timed frames of a video from (at most a keyframe before) ``at`` seconds on.

    Seeks when ``at`` > 0; where the seek finds no frame at or before ``at``
    (a stream without an index, e.g. MPEG-TS with one keyframe), decodes from
    the start instead -- slower, never wrong.  A context manager: closes the file.
    """

    def __init__(self, path: str, info: VideoInfo, at: float):
        self.path, self.info = path, info
        self.container, self.frames = self._from(at)
        first = self._first()
        if at > 0 and (first is None or first.time - info.start > at + SEEK_SLACK):
            self.container.close()
            self.container, self.frames = self._from(0.0)
            first = self._first()
        self.frames = itertools.chain([first] if first is not None else [], self.frames)

    def _first(self):
        try:
            return next(self.frames, None)
        except _av().FFmpegError:
            return None  # unreadable from here: the caller finds no frames

    def _from(self, at: float):
        av = _av()
        container, stream = _open(self.path)
        if at > 0:
            try:
                container.seek(int((self.info.start + at) / stream.time_base), stream=stream, backward=True)
            except av.FFmpegError:
                pass  # not seekable: decoded from the start
        return container, (frame for frame in container.decode(stream) if frame.time is not None)

    def __enter__(self) -> "_Decoding":
        return self

    def __exit__(self, *exc) -> None:
        self.container.close()


def read_frames(path: str, times: list[float], max_side: int = 1280) -> Iterator[tuple[float, np.ndarray | None, float]]:
    """Yield ``(time, rgb or None, scale)`` for each of ``times`` (sorted), decoding ``path`` once.

    Frames are reduced to ``max_side`` (``scale`` maps original pixels to
    these); seeks only across long gaps.  ``None`` for a time past the
    readable part.  Raises ImageSkipped when the video can't be opened.
    """
    import cv2

    av = _av()
    info = probe_video(path)
    pending = sorted(times)
    decoding: _Decoding | None = None
    try:
        position, sought = -math.inf, None
        while pending:
            target = pending[0]
            if decoding is None or (target - position > 5.0 and sought != target):
                sought = target  # once: the keyframe found may lie far before it
                if decoding is not None:
                    decoding.container.close()
                decoding = _Decoding(path, info, max(0.0, target - 0.5))
            try:
                frame = next(decoding.frames)
            except (StopIteration, av.FFmpegError):
                yield from ((time, None, 1.0) for time in pending)
                return
            position = frame.time - info.start
            while pending and position + 0.5 / info.fps >= pending[0]:
                rgb = upright_rgb(frame)
                scale = min(1.0, max_side / max(rgb.shape[:2]))
                if scale < 1.0:
                    rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)),
                                     interpolation=cv2.INTER_AREA)
                yield pending.pop(0), rgb, scale
    finally:
        if decoding is not None:
            decoding.container.close()


def video_frames(path: str, times: list[float]) -> Iterator[tuple[float, LoadedImage | None]]:
    """Yield ``(time, frame)`` for each of ``times``; ``None`` for one past the readable part.

    Frames are reduced to at most 1280 pixels a side (``scale`` says by how
    much), which tiles and thumbnails never miss.  Raises
    :class:`~facecluster.sources.images.ImageSkipped` when the video can't be opened.
    """
    for time, rgb, scale in read_frames(path, times):
        if rgb is None:
            yield time, None
        else:
            original = (round(rgb.shape[1] / scale), round(rgb.shape[0] / scale))
            yield time, LoadedImage(rgb=rgb, scale=scale, original_size=original)

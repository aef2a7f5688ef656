"""The videos of an encoding run: every video of the folder, in segments, over every core.

:func:`encode_videos` probes each video (in the workers: a hostile file may
crash FFmpeg), cuts it into segments (:func:`~.video_segments.plan_segments`),
reuses the segments kept from earlier runs, runs the rest on worker processes
as they come (many videos, or many segments of one long video, keep every core
busy), keeps each as it finishes, and then joins each video's segments into
tracks and records.

A record of a face from a video is the tutorial's record with three more keys:
``frame`` (int), ``time`` (seconds from the first frame) and ``track`` (the
number of the track it was followed on, from 0 in each video: clustering keeps
a track's faces together); ``imagePath`` is the video's path.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from ..sources.skips import ImageSkipped, Skip, display_path
from ..records import FaceRecord, make_video_record
from ..sources.video import VideoInfo, probe_video
from .pipeline import Method
from .pool import KILLED, STALLED, in_pool
from .tracks import representatives, stitch
from ..store.video_cache import SegmentCache, SegmentDone, VideoStamp
from .video_segments import Segment, plan_segments, run_segment

# Bump when a change would sample, track or keep faces differently.
VIDEO_VERSION = 3
DEFAULT_STEP = 0.5  # seconds between looks; see docs/video.md for the measurements
DEFAULT_FACES_PER_TRACK = 5
_CRASHED = ImageSkipped("crashed the video decoder", "crashed", transient=True)
_STALLED = ImageSkipped("the video decoder stopped responding", "stalled", transient=True)


@dataclass(frozen=True)
class VideoOptions:
    """How videos are looked at: every ``step`` seconds, keeping ``faces_per_track`` faces a track."""

    step: float = DEFAULT_STEP
    faces_per_track: int = DEFAULT_FACES_PER_TRACK

    def __post_init__(self) -> None:
        if not 0.04 <= self.step <= 60:
            raise ValueError(f"--video-step must be 0.04 to 60 seconds, not {self.step}")
        if not 1 <= self.faces_per_track <= 100:
            raise ValueError(f"--faces-per-track must be 1 to 100, not {self.faces_per_track}")

    def cache_key(self, method: Method) -> str:
        return f"{method.cache_key()}/video-v{VIDEO_VERSION}/step={self.step:g}/keep={self.faces_per_track}"


@dataclass
class VideoSummary:
    """What became of the videos."""

    videos: int = 0
    seconds: float = 0.0  # of video looked at
    tracks: int = 0
    faces: int = 0
    reused: int = 0  # videos whose every segment was kept from an earlier run
    segments: int = 0
    segments_reused: int = 0  # e.g. the finished part of a video whose run was killed
    no_face: list[str] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each: read only in part


class VideoProgress:
    """Progress in seconds of video, with speed against real time and an ETA; one line per finished segment."""

    def __init__(self, total: float, out=sys.stdout):
        self.total, self.done, self.out = total, 0.0, out
        self.started = time.perf_counter()

    def advance(self, seconds: float, reused: bool = False) -> None:
        self.done += seconds
        if reused:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        speed = self.done / elapsed
        eta = (self.total - self.done) / speed if speed > 0 else 0.0
        print(f"[INFO] video: {self.done:,.1f}/{self.total:,.1f} s of video, {speed:.1f}x real time, "
              f"ETA {max(0.0, eta):,.0f} s", file=self.out, flush=True)


def _as_skipped(result):
    """A worker's result, or why there is none when the pool lost the worker (:func:`~.pool.in_pool`)."""
    return _CRASHED if result is KILLED else _STALLED if result is STALLED else result


def _probe(path: str) -> VideoInfo | ImageSkipped:
    try:
        return probe_video(path)
    except ImageSkipped as skipped:
        return skipped
    except Exception as error:  # the worker's boundary: whatever a hostile file provokes is its own line
        return ImageSkipped(f"could not be probed: {type(error).__name__}: {error}", "failed")


@dataclass
class _Video:
    path: str
    info: VideoInfo
    stamp: VideoStamp
    segments: list[Segment]
    done: dict[float, SegmentDone] = field(default_factory=dict)


def _probed(paths: list[str], workers: int, summary: VideoSummary) -> list[_Video]:
    """The videos that open, with their segments planned; the others go to ``summary.skipped``."""
    videos = []
    for path, found in in_pool(_probe, paths, workers):
        found = _as_skipped(found)
        stamp = VideoStamp.of(path)
        if isinstance(found, ImageSkipped) or stamp is None:
            skipped = found if isinstance(found, ImageSkipped) else ImageSkipped("vanished", "missing")
            summary.skipped.append(Skip(path, skipped.category, skipped.reason))
        else:
            videos.append(_Video(path, found, stamp, plan_segments(path, found)))
    return sorted(videos, key=lambda video: video.path)


def encode_videos(
    paths: list[str],
    encodings_path: str,
    method: Method,
    options: VideoOptions = VideoOptions(),
    *,
    workers: int = 0,
    fresh: bool = False,
    root: str = "",
    out=sys.stdout,
) -> tuple[list[FaceRecord], VideoSummary]:
    """Find, follow and encode the faces of every video in ``paths``; return their records and a summary.

    Segments kept beside ``encodings_path`` are reused unless ``fresh``; each
    new one is kept as it finishes.  Bad videos are skipped with a reason,
    never raised.  Records come by video path, then time.
    """
    summary = VideoSummary(videos=len(paths))
    if not paths:
        return [], summary
    workers = workers or os.cpu_count() or 1
    videos = _probed(paths, workers, summary)
    cache = SegmentCache(encodings_path, options.cache_key(method))
    try:
        progress = VideoProgress(sum(video.info.duration for video in videos), out)
        todo = _reused(videos, cache, fresh, progress, summary)
        _run(todo, method, options, workers, cache, progress, summary)
        cache.prune(root, paths)
    finally:
        cache.close()
    records = [record for video in videos for record in _records(video, options, summary)]
    summary.skipped.sort()
    summary.faces = len(records)
    return records, summary


def _reused(videos: list[_Video], cache: SegmentCache, fresh: bool, progress: VideoProgress,
            summary: VideoSummary) -> list[tuple[_Video, Segment]]:
    """Fill in the segments kept from earlier runs; return those still to do."""
    todo = []
    for video in videos:
        summary.segments += len(video.segments)
        for segment in video.segments:
            kept = None if fresh else cache.lookup(video.path, video.stamp, segment.start)
            if kept is None:
                todo.append((video, segment))
            else:
                video.done[segment.start] = kept
                progress.advance(segment.seconds, reused=True)
        summary.reused += len(video.done) == len(video.segments)
        summary.segments_reused += len(video.done)
    return todo


def _run(todo: list[tuple[_Video, Segment]], method: Method, options: VideoOptions, workers: int,
         cache: SegmentCache, progress: VideoProgress, summary: VideoSummary) -> None:
    """Run the segments still to do on the workers, keeping each as it finishes."""
    if todo:
        method.preload()  # once, before the workers fork
    task = _SegmentTask(method, options.step, options.faces_per_track)
    videos = {video.path: video for video, _ in todo}
    for segment, result in in_pool(task, [segment for _, segment in todo], workers):
        result = _as_skipped(result)
        video = videos[segment.path]
        if isinstance(result, ImageSkipped):
            video.done[segment.start] = SegmentDone(segment.start, [], stopped=result.reason)
        else:
            video.done[segment.start] = result
            cache.store(video.path, video.stamp, result)
        progress.advance(segment.seconds)


@dataclass(frozen=True)
class _SegmentTask:
    """A picklable callable: one segment through :func:`run_segment`."""

    method: Method
    step: float
    faces_per_track: int

    def __call__(self, segment: Segment) -> SegmentDone | ImageSkipped:
        return run_segment(segment, self.method, self.step, self.faces_per_track)


def _records(video: _Video, options: VideoOptions, summary: VideoSummary) -> list[FaceRecord]:
    """One video's records: its segments' tracks joined, a few faces kept a track; notes a partial read."""
    parts = [video.done[segment.start] for segment in video.segments if segment.start in video.done]
    tracks = stitch([part.tracks for part in parts], options.step)
    records = [make_video_record(video.path, s.box, s.encoding, s.frame, s.time, number)
               for number, track in enumerate(tracks)
               for s in representatives(track.sightings, options.faces_per_track)]
    read_to = max((part.read_to for part in parts), default=0.0)
    summary.seconds += min(read_to, video.info.duration) if video.info.duration else read_to
    summary.tracks += len(tracks)
    stopped = next((part.stopped for part in parts if part.stopped), "")
    if stopped or read_to < video.info.duration - max(1.0, 2 * options.step):
        summary.notes.append(f"{display_path(video.path)}: read only to {read_to:.1f} s of "
                             f"{video.info.duration:.1f} s ({stopped or 'truncated'}); faces of the readable part kept")
    if not records:
        summary.no_face.append(video.path)
    return sorted(records, key=lambda record: (record["time"], record["loc"]))


def add_to_summary(summary, videos: VideoSummary) -> None:
    """Count the videos into the photos' :class:`~.pipeline.RunSummary`: their
    faces, and skipped and face-less videos into the photos' lists (and their
    files).  :func:`~.report.print_videos` says what they gave."""
    if not videos.videos:
        return
    summary.faces += videos.faces
    summary.no_face.extend(videos.no_face)
    summary.skipped = sorted([*summary.skipped, *videos.skipped])

"""Finished video segments kept between runs: a killed run resumes, an unchanged video is reused.

Rows live in the same SQLite file as the photos' results
(``<encodings>.cache.sqlite``), in table ``video_segments``: one row per
(video, options, segment start), committed as each segment finishes, so a run
killed with SIGKILL in the middle of a long video redoes only the segments
that were in flight.  A row is used only while the video's size and mtime are
unchanged; storing a segment of a changed video forgets the old rows.

A segment's tracks are stored as raw float64 rows (no pickle):
``track, frame, time, quality, top, right, bottom, left, encoding[128]``.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import numpy as np

from .photo_cache import SqliteCache, cache_path_for, connect, delete_gone, path_key
from ..records import ENCODING_SIZE, Sighting, Track

_SCHEMA = """
CREATE TABLE IF NOT EXISTS video_segments (
    video BLOB NOT NULL,         -- os.fsencode(os.path.realpath(path))
    options TEXT NOT NULL,       -- detector, encoder and video options
    start_ms INTEGER NOT NULL,   -- the segment's start, in ms of video
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    looks INTEGER NOT NULL,
    read_to REAL NOT NULL,       -- time of the last frame decoded, in seconds
    stopped TEXT NOT NULL,       -- why decoding stopped early ('' if it did not)
    tracks BLOB NOT NULL,
    PRIMARY KEY (video, options, start_ms)
);
"""
_ROW = 8 + ENCODING_SIZE


@dataclass(frozen=True)
class VideoStamp:
    """What must be unchanged for a video's segments to be reused."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> "VideoStamp | None":
        try:
            info = os.stat(path)
        except OSError:
            return None
        return cls(info.st_size, info.st_mtime_ns)


@dataclass
class SegmentDone:
    """One segment's outcome: its tracks (only the faces worth keeping), looks and how far it read."""

    start: float
    tracks: list[Track]
    looks: int = 0
    read_to: float = 0.0
    stopped: str = ""


def pack_tracks(tracks: list[Track]) -> bytes:
    rows = [[number, s.frame, s.time, s.quality, *s.box, *s.encoding]
            for number, track in enumerate(tracks) for s in track.sightings]
    return np.array(rows, dtype=np.float64).tobytes() if rows else b""


def unpack_tracks(blob: bytes) -> list[Track]:
    if not blob:
        return []
    tracks: dict[int, Track] = {}
    for row in np.frombuffer(blob, dtype=np.float64).reshape(-1, _ROW):
        box = tuple(int(v) for v in row[4:8])
        sighting = Sighting(int(row[1]), float(row[2]), box, row[8:].copy(), float(row[3]))  # type: ignore[arg-type]
        tracks.setdefault(int(row[0]), Track()).sightings.append(sighting)
    return [tracks[number] for number in sorted(tracks)]


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


class SegmentCache(SqliteCache):
    """Finished segments by (video, options, start); see the module docstring.

    Opened, and its errors reported, as the photos' cache is (:class:`~.photo_cache.SqliteCache`):
    a full disk stops the run with one line and keeps the file; a segment whose
    stored tracks do not add up is done again.
    """

    def __init__(self, encodings_path: str, options_key: str):
        path = cache_path_for(encodings_path)
        super().__init__(path, connect(path, _SCHEMA, lambda line: print(line, file=sys.stderr), timeout=30))
        self.options_key = options_key

    def lookup(self, path: str, stamp: VideoStamp, start: float) -> SegmentDone | None:
        """The stored segment of ``path`` starting at ``start``, if the video is unchanged."""
        with self._guard("read"):
            row = self._db.execute(
                "SELECT size, mtime_ns, looks, read_to, stopped, tracks FROM video_segments"
                " WHERE video = ? AND options = ? AND start_ms = ?", (path_key(path), self.options_key, _ms(start)),
            ).fetchone()
        if row is None or (row[0], row[1]) != (stamp.size, stamp.mtime_ns):
            return None
        blob = row[5]
        if not isinstance(blob, bytes) or len(blob) % (_ROW * 8) or not np.isfinite(np.frombuffer(blob)).all():
            return None  # a damaged row: the segment is done again
        return SegmentDone(start, unpack_tracks(blob), row[2], row[3], row[4])

    def store(self, path: str, stamp: VideoStamp, done: SegmentDone) -> None:
        """Keep a finished segment (and forget segments of an earlier version of the video)."""
        key = path_key(path)
        read_to = done.read_to if math.isfinite(done.read_to) else 0.0
        with self._guard("write"):
            self._db.execute("DELETE FROM video_segments WHERE video = ? AND options = ? AND (size != ? OR mtime_ns != ?)",
                             (key, self.options_key, stamp.size, stamp.mtime_ns))
            self._db.execute(
                "INSERT OR REPLACE INTO video_segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, self.options_key, _ms(done.start), stamp.size, stamp.mtime_ns, done.looks, read_to, done.stopped,
                 pack_tracks(done.tracks)),
            )

    def prune(self, root: str, keep: list[str]) -> int:
        """Forget this options' videos under folder ``root`` that are not in ``keep``; returns rows removed."""
        with self._guard("update"):
            return delete_gone(self._db, "video_segments", "video", self.options_key, root, keep)

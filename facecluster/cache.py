"""Finished work kept between runs, so nothing is encoded twice.

Beside the encodings file lives ``<encodings>.cache.sqlite``: one row per photo
with its size and modification time, the options it was encoded with, and its
faces (boxes and encodings as raw float64 bytes -- no pickle, nothing that
could run).  Each photo's row is committed as soon as it is done, so a run
killed at any moment (even with SIGKILL) loses at most the photos that were in
flight, and the next run picks up where it stopped.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass

import numpy as np

from .records import ENCODING_SIZE, Box

_SCHEMA = """
CREATE TABLE IF NOT EXISTS photos (
    path BLOB PRIMARY KEY,       -- os.fsencode(path): names need not be UTF-8
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL,        -- 'faces', 'no-face' or 'skipped'
    reason TEXT NOT NULL,
    faces BLOB NOT NULL          -- float64 rows: top, right, bottom, left, encoding[128]
)
"""
_ROW = 4 + ENCODING_SIZE


@dataclass(frozen=True)
class Fingerprint:
    """What must be unchanged for an earlier result to be reused."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> "Fingerprint | None":
        try:
            info = os.stat(path)
        except OSError:
            return None
        return cls(info.st_size, info.st_mtime_ns)


@dataclass(frozen=True)
class PhotoResult:
    """One photo's outcome: its faces, or why it has none."""

    path: str
    status: str  # 'faces' | 'no-face' | 'skipped'
    faces: list[tuple[Box, np.ndarray]]
    reason: str = ""


def cache_path_for(encodings_path: str) -> str:
    return f"{encodings_path}.cache.sqlite"


def _pack(faces: list[tuple[Box, np.ndarray]]) -> bytes:
    if not faces:
        return b""
    rows = np.array([[*box, *encoding] for box, encoding in faces], dtype=np.float64)
    return rows.tobytes()


def _unpack(blob: bytes) -> list[tuple[Box, np.ndarray]]:
    if not blob:
        return []
    rows = np.frombuffer(blob, dtype=np.float64).reshape(-1, _ROW)
    return [(tuple(int(v) for v in row[:4]), row[4:].copy()) for row in rows]  # type: ignore[misc]


class ResultCache:
    """Earlier results keyed by photo path; see the module docstring."""

    def __init__(self, path: str, options_key: str):
        self.path = path
        self.options_key = options_key
        self._db = sqlite3.connect(path, isolation_level=None)  # autocommit: one row, one commit
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def lookup(self, path: str, fingerprint: Fingerprint) -> PhotoResult | None:
        """The stored result for ``path`` if the photo and options are unchanged."""
        row = self._db.execute(
            "SELECT size, mtime_ns, options, status, reason, faces FROM photos WHERE path = ?",
            (os.fsencode(path),),
        ).fetchone()
        if row is None:
            return None
        size, mtime_ns, options, status, reason, faces = row
        if (size, mtime_ns, options) != (fingerprint.size, fingerprint.mtime_ns, self.options_key):
            return None
        return PhotoResult(path, status, _unpack(faces), reason)

    def store(self, result: PhotoResult, fingerprint: Fingerprint) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO photos VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                os.fsencode(result.path),
                fingerprint.size,
                fingerprint.mtime_ns,
                self.options_key,
                result.status,
                result.reason,
                _pack(result.faces),
            ),
        )

    def prune(self, keep: set[str]) -> int:
        """Forget photos that are no longer in the dataset; returns how many."""
        wanted = {os.fsencode(path) for path in keep}
        stored = [row[0] for row in self._db.execute("SELECT path FROM photos")]
        gone = [(path,) for path in stored if path not in wanted]
        self._db.executemany("DELETE FROM photos WHERE path = ?", gone)
        return len(gone)

    def close(self) -> None:
        self._db.close()

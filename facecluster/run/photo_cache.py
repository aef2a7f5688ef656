"""Finished work kept between runs, so nothing is encoded twice.

Beside the encodings file lives ``<encodings>.cache.sqlite``: one row per
(photo, options), so runs with other options (``-d hog`` then ``-d cnn``) keep
each other's results.  A photo is known by its resolved path (a relative and
an absolute run share rows) and its content: size, modification time and a
BLAKE2b digest of its bytes, which finds a photo again after its folder was
moved or renamed, or its time touched.  Faces are stored as raw float64 bytes
(boxes and encodings -- no pickle, nothing that could run).  Each photo's row
is committed as soon as it is done, so a run killed at any moment (even with
SIGKILL) loses at most the photos that were in flight.

Passing failures (out of memory, a crashed worker) are never kept: the next
run tries those photos again.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..records import ENCODING_SIZE, Face

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    photo BLOB NOT NULL,         -- os.fsencode(os.path.realpath(path)): names need not be UTF-8
    options TEXT NOT NULL,       -- the detector and encoder's cache key
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    digest BLOB NOT NULL,        -- BLAKE2b-128 of the file's bytes
    status TEXT NOT NULL,        -- 'faces', 'no-face' or 'skipped'
    category TEXT NOT NULL,      -- why skipped, in a word ('' otherwise)
    reason TEXT NOT NULL,
    faces BLOB NOT NULL,         -- float64 rows: top, right, bottom, left, encoding[128]
    PRIMARY KEY (photo, options)
);
CREATE INDEX IF NOT EXISTS results_by_content ON results (options, size, digest);
"""
_COLUMNS = "size, mtime_ns, digest, status, category, reason, faces"
_ROW = 4 + ENCODING_SIZE


@dataclass(frozen=True)
class Fingerprint:
    """What must be unchanged for an earlier result to be reused.

    ``digest`` is ``b""`` until computed: a stat is enough to recognise an
    untouched photo; the digest (reading the whole file) is needed only to
    recognise one that moved, and to store a result.
    """

    size: int
    mtime_ns: int
    digest: bytes = b""

    @classmethod
    def of(cls, path: str, with_digest: bool = False) -> "Fingerprint | None":
        """The photo at ``path`` as it is now, or ``None`` if it can't be read."""
        try:
            info = os.stat(path)
            return cls(info.st_size, info.st_mtime_ns, digest_of(path) if with_digest else b"")
        except OSError:
            return None


def digest_of(path: str) -> bytes:
    """BLAKE2b-128 of the file's bytes (about 2 ms per MB here: under 1% of encoding a photo)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).digest()


@dataclass(frozen=True)
class PhotoResult:
    """One photo's outcome: its faces, or why it has none.

    ``category`` is a skip's reason in a word, to count by; ``passing``
    marks a failure that may not happen again, never kept; ``fingerprint``
    is the file as it was read, kept with the result.
    """

    path: str
    status: str  # 'faces' | 'no-face' | 'skipped'
    faces: list[Face] = field(default_factory=list)
    reason: str = ""
    category: str = ""
    passing: bool = False
    fingerprint: Fingerprint | None = None


def cache_path_for(encodings_path: str) -> str:
    return f"{encodings_path}.cache.sqlite"


def _pack(faces: list[Face]) -> bytes:
    if not faces:
        return b""
    return np.array([[*face.box, *face.encoding] for face in faces], dtype=np.float64).tobytes()


def _unpack(blob: bytes) -> list[Face]:
    if not blob:
        return []
    rows = np.frombuffer(blob, dtype=np.float64).reshape(-1, _ROW)
    return [Face(tuple(int(v) for v in row[:4]), row[4:].copy()) for row in rows]  # type: ignore[arg-type]


def _key(path: str) -> bytes:
    return os.fsencode(os.path.realpath(path))


class ResultCache:
    """Earlier results by (photo, options); see the module docstring."""

    def __init__(self, path: str, options_key: str):
        self.path = path
        self.options_key = options_key
        self._db = sqlite3.connect(path, isolation_level=None)  # autocommit: one row, one commit
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.migrated = _migrate_first_schema(self._db)

    def lookup(self, path: str) -> PhotoResult | None:
        """The stored result for the photo at ``path`` under these options, if it is unchanged.

        Found by resolved path with the same size and time, or else by content:
        a stored photo of the same size and digest (moved, renamed, touched),
        which is then also stored under this path.
        """
        now = Fingerprint.of(path)
        if now is None:
            return None
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM results WHERE photo = ? AND options = ?", (_key(path), self.options_key)
        ).fetchone()
        if row is not None and (row[0], row[1]) == (now.size, now.mtime_ns):
            return _result(path, row)
        same_size = "SELECT 1 FROM results WHERE options = ? AND size = ? LIMIT 1"
        if self._db.execute(same_size, (self.options_key, now.size)).fetchone() is None:
            return None  # nothing it could be: don't read the file
        now = Fingerprint.of(path, with_digest=True)
        if now is None:
            return None
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM results WHERE options = ? AND size = ? AND digest = ? LIMIT 1",
            (self.options_key, now.size, now.digest),
        ).fetchone()
        if row is None:
            return None
        found = replace(_result(path, row), fingerprint=now)
        self.store(found)
        return found

    def store(self, result: PhotoResult) -> bool:
        """Keep ``result`` unless it is passing or its file could not be read; returns whether kept."""
        fingerprint = result.fingerprint
        if result.passing or fingerprint is None or not fingerprint.digest:
            return False
        self._db.execute(
            "INSERT OR REPLACE INTO results (photo, options, size, mtime_ns, digest, status, category, reason, faces)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_key(result.path), self.options_key, fingerprint.size, fingerprint.mtime_ns, fingerprint.digest,
             result.status, result.category, result.reason, _pack(result.faces)),
        )
        return True

    def prune(self, root: str, keep: list[str]) -> int:
        """Forget this options' photos under folder ``root`` that are not in ``keep``; returns how many.

        Rows of other folders encoded into the same cache, and rows of other
        options (pruned by their own runs), are left alone.
        """
        return delete_gone(self._db, "results", "photo", self.options_key, root, keep)

    def close(self) -> None:
        self._db.close()


def delete_gone(db: sqlite3.Connection, table: str, column: str, options_key: str, root: str, keep: list[str]) -> int:
    """Delete the rows of ``options_key`` whose file (``column``, a resolved path) lies under folder
    ``root`` and is not in ``keep``; returns how many files were forgotten (none without a root)."""
    if not root:
        return 0
    prefix = os.fsencode(os.path.join(os.path.realpath(root), ""))
    wanted = {_key(path) for path in keep}
    stored = db.execute(f"SELECT DISTINCT {column} FROM {table} WHERE options = ?", (options_key,)).fetchall()
    gone = [(key, options_key) for (key,) in stored if key.startswith(prefix) and key not in wanted]
    db.executemany(f"DELETE FROM {table} WHERE {column} = ? AND options = ?", gone)
    return len(gone)


def _result(path: str, row: tuple) -> PhotoResult:
    size, mtime_ns, digest, status, category, reason, faces = row
    return PhotoResult(path, status, _unpack(faces), reason, category, fingerprint=Fingerprint(size, mtime_ns, digest))


def _migrate_first_schema(db: sqlite3.Connection) -> int:
    """Carry the rows of the first schema (table ``photos``: one row per path as given) over.

    A row moves when its path, resolved from here, still has the stored size
    and time; skipped photos are simply tried again.  Returns how many moved.
    """
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'photos'").fetchone() is None:
        return 0
    moved = 0
    db.execute("BEGIN IMMEDIATE")  # all or nothing, even if killed half-way
    try:
        for path, size, mtime_ns, options, status, reason, faces in db.execute(
            "SELECT path, size, mtime_ns, options, status, reason, faces FROM photos WHERE status != 'skipped'"
        ).fetchall():
            now = Fingerprint.of(os.fsdecode(path), with_digest=True)
            if now is None or (now.size, now.mtime_ns) != (size, mtime_ns):
                continue
            db.execute(
                "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, '', ?, ?)",
                (_key(os.fsdecode(path)), options, size, mtime_ns, now.digest, status, reason, faces),
            )
            moved += 1
        db.execute("DROP TABLE photos")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return moved


def open_cache(encodings_path: str, options_key: str, warn: Callable[[str], None]) -> ResultCache:
    """The cache beside ``encodings_path``; an unreadable one is replaced, with one warning line."""
    path = cache_path_for(encodings_path)
    try:
        cache = ResultCache(path, options_key)
    except sqlite3.DatabaseError as error:
        warn(f"[WARNING] {path}: unusable progress cache ({error}); starting a new one")
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except OSError:
                pass
        return ResultCache(path, options_key)
    if cache.migrated:
        warn(f"[INFO] {path}: {cache.migrated} results carried over from an older cache format")
    return cache

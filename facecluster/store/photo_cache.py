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

Transient failures (out of memory, a crashed worker) are never kept: the next
run tries those photos again.

What is in the cache is never thrown away on a guess.  An I/O error (a full
disk, a read-only folder) stops the run with one line (:class:`CacheError`)
and leaves the file as it is, so the next run, with space again, reuses every
result.  Only a file SQLite itself calls damaged ("malformed", "not a
database", or a failed ``PRAGMA quick_check`` when it is opened) is moved
aside, under a dated name that the warning gives, and a new one started.  A
row whose stored faces do not add up (a blob of the wrong length, NaN) is a
cache miss: that photo is encoded again.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..files import MIN_FREE_BYTES, honour_umask, open_regular
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
    with open_regular(path) as handle:  # never a FIFO or a device put there since the listing
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).digest()


@dataclass(frozen=True)
class PhotoResult:
    """One photo's outcome: its faces, or why it has none.

    ``category`` is a skip's reason in a word, to count by; ``transient``
    marks a failure that may not happen again, never kept; ``fingerprint``
    is the file as it was read, kept with the result.
    """

    path: str
    status: str  # 'faces' | 'no-face' | 'skipped'
    faces: list[Face] = field(default_factory=list)
    reason: str = ""
    category: str = ""
    transient: bool = False
    fingerprint: Fingerprint | None = None


def cache_path_for(encodings_path: str) -> str:
    return f"{encodings_path}.cache.sqlite"


def _pack(faces: list[Face]) -> bytes:
    if not faces:
        return b""
    return np.array([[*face.box, *face.encoding] for face in faces], dtype=np.float64).tobytes()


def _unpack(blob: bytes) -> list[Face] | None:
    """The faces stored in ``blob``; ``None`` when it does not hold whole, finite rows (a damaged row)."""
    if not blob:
        return []
    if not isinstance(blob, bytes) or len(blob) % (_ROW * 8):
        return None
    rows = np.frombuffer(blob, dtype=np.float64).reshape(-1, _ROW)
    if not np.isfinite(rows).all() or (np.abs(rows[:, :4]) > 2**31).any():
        return None
    return [Face(tuple(int(v) for v in row[:4]), row[4:].copy()) for row in rows]  # type: ignore[arg-type]


def path_key(path: str) -> bytes:
    """A photo's key in the cache: its resolved path as bytes (a relative and an absolute run share rows)."""
    return os.fsencode(os.path.realpath(path))


class CacheError(Exception):
    """The progress cache can't be used or written (a full disk ...); ``str()`` is the one line.

    The file is left as it was: every result in it is reused by the next run.
    """


def is_damage(error: sqlite3.DatabaseError) -> bool:
    """Whether SQLite says the file itself is damaged (not an I/O error, a full disk or a lock)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    text = str(error).lower()
    return "malformed" in text or "not a database" in text


class DamagedCache(sqlite3.DatabaseError):
    """``PRAGMA quick_check`` found damage that opening the file did not."""

    sqlite_errorcode = sqlite3.SQLITE_CORRUPT


def move_aside(path: str) -> str:
    """Rename a damaged cache (with its -wal and -shm) to ``PATH.damaged-YYYYmmdd-HHMMSS``; returns the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, number = f"{path}.damaged-{stamp}", 2
    while os.path.lexists(target):
        target, number = f"{path}.damaged-{stamp}-{number}", number + 1
    for suffix in ("", "-wal", "-shm"):
        if os.path.lexists(path + suffix):
            os.replace(path + suffix, target + suffix)
    return target


def _free_space_note(path: str) -> str:
    """``"; the disk is full"`` when the cache's folder has (almost) no space left, else ``""``."""
    try:
        info = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return ""
    return "; the disk is full" if info.f_bavail * info.f_frsize < MIN_FREE_BYTES else ""


def cache_failure(path: str, error: sqlite3.DatabaseError, doing: str) -> CacheError:
    """The one line for an I/O error on the cache at ``path`` (the file is kept)."""
    return CacheError(f"{path}: cannot {doing} the progress cache ({error}{_free_space_note(path)}); "
                      "nothing in it was lost: fix that and run again to reuse every result")


def _connect(path: str, schema: str, timeout: float) -> sqlite3.Connection:
    """The cache at ``path``, opened (created if need be) and checked; sqlite3 errors are raised as they come."""
    created = not os.path.exists(path)
    db = sqlite3.connect(path, isolation_level=None, timeout=timeout)  # autocommit: one row, one commit
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)").fetchall()]  # ~1 s a GB
        if problems != ["ok"]:
            raise DamagedCache(f"damaged: {'; '.join(map(str, problems))}")
        db.executescript(schema)
        if created:
            honour_umask(path)  # the same permissions as every other file the run writes
    except BaseException:
        db.close()
        raise
    return db


def connect(path: str, schema: str, warn: Callable[[str], None], timeout: float = 5.0) -> sqlite3.Connection:
    """Open the cache at ``path`` with ``schema``; a damaged one is moved aside (one warning) and a new one begun.

    Any other failure (a full disk, no permission) is a :class:`CacheError`
    and the file is not touched.
    """
    try:
        return _connect(path, schema, timeout)
    except sqlite3.DatabaseError as error:
        if not is_damage(error):
            raise cache_failure(path, error, "open") from None
        try:
            moved = move_aside(path)
        except OSError as problem:
            raise CacheError(f"{path}: the progress cache is damaged ({error}) and cannot be moved aside "
                             f"({problem.strerror}); move or delete it, then run again") from None
        warn(f"[WARNING] {path}: the progress cache is damaged ({error}); moved it aside to {moved} "
             "and started a new one")
    try:
        return _connect(path, schema, timeout)
    except sqlite3.DatabaseError as error:
        raise cache_failure(path, error, "create") from None


class SqliteCache:
    """What the photo and the video caches share: the open file, and errors turned into one line."""

    def __init__(self, path: str, db: sqlite3.Connection):
        self.path = path
        self._db = db

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Turn a sqlite3 error met ``doing`` something into a :class:`CacheError`; a damaged file is moved aside."""
        try:
            yield
        except sqlite3.DatabaseError as error:
            if not is_damage(error):
                raise cache_failure(self.path, error, doing) from None
            self.close()
            moved = move_aside(self.path)
            raise CacheError(f"{self.path}: the progress cache is damaged ({error}); moved it aside to {moved}: "
                             "run again to start a new one") from None

    def close(self) -> None:
        self._db.close()


class ResultCache(SqliteCache):
    """Earlier results by (photo, options); see the module docstring."""

    def __init__(self, path: str, options_key: str, warn: Callable[[str], None] = lambda line: None):
        super().__init__(path, connect(path, _SCHEMA, warn))
        self.options_key = options_key
        with self._guard("update"):
            self.migrated = _migrate_first_schema(self._db)

    def lookup(self, path: str) -> PhotoResult | None:
        """The stored result for the photo at ``path`` under these options, if it is unchanged.

        Found by resolved path with the same size and time, or else by content:
        a stored photo of the same size and digest (moved, renamed, touched),
        which is then also stored under this path.
        """
        with self._guard("read"):
            return self._lookup(path)

    def _lookup(self, path: str) -> PhotoResult | None:
        now = Fingerprint.of(path)
        if now is None:
            return None
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM results WHERE photo = ? AND options = ?", (path_key(path), self.options_key)
        ).fetchone()
        if row is not None and (row[0], row[1]) == (now.size, now.mtime_ns):
            return _result(path, row)  # None for a damaged row: encoded again
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
        earlier = None if row is None else _result(path, row)
        if earlier is None:
            return None
        found = replace(earlier, fingerprint=now)
        self.store(found)
        return found

    def store(self, result: PhotoResult) -> bool:
        """Keep ``result`` unless it is transient or its file could not be read; returns whether kept."""
        fingerprint = result.fingerprint
        if result.transient or fingerprint is None or not fingerprint.digest:
            return False
        with self._guard("write"):
            self._db.execute(
                "INSERT OR REPLACE INTO results (photo, options, size, mtime_ns, digest, status, category, reason, faces)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (path_key(result.path), self.options_key, fingerprint.size, fingerprint.mtime_ns, fingerprint.digest,
                 result.status, result.category, result.reason, _pack(result.faces)),
            )
        return True

    def prune(self, root: str, keep: list[str]) -> int:
        """Forget this options' photos under folder ``root`` that are not in ``keep``; returns how many.

        Rows of other folders encoded into the same cache, and rows of other
        options (pruned by their own runs), are left alone.
        """
        with self._guard("update"):
            return delete_gone(self._db, "results", "photo", self.options_key, root, keep)


def delete_gone(db: sqlite3.Connection, table: str, column: str, options_key: str, root: str, keep: list[str]) -> int:
    """Delete the rows of ``options_key`` whose file (``column``, a resolved path) lies under folder
    ``root`` and is not in ``keep``; returns how many files were forgotten (none without a root)."""
    if not root:
        return 0
    prefix = os.fsencode(os.path.join(os.path.realpath(root), ""))
    wanted = {path_key(path) for path in keep}
    stored = db.execute(f"SELECT DISTINCT {column} FROM {table} WHERE options = ?", (options_key,)).fetchall()
    gone = [(key, options_key) for (key,) in stored if key.startswith(prefix) and key not in wanted]
    db.executemany(f"DELETE FROM {table} WHERE {column} = ? AND options = ?", gone)
    return len(gone)


def _result(path: str, row: tuple) -> PhotoResult | None:
    """The stored result, or ``None`` for a row that does not hold one (then the photo is encoded again)."""
    size, mtime_ns, digest, status, category, reason, faces = row
    unpacked = _unpack(faces)
    if unpacked is None or status not in ("faces", "no-face", "skipped") or (status == "faces") != bool(unpacked):
        return None
    if not (isinstance(reason, str) and isinstance(category, str) and isinstance(digest, bytes)):
        return None
    return PhotoResult(path, status, unpacked, reason, category, fingerprint=Fingerprint(size, mtime_ns, digest))


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
                (path_key(os.fsdecode(path)), options, size, mtime_ns, now.digest, status, reason, faces),
            )
            moved += 1
        db.execute("DROP TABLE photos")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return moved


def open_cache(encodings_path: str, options_key: str, warn: Callable[[str], None]) -> ResultCache:
    """The cache beside ``encodings_path``; a damaged one is moved aside (see :func:`connect`), any other
    failure is a :class:`CacheError`."""
    path = cache_path_for(encodings_path)
    cache = ResultCache(path, options_key, warn)
    if cache.migrated:
        warn(f"[INFO] {path}: {cache.migrated} results carried over from an older cache format")
    return cache

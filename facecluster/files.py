"""Small file helpers every stage shares; above all, the one atomic writer.

Anything the project writes for a user to keep (the encodings file, montages,
CSV/JSON, the gallery, organizer manifests) goes through :func:`write_atomically`
(or :func:`open_atomically` when it is written piece by piece): the data lands
in a uniquely named temporary file beside the target, is flushed to disk, and
then replaces the target in one rename.  A crash or a full disk leaves the old
file or the new one, never half of either, and two runs writing the same
folder never share a temporary name.  :func:`replace_atomically` does the same
for entries made by other means (a symlink, a ``shutil.copy2``).

Every file the project writes gets the permissions the umask allows (0644 under
the usual umask 022), the progress cache included; temporary names are kept
short enough for any file name the target may have (255 bytes at most).

:func:`open_regular` is how every reader opens a file it was handed: never a
FIFO, a device or ``/dev/stdin``, which could block a run forever.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from .sources.skips import NotRegularFile, display_path  # noqa: F401  (both part of this module's API too)


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new, never half."""
    with open_atomically(path) as out:
        out.write(data)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """:func:`write_atomically` for UTF-8 text."""
    write_atomically(path, text.encode("utf-8"))


# Names of our own output folders' marker (see present/output.py); here, in the lowest wing,
# so that the encoder can recognise and skip such a folder inside a dataset.
OUTPUT_MARKER = ".facecluster-output.json"
# Bytes of the target's name kept in a temporary name: the rest (pid, random) fits in 255.
_NAME_IN_TEMPORARY = 120


def open_regular(path: str | os.PathLike) -> IO[bytes]:
    """Open ``path`` for reading in binary only if it is a regular file (after symlinks).

    Opened without blocking (a FIFO with no writer would block ``open`` forever),
    then checked: :class:`NotRegularFile` (an ``OSError``) otherwise.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", os.fspath(path))
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


# An output location with less free space than this is full: refused before the work starts.
MIN_FREE_BYTES = 64 * 1024


def _free_bytes(folder: str) -> int | None:
    try:
        info = os.statvfs(folder)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def check_output_folder(folder: str | os.PathLike, what: str = "") -> str | None:
    """Why nothing could be written into ``folder`` (made if need be), or ``None`` when it can be.

    Checked before any work, so that a run never ends, after hours, on a
    dangling symlink, a file where the folder should be, a read-only or full
    disk.  ``what`` starts the line (e.g. ``"--output out"``); the line names the problem.
    """
    folder = os.fspath(folder)
    what = what or display_path(folder)
    if os.path.islink(folder) and not os.path.exists(folder):
        return f"{what}: is a symlink to {display_path(os.readlink(folder))}, which does not exist"
    if os.path.exists(folder) and not os.path.isdir(folder):
        return f"{what}: is a file, not a folder"
    existing = os.path.abspath(folder)
    while not os.path.isdir(existing):  # the folder is made later: look at the nearest one there is
        if os.path.lexists(existing) and not os.path.isdir(existing):
            return f"{what}: {display_path(existing)} is not a folder"
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = _read_only_disk(existing)
        return f"{what}: cannot write in {display_path(existing)} ({'read-only disk' if read_only else 'permission denied'})"
    free = _free_bytes(existing)
    if free is not None and free < MIN_FREE_BYTES:
        return f"{what}: the disk holding {display_path(existing)} is full ({free // 1024} KB free)"
    return None


def _read_only_disk(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_output_file(path: str | os.PathLike, longest_suffix: int = 0) -> str | None:
    """Why the file ``path`` (and names up to ``longest_suffix`` bytes longer beside it) could not be written, or ``None``."""
    path = os.fspath(path)
    if os.path.islink(path) and not os.path.exists(path):
        return f"{display_path(path)}: is a symlink to {display_path(os.readlink(path))}, which does not exist"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"{display_path(path)}: folder {display_path(folder)} does not exist"
    try:
        longest = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = 255
    if len(os.fsencode(os.path.basename(path))) + longest_suffix > longest:
        return (f"{display_path(path)}: file name too long ({len(os.fsencode(os.path.basename(path)))} bytes; "
                f"at most {longest - longest_suffix} here, to leave room for the files beside it)")
    return check_output_folder(folder, display_path(path))


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike, descriptor: int | None = None) -> None:
    """Give a file we created the permissions the umask allows (``0666 & ~umask``)."""
    mode = 0o666 & ~current_umask()
    if descriptor is not None:
        os.fchmod(descriptor, mode)
    else:
        os.chmod(path, mode)


NAME_MAX = 255  # bytes in one file name on every disk Linux, macOS and Windows use


def fit_name(name: str, tell_apart: str = "", longest: int = NAME_MAX) -> str:
    """``name`` if it fits in ``longest`` bytes; else its stem cut short (at a whole character) and
    a digest of ``tell_apart`` (or of the full name) before the extension, so shortened names stay unique."""
    if len(os.fsencode(name)) <= longest:
        return name
    stem, extension = os.path.splitext(name)
    if len(os.fsencode(extension)) > 16:  # not an extension worth keeping whole
        stem, extension = name, ""
    import hashlib

    tag = "~" + hashlib.blake2b(os.fsencode(tell_apart or name), digest_size=4).hexdigest()
    room = longest - len(os.fsencode(tag + extension))
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return stem + tag + extension


def temporary_name(name: str) -> str:
    """A unique hidden name to write ``name``'s new content under, never longer than 255 bytes."""
    short = name
    while len(os.fsencode(short)) > _NAME_IN_TEMPORARY:  # cut whole characters, never half of one
        short = short[:-1]
    return f".{short}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


@contextmanager
def open_atomically(path: str | os.PathLike, mode: str = "wb", **options) -> Iterator[IO]:
    """Open a new file to write that replaces ``path`` only once the block ends without error.

    ``mode`` and ``options`` go to :func:`open` (e.g. ``"w", encoding="utf-8"``).
    Yields the open file; on an exception the temporary file is removed and
    ``path`` is left as it was.  An ``OSError`` (a full disk ...) names ``path``.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    temporary = os.fspath(folder / temporary_name(path.name))
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        honour_umask(temporary, handle)
        with os.fdopen(handle, mode, **options) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        _remove(temporary)
        if isinstance(error, OSError) and error.errno is not None:
            raise OSError(error.errno, error.strerror, os.fspath(path)) from None
        raise
    _fsync_folder(folder)


def replace_atomically(path: str | os.PathLike, make: Callable[[str], None]) -> None:
    """Have ``make(temporary)`` create an entry under a unique name beside ``path``, then rename it over ``path``.

    For what :func:`open_atomically` cannot write: a symlink, a copy with its
    timestamps.  On an exception nothing is left behind and ``path`` is unchanged.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, temporary_name(name))
    try:
        make(temporary)
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_folder(folder: Path) -> None:
    # The rename itself is durable only once the folder's entry is on disk.
    try:
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 90) -> None:
    """Write a BGR image as JPEG (or PNG, by suffix) to ``path``, atomically.

    Encoded in memory and written with Python's own file API, because
    ``cv2.imwrite`` cannot open paths that are not valid UTF-8.
    """
    extension = os.path.splitext(os.fspath(path))[1].lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if extension in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(extension, image, params)
    if not ok:
        raise ValueError(f"OpenCV cannot encode {extension} images")
    write_atomically(path, encoded.tobytes())

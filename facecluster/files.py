"""Small file helpers every stage shares; above all, the one atomic writer.

Anything the project writes for a user to keep (the encodings file, montages,
CSV/JSON, the gallery, organizer manifests) goes through :func:`write_atomically`
(or :func:`open_atomically` when it is written piece by piece): the data lands
in a uniquely named temporary file beside the target, is flushed to disk, and
then replaces the target in one rename.  A crash or a full disk leaves the old
file or the new one, never half of either, and two runs writing the same
folder never share a temporary name.  :func:`replace_atomically` does the same
for entries made by other means (a symlink, a ``shutil.copy2``).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import cv2
import numpy as np


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new, never half."""
    with open_atomically(path) as out:
        out.write(data)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """:func:`write_atomically` for UTF-8 text."""
    write_atomically(path, text.encode("utf-8"))


@contextmanager
def open_atomically(path: str | os.PathLike, mode: str = "wb", **options) -> Iterator[IO]:
    """Open a new file to write that replaces ``path`` only once the block ends without error.

    ``mode`` and ``options`` go to :func:`open` (e.g. ``"w", encoding="utf-8"``).
    Yields the open file; on an exception the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, mode, **options) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    _fsync_folder(folder)


def replace_atomically(path: str | os.PathLike, make: Callable[[str], None]) -> None:
    """Have ``make(temporary)`` create an entry under a unique name beside ``path``, then rename it over ``path``.

    For what :func:`open_atomically` cannot write: a symlink, a copy with its
    timestamps.  On an exception nothing is left behind and ``path`` is unchanged.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
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

"""Why a file is passed over: the skip every source (photos, videos, folders) reports.

A file that cannot be used is an :class:`ImageSkipped` with a short reason and a
category to count by, so that one bad file never stops a run.
"""

from __future__ import annotations

import errno
import os
from typing import NamedTuple


class ImageSkipped(Exception):
    """A file that cannot be used as a photo; ``str()`` is the reason.

    ``category`` is a short word to count skips by (``"corrupt"``,
    ``"symlink loop"`` ...); ``passing`` marks a failure that may not happen
    again (out of memory), whose verdict must not be kept between runs.
    """

    def __init__(self, reason: str, category: str, passing: bool = False):
        super().__init__(reason, category, passing)  # all of them, so it pickles whole
        self.reason = reason
        self.category = category
        self.passing = passing

    def __str__(self) -> str:
        return self.reason


class Skip(NamedTuple):
    """A file passed over: its path, a short category and the full reason."""

    path: str
    category: str
    reason: str


def display_path(path: str) -> str:
    """A printable form of a path whose name may not be valid UTF-8."""
    return os.fsencode(path).decode("utf-8", errors="replace")


def skipped_for_oserror(error: OSError) -> ImageSkipped:
    """The skip (reason, category) for an OS error met reading a photo; shared with the Dask runner."""
    if isinstance(error, PermissionError):
        return ImageSkipped("permission denied", "unreadable")
    if error.errno == errno.ELOOP:
        return ImageSkipped("symlink loop", "symlink loop")
    if error.errno == errno.ENOENT:
        return ImageSkipped("broken symlink or vanished file", "missing")
    # An I/O error may be the disk's passing trouble: try again next run.
    return ImageSkipped(f"cannot read ({error.strerror or error})", "unreadable", passing=True)


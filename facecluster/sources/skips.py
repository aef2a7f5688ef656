"""Why a file is passed over: the skip every source (photos, videos, folders) reports.

A file that cannot be used is an :class:`ImageSkipped` with a short reason and a
category to count by, so that one bad file never stops a run.
"""

from __future__ import annotations

import errno
import os
import re
from typing import NamedTuple


class ImageSkipped(Exception):
    """A file that cannot be used as a photo; ``str()`` is the reason.

    ``category`` is a short word to count skips by (``"corrupt"``,
    ``"symlink loop"`` ...); ``transient`` marks a failure that may not happen
    again (out of memory), whose verdict must not be kept between runs.
    """

    def __init__(self, reason: str, category: str, transient: bool = False):
        super().__init__(reason, category, transient)  # all of them, so it pickles whole
        self.reason = reason
        self.category = category
        self.transient = transient

    def __str__(self) -> str:
        return self.reason


class Skip(NamedTuple):
    """A file passed over: its path, a short category and the full reason."""

    path: str
    category: str
    reason: str


# Characters a terminal or a browser would act on rather than show: C0 and C1 controls (ESC
# starts terminal escape sequences), DEL, and the bidirectional overrides and isolates (U+202E
# shows "gpj.exe" as "exe.jpg").
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def display_path(path: str | os.PathLike) -> str:
    """A path as it is safe to print or put in a page: undecodable bytes as U+FFFD, and control
    and bidi characters as ``\\x1b``, ``\\u202e`` escapes (a name can't drive the terminal)."""
    return _UNPRINTABLE.sub(_escape, os.fsencode(path).decode("utf-8", errors="replace"))


class NotRegularFile(OSError):
    """A path that is a FIFO, a device, a socket or a folder: nothing to read as a file
    (raised by :func:`facecluster.files.open_regular`)."""


def skipped_for_oserror(error: OSError) -> ImageSkipped:
    """The skip (reason, category) for an OS error met reading a photo; shared with the Dask runner."""
    if isinstance(error, PermissionError):
        return ImageSkipped("permission denied", "unreadable")
    if isinstance(error, NotRegularFile):
        return ImageSkipped("not a regular file", "not a file")
    if error.errno == errno.ELOOP:
        return ImageSkipped("symlink loop", "symlink loop")
    if error.errno == errno.ENOENT:
        return ImageSkipped("broken symlink or vanished file", "missing")
    # An I/O error may be the disk's transient trouble: try again next run.
    return ImageSkipped(f"cannot read ({error.strerror or error})", "unreadable", transient=True)


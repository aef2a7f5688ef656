"""What a user sees at the end of an encoding run: the counts, and which photos they are.

A few photos are named on screen (:data:`SHOWN` of each kind, then "and N
more"); all of them are listed in files beside the encodings, one per line, as
raw path bytes (names need not be UTF-8):

- ``<encodings>.no-face.txt``: photos where no face was found (worth a
  second run with ``-d cnn``), one path per line;
- ``<encodings>.skipped.txt``: photos that could not be used, one
  ``PATH<TAB>CATEGORY<TAB>REASON`` per line.

In both, a backslash, TAB, newline or CR inside a name is written ``\\``,
``\t``, ``\n``, ``\r`` (see :func:`list_field`), so every line is one photo.

A list with nothing in it is not written, and one left by an earlier run is removed.
"""

from __future__ import annotations

import os
import re
import sys

from .. import cli
from ..files import write_atomically
from ..sources.skips import display_path
from .pipeline import RunSummary
from .videos import VideoSummary

SHOWN = 10  # photos named on screen per kind; the rest are counted


def no_face_list_path(encodings_path: str) -> str:
    return f"{encodings_path}.no-face.txt"


def skipped_list_path(encodings_path: str) -> str:
    return f"{encodings_path}.skipped.txt"


def _write_list(path: str, lines: list[bytes]) -> None:
    """Write ``lines`` to ``path``, or remove a stale ``path`` when there are none."""
    if lines:
        write_atomically(path, b"".join(line + b"\n" for line in lines))
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_ESCAPES = {b"\\": b"\\\\", b"\t": b"\\t", b"\n": b"\\n", b"\r": b"\\r"}


def list_field(text: str) -> bytes:
    """A path or reason as one field of a list line: its raw bytes, with ``\\``, TAB, LF and CR escaped."""
    raw = os.fsencode(text)
    if not any(byte in raw for byte in b"\\\t\n\r"):
        return raw
    return re.sub(rb"[\\\t\n\r]", lambda m: _ESCAPES[m.group()], raw)


def write_lists(summary: RunSummary, encodings_path: str) -> None:
    """The two lists beside ``encodings_path`` (see the module docstring)."""
    _write_list(no_face_list_path(encodings_path), [list_field(path) for path in summary.no_face])
    _write_list(
        skipped_list_path(encodings_path),
        [b"\t".join((list_field(skip.path), list_field(skip.category), list_field(skip.reason)))
         for skip in summary.skipped],
    )


def warn_skipped(summary: RunSummary, encodings_path: str) -> None:
    """One warning line per skipped photo, up to :data:`SHOWN`, then how many more and where."""
    for skip in summary.skipped[:SHOWN]:
        cli.warning(f"skipped {display_path(skip.path)}: {skip.reason}")
    more = len(summary.skipped) - SHOWN
    if more > 0:
        cli.warning(f"... and {more} more skipped; all {len(summary.skipped)} are listed in "
                    f"{display_path(skipped_list_path(encodings_path))}")


def print_videos(videos: VideoSummary) -> None:
    """One line of the videos' totals, and one warning for each video read only in part."""
    if not videos.videos:
        return
    for note in videos.notes:
        print(f"[WARNING] {note}", file=sys.stderr)
    print(f"[INFO] {videos.videos} videos: {videos.seconds:,.1f} s of video, {videos.tracks} face tracks, "
          f"{videos.faces} faces kept; {videos.reused} videos and {videos.segments_reused} of {videos.segments} "
          "segments reused from earlier runs")


def print_summary(summary: RunSummary, encodings_path: str, detector: str = "hog") -> None:
    """The closing lines on stdout: counts, skips by category, the photos with no face.

    ``detector`` is the name of the detector that ran, for the hint on what
    might still find faces in the face-less photos.
    """
    print(f"[INFO] {summary.images} images, {summary.faces} faces, {len(summary.no_face)} images with no face, "
          f"{len(summary.skipped)} skipped, {summary.seconds:.1f} seconds")
    print(f"[INFO] {summary.reused} results reused from earlier runs, {summary.encoded} images encoded now")
    for category, count in sorted(summary.skipped_by_category().items()):
        print(f"[INFO] skipped, {category}: {count}")
    if summary.skipped:
        print(f"[INFO] skipped photos and why: {display_path(skipped_list_path(encodings_path))}")
    if summary.no_face:
        print(f"[INFO] no face found in {len(summary.no_face)} images (all listed in "
              f"{display_path(no_face_list_path(encodings_path))}; {_no_face_hint(detector)}):")
        for path in summary.no_face[:SHOWN]:
            print(f"[INFO]   {display_path(path)}")
        if len(summary.no_face) > SHOWN:
            print(f"[INFO]   ... and {len(summary.no_face) - SHOWN} more")
    if summary.ignored:
        print(f"[INFO] {summary.ignored} other files (not images) ignored")


def _no_face_hint(detector: str) -> str:
    # Only HOG leaves faces the CNN would find; after the CNN, only smaller faces remain.
    if detector == "hog":
        return "-d cnn may find faces in them"
    return "--upsample 2 may find smaller faces in them"

"""The known people: a folder of their photos, or an encodings file made from one.

A known-people folder holds one folder per person, named after them
(``known/Ada Lovelace/1.jpg``; underscores read as spaces, so LFW's
``George_W_Bush`` is "George W Bush"), with one or more photos each.  A photo
directly in the folder is named by its file name, as in face_recognition's
``known_people`` folder (``known/ada.jpg`` is "ada").  Instead of the folder,
an encodings file that ``encode_faces.py`` made from such a folder will do:
each face is then named by its photo's folder.

Each known photo should show its person alone.  A photo with no face, an
unreadable one, or one with several faces of similar size is left out with
one line each; with several faces where one is clearly the largest (twice the
area of the next), that one is used, and the line says so.  The run goes on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import numpy as np

from ..sources.skips import display_path
from ..records import FaceRecord, box_area
from .naming import KnownPeople

# The largest face of a known photo is used when it is at least this many
# times the area of the next: the subject in front, bystanders behind.
CLEARLY_LARGEST = 2.0


class KnownError(ValueError):
    """The known people can't be used at all; ``str()`` is the one line to print."""


def person_name(text: str) -> str:
    """A person's name from a folder or file name: underscores become spaces, runs of spaces one."""
    return " ".join(text.replace("_", " ").split())


def name_of(photo: str, root: str | None) -> str:
    """The person a known photo shows: its folder below ``root`` (its file name when it is
    directly in ``root``); without ``root``, the photo's own folder."""
    if root is None:
        return person_name(os.path.basename(os.path.dirname(os.path.abspath(photo))))
    relative = os.path.relpath(os.path.abspath(photo), os.path.abspath(root))
    parts = relative.split(os.sep)
    return person_name(parts[0] if len(parts) > 1 else os.path.splitext(parts[0])[0])


def one_face_per_photo(records: Sequence[FaceRecord], warn: Callable[[str], None],
                       what: str = "known photo") -> list[FaceRecord]:
    """The one face of each photo of ``records``: its only face, or its clearly largest one
    (:data:`CLEARLY_LARGEST`); a photo with several faces of similar size gives none.  A photo
    with several faces gets one line through ``warn`` either way."""
    by_photo: dict[str, list[FaceRecord]] = {}
    for record in records:
        by_photo.setdefault(record["imagePath"], []).append(record)
    chosen = []
    for photo, faces in by_photo.items():
        faces = sorted(faces, key=lambda record: -box_area(record["loc"]))
        if len(faces) > 1:
            if box_area(faces[0]["loc"]) < CLEARLY_LARGEST * box_area(faces[1]["loc"]):
                warn(f"{what} {display_path(photo)}: {len(faces)} faces of similar size, not used "
                     "(crop it to the one person)")
                continue
            warn(f"{what} {display_path(photo)}: {len(faces)} faces, using the largest")
        chosen.append(faces[0])
    return chosen


def one_face_each(records: Sequence[FaceRecord], root: str | None, warn: Callable[[str], None]) -> KnownPeople:
    """The known people from face records: one face per photo (:func:`one_face_per_photo`), named
    by :func:`name_of`."""
    names, encodings = [], []
    for record in one_face_per_photo(records, warn):
        name = name_of(record["imagePath"], root)
        if not name:
            warn(f"known photo {display_path(record['imagePath'])}: no name (its folder has none), not used")
            continue
        names.append(name)
        encodings.append(np.asarray(record["encoding"], dtype=np.float32))
    matrix = np.stack(encodings) if encodings else np.empty((0, 128), np.float32)
    return KnownPeople(names, matrix)


def read_known(source: str, cache_base: str, warn: Callable[[str], None], workers: int = 0) -> KnownPeople:
    """The known people of ``source``: a known-people folder or an encodings file.

    A folder is encoded with encode_faces.py's defaults; results are kept in
    ``cache_base``'s cache (``cache_base + ".cache.sqlite"``), so a re-run
    encodes only new photos.  Every photo left out gets one line through
    ``warn``.  Raises :class:`KnownError` when ``source`` is missing or gives
    no one.
    """
    if os.path.isfile(source):
        records, root = _from_encodings_file(source), None
    elif os.path.isdir(source):
        records, root = _from_folder(source, cache_base, warn, workers), source
    else:
        raise KnownError(f"--known {display_path(source)}: no such folder or file")
    known = one_face_each(records, root, warn)
    if not known.names:
        raise KnownError(f"--known {display_path(source)}: no usable photo of anyone (one face per photo, "
                         "one folder per person)")
    return known


def _from_encodings_file(path: str) -> list[FaceRecord]:
    from ..store import EncodingsError, load_encodings

    try:
        return load_encodings(path)
    except EncodingsError as problem:
        raise KnownError(f"--known {display_path(path)}: {problem}") from None


def _from_folder(folder: str, cache_base: str, warn: Callable[[str], None], workers: int) -> list[FaceRecord]:
    """Encode the folder's photos (encode_faces.py's defaults); one line per photo that gives no face."""
    from ..detect.detectors import choose_detector
    from ..embed.encoders import choose_encoder
    from ..run.pipeline import DatasetError, Method, encode_dataset, list_dataset

    try:
        listing = list_dataset(folder)
    except DatasetError as problem:
        raise KnownError(f"--known {problem}") from None
    if listing.videos:
        warn(f"known folder {display_path(folder)}: {len(listing.videos)} videos not used (photos only)")
    method = Method(choose_detector("auto")[0], choose_encoder("numpy")[0])
    records, summary = encode_dataset(listing, cache_base, method, workers=workers,
                                      warn=lambda line: print(line, file=sys.stderr))  # lines come tagged
    for skip in summary.skipped:
        warn(f"known photo {display_path(skip.path)}: {skip.reason}, not used")
    for path in summary.no_face:
        warn(f"known photo {display_path(path)}: no face found, not used")
    return records

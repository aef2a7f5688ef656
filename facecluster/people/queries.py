"""What search_faces.py looks for: the faces of the ``--query`` photos and folders.

Photos are encoded as encode_faces.py encodes (its defaults), in this process:
a search asks about a few photos.  A photo gives its largest face, or every
face with ``all_faces`` (one query each); a folder is one person, one query of
the largest face of each of its photos (a photo with several faces of similar
size is left out, as in a known-people folder).  Every photo that gives no
face, or cannot be read, gets one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..sources.skips import display_path
from ..records import box_area, make_record
from .known import one_face_per_photo
from .search import Query


class QueryError(ValueError):
    """No query gave a face; ``str()`` is the one line to print."""


def read_queries(specs: list[str], all_faces: bool, warn: Callable[[str], None]) -> list[Query]:
    """One :class:`Query` per photo (per face with ``all_faces``) or folder in ``specs``."""
    from ..detect.detectors import choose_detector
    from ..embed.encoders import choose_encoder
    from ..run.pipeline import Method

    method = Method(choose_detector("auto")[0], choose_encoder("numpy")[0])
    queries: list[Query] = []
    for spec in specs:
        if os.path.isdir(spec):
            queries.extend(_folder_query(spec, method, warn))
        elif os.path.exists(spec):
            queries.extend(_photo_queries(spec, method, all_faces, warn))
        else:
            warn(f"--query {display_path(spec)}: no such photo or folder")
    if not queries:
        raise QueryError("no face to look for in " + ", ".join(display_path(spec) for spec in specs))
    return queries


def _records_of(paths: list[str], method, warn: Callable[[str], None]) -> list[dict]:
    """Face records of ``paths``; one line for each photo that is skipped or has no face."""
    from ..run.pipeline import encode_photos

    records = []
    for result in encode_photos(paths, method):
        if result.status == "skipped":
            warn(f"--query {display_path(result.path)}: {result.reason} ({result.category})")
        elif not result.faces:
            warn(f"--query {display_path(result.path)}: no face found")
        records.extend(make_record(result.path, face.box, face.encoding) for face in result.faces)
    return records


def _photo_queries(photo: str, method, all_faces: bool, warn: Callable[[str], None]) -> list[Query]:
    faces = sorted(_records_of([photo], method, warn), key=lambda record: -box_area(record["loc"]))
    if not all_faces:
        faces = faces[:1]
    name = display_path(photo)
    return [Query(f"{name} face {i + 1}" if all_faces and len(faces) > 1 else name,
                  np.asarray([record["encoding"]], dtype=np.float32), photo, (record["loc"],), (photo,))
            for i, record in enumerate(faces)]


def _folder_query(folder: str, method, warn: Callable[[str], None]) -> list[Query]:
    from ..run.pipeline import DatasetError, list_dataset

    try:
        photos = list_dataset(folder).images
    except DatasetError as problem:
        warn(f"--query {problem}")
        return []
    kept = one_face_per_photo(_records_of(photos, method, warn), warn, what="--query photo")
    if not kept:
        return []
    return [Query(display_path(folder.rstrip(os.sep)) + os.sep, np.asarray([r["encoding"] for r in kept], np.float32),
                  kept[0]["imagePath"], tuple(r["loc"] for r in kept), tuple(r["imagePath"] for r in kept))]

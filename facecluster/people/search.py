"""Search by photo: every face in an encodings file that is the person of a query photo.

The faces are put in the index the clustering's neighbour graph uses
(:mod:`facecluster.cluster.graph`): exact (a faiss flat index) up to
:data:`~facecluster.cluster.graph.EXACT_MAX_FACES` faces, the same inverted-file
index above, probed more widely (:data:`SEARCH_PROBES` lists) because a search
asks a handful of questions, not a million.  Above that size the index is kept
beside the encodings file (``ENCODINGS.search.faiss``, the faces' places in
``ENCODINGS.search.json`` with a key of the file's size and time), so only the
first search pays for reading the pickle and training the index; later ones
read those two files (the index holds the encodings).

A query is one or more encodings of one person: the largest face of a photo,
each face of it (``--all-faces``: one query each), or the largest face of every
photo in a folder (one query).  A face's distance to a query is its distance to
the nearest of the query's encodings; it is judged the same person under
:data:`SAME_PERSON` (the naming threshold, docs/people.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from ..cluster.graph import EXACT_MAX_FACES, ivf_index
from ..files import write_text_atomically
from ..records import FaceRecord
from ..store import load_encodings, take_encodings
from .naming import NAME_THRESHOLD

SAME_PERSON: float = NAME_THRESHOLD
SEARCH_PROBES = 48
INDEX_SUFFIX, KEY_SUFFIX = ".search.faiss", ".search.json"
_INDEX_VERSION = 1


@dataclass
class FaceIndex:
    """The faces of an encodings file, ready to search: records (no encodings), the encodings, the index."""

    records: list[FaceRecord]
    encodings: np.ndarray | None  # None when the index was read back (it holds them)
    index: object  # a faiss index over the encodings
    exact: bool
    saved: str | None = None  # what happened to the saved index: "read", "written" or None


@dataclass(frozen=True)
class Query:
    """One person to look for: a name for the output, and their encodings (k, 128)."""

    name: str
    encodings: np.ndarray
    source: str  # the photo (or first photo) the encodings came from
    boxes: tuple  # (top, right, bottom, left) of each encoding in its photo
    photos: tuple  # the photo of each encoding


@dataclass(frozen=True)
class Match:
    face: int  # record index
    distance: float
    same: bool  # judged the same person (else one of the --top nearest)


def open_index(encodings_path: str, *, keep: bool = True, jobs: int = -1) -> FaceIndex:
    """The faces of the encodings file, indexed; with ``keep``, a large index and the faces' places are
    saved beside it and read back next time while the file is unchanged.  Raises EncodingsError as the
    store does."""
    if keep:
        saved = _read_saved(encodings_path)
        if saved is not None:
            return saved
    records = load_encodings(encodings_path)
    X = np.ascontiguousarray(take_encodings(records), dtype=np.float32)
    if len(X) <= EXACT_MAX_FACES:
        import faiss

        index = faiss.IndexFlatL2(X.shape[1])
        index.add(X)
        return FaceIndex(records, X, index, exact=True)
    index = ivf_index(X, jobs)
    index.nprobe = min(index.nlist, SEARCH_PROBES)
    return FaceIndex(records, X, index, exact=False, saved=_save(encodings_path, index, records) if keep else None)


def _key(encodings_path: str, faces: int) -> dict:
    info = os.stat(encodings_path)
    return {"version": _INDEX_VERSION, "size": info.st_size, "mtime_ns": info.st_mtime_ns, "faces": faces}


def _read_saved(encodings_path: str) -> FaceIndex | None:
    """The index and places kept beside the encodings file, if made from this very file; else None."""
    import faiss

    try:
        with open(encodings_path + KEY_SUFFIX, encoding="utf-8") as handle:
            saved = json.load(handle)
        if saved.get("key") != _key(encodings_path, saved.get("key", {}).get("faces", -1)):
            return None
        index = faiss.read_index(encodings_path + INDEX_SUFFIX)
    except (OSError, ValueError, RuntimeError, AttributeError):
        return None
    records = [_record(row) for row in saved.get("faces", [])]
    if index.ntotal != len(records):
        return None
    index.nprobe = min(index.nlist, SEARCH_PROBES)
    return FaceIndex(records, None, index, exact=False, saved="read")


def _record(row: list) -> FaceRecord:
    """A record (no encoding) from its saved row ``[path, top, right, bottom, left, frame, time]``."""
    record = {"imagePath": row[0], "loc": tuple(row[1:5])}
    if row[5] is not None:
        record.update(frame=row[5], time=row[6])
    return record  # type: ignore[return-value]


def _save(encodings_path: str, index, records: list[FaceRecord]) -> str | None:
    """Keep the index and the faces' places beside the encodings file; None when that can't be written."""
    import faiss

    rows = [[r["imagePath"], *map(int, r["loc"]), r.get("frame"), r.get("time")] for r in records]
    try:
        faiss.write_index(index, encodings_path + INDEX_SUFFIX)
        # ASCII JSON: a path that is not valid UTF-8 keeps its escaped bytes and reads back the same.
        write_text_atomically(encodings_path + KEY_SUFFIX, json.dumps({"key": _key(encodings_path, len(rows)),
                                                                       "faces": rows}))
    except (OSError, RuntimeError):
        return None
    return "written"


def search(index: FaceIndex, query: np.ndarray, *, threshold: float = SAME_PERSON, top: int = 0) -> list[Match]:
    """The faces of ``index`` within ``threshold`` of the query's encodings (``(k, 128)``), plus the ``top``
    nearest whatever their distance, nearest first."""
    Q = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
    best: dict[int, float] = {}
    limits, squared, found = index.index.range_search(Q, float(threshold) ** 2)
    for face, d2 in zip(found.tolist(), squared.tolist()):
        best[face] = min(best.get(face, np.inf), d2)
    same = set(best)
    if top > 0 and index.index.ntotal:
        near_d2, near = index.index.search(Q, min(top, index.index.ntotal))
        nearest: dict[int, float] = {}
        for face, d2 in zip(near.ravel().tolist(), near_d2.ravel().tolist()):
            if face >= 0:
                nearest[face] = min(nearest.get(face, np.inf), d2)
        for face in sorted(nearest, key=nearest.get)[:top]:
            best.setdefault(face, nearest[face])
    ranked = sorted(best, key=lambda face: (best[face], face))
    return [Match(face, float(np.sqrt(max(best[face], 0.0))), face in same) for face in ranked]

"""Every face and every cluster as files other programs read: ``clusters.csv`` and ``clusters.json``.

Both hold all faces, however many clusters the montages and the gallery
leave out, and both are written as a stream (a million faces never sit in
memory twice).  Photo paths are stored as found on disk and may not be valid
UTF-8: the CSV keeps their exact bytes, the JSON escapes them so that
``json.loads`` gives back the same path.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence

from ..cluster.constraints import Repeat
from ..files import open_atomically
from ..records import FaceRecord
from .clusters import Clusters, json_string, json_text

CLUSTERS_CSV_HEADER = ("image", "top", "right", "bottom", "left", "label", "frame", "time", "name")


def write_clusters_csv(path: str | os.PathLike, records: Sequence[FaceRecord], clusters: Clusters) -> None:
    """Write one row per face, in record order: ``image,top,right,bottom,left,label,frame,time,name``.

    ``frame`` and ``time`` (seconds) place a face from a video; both are empty for a photo.
    ``name`` is the person's name of a named cluster, empty otherwise (appended last, so
    readers of the older columns by position are unaffected).

    ``image`` is the record's ``imagePath`` exactly; a name that is not valid
    UTF-8 keeps its original bytes (``surrogateescape``), so reading the file
    back with ``errors="surrogateescape"`` gives a path that opens.  The one
    exception: a path that begins with ``=``, ``+``, ``-``, ``@``, a TAB or a CR
    (which a spreadsheet would run as a formula) gets a ``'`` in front, as
    spreadsheet tools expect (see :func:`spreadsheet_safe`).
    """
    with open_atomically(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        # csv quotes a field holding "\n" but, with "\n" line ends, not one holding a lone "\r",
        # which every reader takes for a line end: such a row has every field quoted.
        quoted = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow(CLUSTERS_CSV_HEADER)
        for record, label in zip(records, clusters.labels.tolist()):
            image, name = spreadsheet_safe(record["imagePath"]), spreadsheet_safe(clusters.names.get(label, ""))
            (quoted if "\r" in image or "\r" in name else writer).writerow(
                [image, *_box(record), label, record.get("frame", ""), record.get("time", ""), name])


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` with a ``'`` in front when it begins like a spreadsheet formula (CSV injection:
    a crafted name ``=HYPERLINK(...)`` would run when the CSV is opened); otherwise unchanged."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_clusters_json(
    path: str | os.PathLike, records: Sequence[FaceRecord], clusters: Clusters, run: Mapping | None = None,
    repeats: Sequence[Repeat] = (),
) -> None:
    """Write ``{"run": run, "counts": {...}, "clusters": [...], "repeated": [...]}`` as JSON.

    ``counts`` has ``faces``, ``images``, ``people``, ``unknown_faces`` and
    ``pictures_with_a_cluster_twice``; ``repeated`` lists each of those
    pictures' ``label`` and its faces there (``image``, ``box``, with ``frame``
    and ``time`` for a video frame), from ``repeats``;
    each cluster (Unknown Faces first, then people largest first) has
    ``label``, ``name`` (its folder), ``title``, ``person`` (the person's name, or null),
    ``faces``, ``images`` and
    ``members``: ``[{"image": path, "box": [top, right, bottom, left]}, ...]``, with ``frame`` and
    ``time`` for a face from a video.
    ``run`` (e.g. the method used) is stored as given.  No encodings.
    """
    counts = {"faces": len(records), "images": clusters.photos, "people": clusters.people,
              "unknown_faces": clusters.unknown_faces,
              "pictures_with_a_cluster_twice": len({_picture(records[r.faces[0]]) for r in repeats})}
    with open_atomically(path, "w", encoding="utf-8", newline="") as handle:
        handle.write('{\n  "run": ' + json_text(dict(run or {})) + ',\n  "counts": ' + json_text(counts) + ',\n  "clusters": [')
        for position, label in enumerate(clusters.order):
            handle.write(("," if position else "") + "\n    " + _cluster_json(records, clusters, label))
        handle.write('\n  ],\n  "repeated": [')
        handle.write(",".join("\n    " + _repeat_json(records, repeat) for repeat in repeats))
        handle.write("\n  ]\n}\n" if repeats else "]\n}\n")


def _picture(record: FaceRecord) -> tuple:
    """What makes one picture: the photo, or the video and its frame."""
    return record["imagePath"], record.get("frame")


def _repeat_json(records: Sequence[FaceRecord], repeat: Repeat) -> str:
    """One picture that shows one cluster twice, as JSON text."""
    faces = ", ".join('{"image": ' + json_string(records[i]["imagePath"]) + ', "box": [%d, %d, %d, %d]' % _box(records[i])
                      + _moment(records[i]) + "}" for i in repeat.faces)
    return '{"label": %d, "faces": [%s]}' % (repeat.label, faces)


def _cluster_json(records: Sequence[FaceRecord], clusters: Clusters, label: int) -> str:
    """One cluster as JSON text, one member per line (a huge cluster stays readable)."""
    head = {"label": label, "name": clusters.dirname(label), "title": clusters.title(label),
            "person": clusters.names.get(label), "faces": clusters.size(label), "images": clusters.photo_counts[label]}
    members = ",\n      ".join(
        '{"image": ' + json_string(records[i]["imagePath"]) + ', "box": [%d, %d, %d, %d]' % _box(records[i])
        + _moment(records[i]) + "}"
        for i in clusters.members(label).tolist()
    )
    text = json_text(head)[:-1] + ', "members": ['
    return text + "\n      " + members + "\n    ]}" if members else text + "]}"


def _moment(record: FaceRecord) -> str:
    """``, "frame": N, "time": T`` for a face from a video (as JSON member text); empty for a photo."""
    keys = {key: record[key] for key in ("frame", "time", "track") if key in record}  # type: ignore[literal-required]
    return "".join(f', "{key}": {json_text(value)}' for key, value in keys.items())


def _box(record: FaceRecord) -> tuple[int, int, int, int]:
    return tuple(map(int, record["loc"]))  # type: ignore[return-value]

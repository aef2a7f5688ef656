"""What every presentation step shares: the clusters grouped once, their names and order, face crops.

Labels are one integer per face record, ``-1`` (:data:`UNKNOWN_LABEL`) for the
faces that belong to no person.  :func:`group_clusters` sorts them once
(O(n log n)), so no step ever scans all labels per cluster, which at a million
faces in 100,000 clusters would be 10^11 comparisons.

Order everywhere (windows, montage files, clusters.json, gallery): the
tutorial's ``np.unique`` order -- Unknown Faces first, then the people, largest
first (the clustering numbers people by size, so that is label order too).
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # the C version when there is one

import numpy as np
from ..records import UNKNOWN_LABEL, FaceRecord
from ..sources.skips import display_path

log = logging.getLogger(__name__)

# A warning that could repeat per photo names this many, then counts the rest.
NAMES_IN_A_WARNING = 3
# A person's name in a file or folder name keeps at most this many characters.
NAME_IN_FILES = 60


# --------------------------------------------------------------------------
# Names


def montage_title(label: int, name: str | None = None) -> str:
    """Window title of a cluster: ``"Face ID #3"``, ``"Ada Lovelace (Face ID #3)"`` when named,
    or ``"Unknown Faces"`` for -1."""
    if int(label) == UNKNOWN_LABEL:
        return "Unknown Faces"
    return f"{name} (Face ID #{int(label)})" if name else f"Face ID #{int(label)}"


def person_dirname(label: int, name: str | None = None) -> str:
    """Folder name of a cluster: ``person_03``, ``person_03_Ada_Lovelace`` when named, or ``unknown``.

    Without ``name`` it is also the cluster's HTML anchor.
    """
    if int(label) == UNKNOWN_LABEL:
        return "unknown"
    return f"person_{int(label):02d}" + (f"_{safe_name(name)}" if name and safe_name(name) else "")


def safe_name(name: str) -> str:
    """A person's name as part of a file name that every file system takes.

    Letters and digits (any script, NFC) stay; anything else (spaces, ``/\\:*?"<>|``,
    control characters, dots) becomes ``_``, runs of them one; at most
    :data:`NAME_IN_FILES` characters.  ``"Ada Lovelace"`` -> ``"Ada_Lovelace"``,
    ``"José  Ortega/y"`` -> ``"José_Ortega_y"``.
    """
    text = unicodedata.normalize("NFC", name)
    kept = "".join(ch if ch.isalnum() or ch == "-" else "_" for ch in text)
    return re.sub(r"_+", "_", kept).strip("_-")[:NAME_IN_FILES].strip("_-")


def plural(count: int, word: str) -> str:
    """``"1 face"``, ``"2 faces"``, ``"1,000 faces"``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def warn_about_photos(problem: str, paths: Sequence[str]) -> None:
    """One warning for a problem that hit many photos: ``problem (count): first names and N more``.

    Nothing is logged for no paths.  At a million faces a warning per photo
    would bury everything else the run says.
    """
    if not paths:
        return
    names = ", ".join(display_path(path) for path in paths[:NAMES_IN_A_WARNING])
    rest = len(paths) - NAMES_IN_A_WARNING
    log.warning("%s (%s): %s%s", problem, plural(len(paths), "photo"), names, f" and {rest:,} more" if rest > 0 else "")


# --------------------------------------------------------------------------
# Grouping


@dataclass(frozen=True)
class Clusters:
    """The faces of each cluster, grouped once.

    ``order`` lists the distinct labels in presentation order; ``members(label)``
    gives that cluster's record indices in record order.
    """

    labels: np.ndarray  # one int64 label per record
    order: list[int]  # Unknown Faces first, then people largest first
    by_label: np.ndarray  # record indices sorted by label (stable: record order within one)
    slices: dict[int, tuple[int, int]]  # label -> (start, end) in by_label
    photo_counts: dict[int, int]  # label -> distinct photos among its faces
    photos: int  # distinct photos among all faces
    names: Mapping[int, str] = field(default_factory=dict)  # label -> person's name, for named clusters

    def title(self, label: int) -> str:
        """The cluster's title, with its person's name when it has one."""
        return montage_title(label, self.names.get(int(label)))

    def dirname(self, label: int) -> str:
        """The cluster's folder name, with its person's name when it has one."""
        return person_dirname(label, self.names.get(int(label)))

    def members(self, label: int) -> np.ndarray:
        """Record indices of the faces with ``label``, ascending."""
        start, end = self.slices[int(label)]
        return self.by_label[start:end]

    def size(self, label: int) -> int:
        start, end = self.slices[int(label)]
        return end - start

    @property
    def people(self) -> int:
        return sum(1 for label in self.order if label != UNKNOWN_LABEL)

    @property
    def unknown_faces(self) -> int:
        return self.size(UNKNOWN_LABEL) if UNKNOWN_LABEL in self.slices else 0


def check_aligned(records: Sequence[FaceRecord], labels) -> np.ndarray:
    """``labels`` as a 1-d int64 array, after checking there is one per record (ValueError if not)."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(records):
        raise ValueError(f"{len(labels)} labels for {len(records)} records")
    return labels.astype(np.int64, copy=False)


def group_clusters(records: Sequence[FaceRecord], labels, names: Mapping[int, str] | None = None) -> Clusters:
    """Group the records by label in O(n log n): one sort, no scan per label.

    ``labels`` holds one int per record (ValueError otherwise); ``names`` the
    person's name of the clusters that have one.
    """
    labels = check_aligned(records, labels)
    by_label = np.argsort(labels, kind="stable")
    distinct, starts, sizes = np.unique(labels[by_label], return_index=True, return_counts=True)
    is_person = distinct != UNKNOWN_LABEL
    # lexsort's last key is the primary one: Unknown first, then larger first, then smaller label.
    ranked = np.lexsort((distinct, -sizes, is_person))
    slices = {int(label): (int(start), int(start + size)) for label, start, size in zip(distinct, starts, sizes)}
    photo_ids, photos = _photo_ids(records)
    # A (label, photo) pair counted once: distinct photos per cluster without a set per cluster.
    lowest = int(distinct[0]) if len(distinct) else 0
    pairs = np.unique((labels - lowest) * max(photos, 1) + photo_ids)
    per_label, counts = np.unique(pairs // max(photos, 1) + lowest, return_counts=True)
    return Clusters(
        labels=labels,
        order=[int(distinct[i]) for i in ranked],
        by_label=by_label,
        slices=slices,
        photo_counts={int(label): int(count) for label, count in zip(per_label, counts)},
        photos=photos,
        names={int(label): name for label, name in (names or {}).items() if name},
    )


def _photo_ids(records: Sequence[FaceRecord]) -> tuple[np.ndarray, int]:
    """A small int per distinct ``imagePath`` (one per record), and how many distinct ones there are."""
    ids: dict[str, int] = {}
    photo_ids = np.fromiter((ids.setdefault(r["imagePath"], len(ids)) for r in records), np.int64, len(records))
    return photo_ids, len(ids)



# --------------------------------------------------------------------------
# JSON


def json_text(value) -> str:
    """Compact JSON text that stays valid UTF-8 even for paths that are not.

    ``ensure_ascii=False`` keeps ordinary names readable; the lone surrogates
    that stand for undecodable bytes (``os.fsdecode``) are written as
    ``\\udcXX`` escapes, which ``json.loads`` turns back into the same path.
    numpy numbers and arrays and path objects are written as plain JSON.
    """
    return _escape_surrogates(json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=_json_default))


def json_string(text: str) -> str:
    """One string as JSON, like :func:`json_text` but fast (once per face at a million faces)."""
    return _escape_surrogates(encode_basestring(text))


def _escape_surrogates(text: str) -> str:
    return text if text.isascii() else re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")

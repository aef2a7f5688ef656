"""The one call ``cluster_faces.py`` makes after clustering: names, stable IDs, renames.

:func:`identify` takes the clustering's labels and gives them back as person
IDs that hold from run to run (:mod:`.store`), with each person's name: from
``--known`` (:mod:`.naming`), from an earlier run, or from ``--name``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .known import read_known
from .naming import KnownPeople, name_clusters, pull_in_unknown
from .store import PeopleStore, Person, open_store, person_id

# Named people listed one a line, then counted.
NAMED_LINES = 20


@dataclass
class Identified:
    """Labels as person IDs (-1 unknown), names by ID, and what to tell the user."""

    labels: np.ndarray
    names: dict[int, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def parse_renames(values: list[str]) -> dict[int, str]:
    """``["person_03=Ada Lovelace", "7="]`` -> ``{3: "Ada Lovelace", 7: ""}`` (ValueError with the bad one)."""
    renames: dict[int, str] = {}
    for value in values:
        if "=" not in value:
            raise ValueError(f"--name {value!r}: expected person_03=\"Ada Lovelace\"")
        who, name = value.split("=", 1)
        renames[person_id(who)] = name.strip().strip("\"'").strip()
    return renames


def stored_people(store_path: str) -> dict[int, Person]:
    """The people kept at ``store_path`` by ID (ValueError when there is no readable store there)."""
    if not os.path.isfile(store_path):
        raise ValueError(f"no people stored yet at {store_path} (run cluster_faces.py once first)")
    try:
        store = PeopleStore(store_path)
        try:
            return store.people()
        finally:
            store.close()
    except sqlite3.Error as error:
        raise ValueError(f"cannot read the people store {store_path} ({error})") from None


def check_renames(renames: Mapping[int, str], store_path: str, merges: Mapping[int, int | None] | None = None) -> None:
    """ValueError naming the first ID of ``--name`` or ``--merge`` the people store at ``store_path`` does not hold."""
    asked = [("--name", pid) for pid in renames] + [("--merge", pid) for pair in (merges or {}).items()
                                                    for pid in pair if pid is not None]
    if not asked:
        return
    known_ids = stored_people(store_path)
    for option, pid in asked:
        if pid not in known_ids:
            raise ValueError(f"{option} person_{pid:02d}: no such person in {store_path} "
                             "(IDs are those of an earlier run; --list-people shows them)")


def parse_merges(values: list[str]) -> dict[int, int | None]:
    """``["person_07=person_03", "person_05="]`` -> ``{7: 3, 5: None}`` (None: undo a merge; ValueError with the bad one)."""
    merges: dict[int, int | None] = {}
    for value in values:
        if "=" not in value:
            raise ValueError(f"--merge {value!r}: expected person_07=person_03")
        who, into = value.split("=", 1)
        merges[person_id(who)] = person_id(into) if into.strip() else None
        if merges[person_id(who)] == person_id(who):
            raise ValueError(f"--merge {value!r}: a person is already themselves")
    return merges


def identify(encodings: np.ndarray, labels: np.ndarray, *, known: KnownPeople | None, store_path: str | None,
             encodings_path: str, renames: Mapping[int, str], warn: Callable[[str], None],
             merges: Mapping[int, int | None] | None = None) -> Identified:
    """Name the clusters from ``known``, match them to the stored people and apply ``renames`` and
    ``merges`` (ID -> the ID to show it as).

    ``store_path`` None keeps nothing (labels stay as clustered).  A store
    that cannot be written costs its line through ``warn``, not the run.
    """
    result = Identified(np.asarray(labels, dtype=np.int64))
    known_names: dict[int, str] = {}
    if known is not None:
        known_names = name_clusters(encodings, result.labels, known)
        named = len(known_names)
        unknown_before = int((result.labels == -1).sum())
        result.labels, known_names = pull_in_unknown(encodings, result.labels, known, known_names)
        pulled = unknown_before - int((result.labels == -1).sum())
        result.lines.append(f"known people: {len(known.people)} ({len(known.names)} photos); {named} clusters "
                            f"named, {pulled} unknown faces pulled in")
    result.names = dict(known_names)
    store = open_store(encodings_path, store_path, warn) if store_path is not None else None
    if store is not None:
        try:
            _merge(store, merges or {})
            assigned = store.assign(encodings, result.labels, known_names)
            for pid, name in renames.items():
                store.rename(pid, name)
            result.labels, result.names = assigned.labels, dict(assigned.names)
            result.lines.append(f"people: {assigned.kept + assigned.new} ({assigned.kept} seen before, "
                                f"{assigned.new} new; {assigned.hidden} not seen this run, kept hidden) "
                                f"in {store.path}")
        except sqlite3.Error as error:
            warn(f"{store.path}: cannot write the people store ({error}); IDs and names are not kept this run")
        finally:
            store.close()
    for pid, name in renames.items():
        if name:
            result.names[pid] = name
        else:
            result.names.pop(pid, None)
    result.lines.extend(_named_lines(result.labels, result.names))
    return result


def _merge(store: PeopleStore, merges: Mapping[int, int | None]) -> None:
    """Apply ``--merge`` to the store; ValueError (one line) for a merge that would loop."""
    for pid, into in merges.items():
        try:
            store.merge(pid, into)
        except ValueError as problem:
            raise ValueError(f"--merge: {problem}") from None


def load_known(source: str, encodings_path: str, warn: Callable[[str], None]) -> KnownPeople:
    """The known people of ``--known source``; encodings of a folder are cached beside the encodings file."""
    return read_known(source, encodings_path + ".known", warn)


def _named_lines(labels: np.ndarray, names: Mapping[int, str]) -> list[str]:
    """``named: person_03 Ada Lovelace (12 faces)``, the largest first, at most :data:`NAMED_LINES`."""
    counts = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, np.int64)
    shown = sorted((pid for pid in names if pid < len(counts) and counts[pid]), key=lambda pid: (-counts[pid], pid))
    lines = [f"named: person_{pid:02d} {names[pid]} ({counts[pid]} faces)" for pid in shown[:NAMED_LINES]]
    if len(shown) > NAMED_LINES:
        lines.append(f"named: ... and {len(shown) - NAMED_LINES} more (clusters.csv has every name)")
    return lines

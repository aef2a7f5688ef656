"""The people store: the same person gets the same ID, and keeps their name, every run.

A small SQLite file beside the encodings file (``encodings.pickle.people.sqlite``)
keeps each person ever seen: their ID (``person_03`` is ID 3), their name and
where it came from (``user``: ``--name``; ``known``: ``--known``), whether they
are hidden (no faces this run), and what identifies them: the centroid of their
faces and up to :data:`REPRESENTATIVES` of their encodings (the nearest to the centroid).

Each run, :meth:`PeopleStore.assign` matches the new clusters to the stored
people by the distance between centroids: a one-to-one (Hungarian)
assignment, per connected group of candidate pairs, of the pairs closer than
:data:`MATCH_THRESHOLD`.  A matched cluster takes the person's ID and name; a
cluster that matches no one is a new person with the next unused ID (the first
run numbers people in the clustering's own order, so it labels exactly as the
tutorial does); a stored person matched by no cluster is kept, hidden, and comes
back if a later run finds them again.  A name the user gave (``--name``) is
never replaced by ``--known``.  A person the user merged into another
(``--merge person_07=person_03``: two clusters of one person) keeps being
matched under their own ID, and their faces are shown as the other's.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..cluster.graph import EXACT_MAX_FACES, ivf_index
from .naming import NAME_THRESHOLD

STORE_SUFFIX = ".people.sqlite"
# Two centroids closer than the distance at which faces are linked as one
# person are one person (chinese whispers' default, as in naming.py).
MATCH_THRESHOLD: float = NAME_THRESHOLD
REPRESENTATIVES = 8
CANDIDATES = 8  # nearest stored people looked at per cluster
# Lists an inverted-file search for candidates scans: a person's stored centroid is
# nearly where their new one is (distance ~0.05), so fewer than the graph's 12 do.
_STORE_PROBES = 4
_DENSE_LIMIT = 2_000  # larger groups of candidate pairs are matched greedily, nearest first
_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT, name_source TEXT, hidden INTEGER NOT NULL DEFAULT 0,
    faces INTEGER NOT NULL DEFAULT 0, centroid BLOB NOT NULL, first_seen REAL, last_seen REAL,
    merged_into INTEGER);
CREATE TABLE IF NOT EXISTS representatives (person INTEGER NOT NULL, encoding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS representatives_person ON representatives(person);
"""


def store_path_for(encodings_path: str) -> str:
    """Where the people of ``encodings_path`` are kept."""
    return encodings_path + STORE_SUFFIX


def person_id(text: str) -> int:
    """``"person_03"``, ``"3"`` -> 3 (ValueError for anything else)."""
    text = text.strip()
    digits = text[len("person_"):] if text.startswith("person_") else text
    if not digits.isdigit():
        raise ValueError(f"{text!r} is not a person ID (person_03 or 3)")
    return int(digits)


@dataclass(frozen=True)
class Person:
    id: int
    name: str | None
    name_source: str | None  # "user", "known" or None
    hidden: bool
    faces: int
    merged_into: int | None = None


@dataclass(frozen=True)
class Assignment:
    """What :meth:`PeopleStore.assign` did: labels now person IDs, names by ID, and counts."""

    labels: np.ndarray
    names: dict[int, str]
    kept: int  # clusters that are people seen before
    new: int  # clusters that are new people
    hidden: int  # stored people with no faces this run


class PeopleStore:
    """The SQLite people store at ``path`` (created if missing).  Raises sqlite3.Error when unusable."""

    def __init__(self, path: str):
        self.path = path
        self.db = sqlite3.connect(path)
        try:
            self.db.executescript(_SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(people)")}
            if "merged_into" not in columns:  # a store from before --merge
                with self.db:
                    self.db.execute("ALTER TABLE people ADD COLUMN merged_into INTEGER")
            self.db.execute("SELECT id, name, name_source, hidden, faces, merged_into FROM people LIMIT 1").fetchall()
        except sqlite3.Error:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def people(self) -> dict[int, Person]:
        """Every stored person by ID, hidden ones too."""
        rows = self.db.execute("SELECT id, name, name_source, hidden, faces, merged_into FROM people ORDER BY id")
        return {row[0]: Person(row[0], row[1], row[2], bool(row[3]), row[4], row[5]) for row in rows}

    def merge(self, pid: int, into: int | None) -> None:
        """Show person ``pid`` as person ``into`` from now on; ``into`` None shows them as themselves
        again.  KeyError for an unknown ID, ValueError for a loop."""
        people = self.people()
        if pid not in people or (into is not None and into not in people):
            raise KeyError(pid if pid not in people else into)
        if into is None:
            with self.db:
                self.db.execute("UPDATE people SET merged_into = NULL WHERE id = ?", (pid,))
            return
        if self._resolve(into, people) == pid:
            raise ValueError(f"person_{into:02d} is already shown as person_{pid:02d}")
        with self.db:
            self.db.execute("UPDATE people SET merged_into = ?, hidden = 1 WHERE id = ?", (into, pid))

    @staticmethod
    def _resolve(pid: int, people: dict[int, Person]) -> int:
        """The person ``pid`` is shown as: itself, or where its merges lead."""
        seen = {pid}
        while people.get(pid) is not None and people[pid].merged_into is not None and people[pid].merged_into not in seen:
            pid = people[pid].merged_into
            seen.add(pid)
        return pid

    def rename(self, pid: int, name: str) -> None:
        """Give person ``pid`` the user's ``name`` (empty: no name, and none from ``--known`` either).

        KeyError when there is no such person.
        """
        with self.db:
            changed = self.db.execute("UPDATE people SET name = ?, name_source = 'user' WHERE id = ?",
                                      (name.strip() or None, pid)).rowcount
        if not changed:
            raise KeyError(pid)

    def _centroids(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self.db.execute("SELECT id, centroid FROM people ORDER BY id").fetchall()
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        centroids = np.stack([np.frombuffer(row[1], np.float32) for row in rows]) if rows else np.empty((0, 128), np.float32)
        return ids, centroids

    def assign(self, encodings: np.ndarray, labels: np.ndarray, known_names: dict[int, str] | None = None) -> Assignment:
        """Match the clusters of ``labels`` (-1: unknown) to the stored people and store the result.

        ``known_names`` (label -> name) are this run's names from ``--known``.
        Returns the labels as person IDs and each shown person's name.
        """
        labels = np.asarray(labels, dtype=np.int64)
        clusters, centroids, members = _cluster_centroids(encodings, labels)
        stored_ids, stored = self._centroids()
        match = match_centroids(centroids, stored)
        next_id = int(stored_ids.max()) + 1 if len(stored_ids) else 0
        ids = np.empty(len(clusters), dtype=np.int64)
        for i in range(len(clusters)):  # new people numbered in the clustering's order
            if i in match:
                ids[i] = stored_ids[match[i]]
            else:
                ids[i], next_id = next_id, next_id + 1
        names = self._store(ids, clusters, centroids, members, encodings, known_names or {})
        people = self.people()
        shown_as = np.array([self._resolve(pid, people) for pid in ids.tolist()], dtype=np.int64)
        with self.db:  # a person shown through a merge is not hidden, whether or not their own cluster came back
            self.db.executemany("UPDATE people SET hidden = 0 WHERE id = ?", [(pid,) for pid in set(shown_as.tolist()) - set(ids.tolist())])
        names = {int(pid): people[int(pid)].name for pid in set(shown_as.tolist()) if people[int(pid)].name}
        relabel = np.full(int(labels.max()) + 2 if len(labels) else 1, -1, dtype=np.int64)
        relabel[clusters] = shown_as
        new_labels = np.where(labels >= 0, relabel[np.maximum(labels, 0)], -1)
        hidden = len(set(stored_ids.tolist()) - set(ids.tolist()))
        return Assignment(new_labels, names, kept=len(match), new=len(clusters) - len(match), hidden=hidden)

    def _store(self, ids: np.ndarray, clusters: np.ndarray, centroids: np.ndarray, members: list[np.ndarray],
               encodings: np.ndarray, known_names: dict[int, str]) -> dict[int, str]:
        """Write this run's people (one transaction); returns the name of each person that has one.

        A merged person stays hidden: their faces are shown as the person they were merged into."""
        before = self.people()
        now = time.time()
        names: dict[int, str] = {}
        people, representatives = [], []
        for pid, label, centroid, rows in zip(ids.tolist(), clusters.tolist(), centroids, members):
            earlier = before.get(pid)
            name, source = (earlier.name, earlier.name_source) if earlier else (None, None)
            if source != "user" and label in known_names:
                name, source = known_names[label], "known"
            if name:
                names[pid] = name
            people.append((pid, name, source, len(rows), centroid.astype(np.float32).tobytes(), now, now))
            representatives += [(pid, e.tobytes()) for e in _representatives(encodings, rows, centroid)]
        with self.db:  # one transaction, statements in bulk: 400,000 people are a million faces
            self.db.execute("UPDATE people SET hidden = 1")
            self.db.executemany(
                "INSERT INTO people (id, name, name_source, hidden, faces, centroid, first_seen, last_seen) "
                "VALUES (?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                "name_source = excluded.name_source, hidden = (merged_into IS NOT NULL), faces = excluded.faces, "
                "centroid = excluded.centroid, last_seen = excluded.last_seen", people)
            self.db.executemany("DELETE FROM representatives WHERE person = ?", [(pid,) for pid in ids.tolist()])
            self.db.executemany("INSERT INTO representatives (person, encoding) VALUES (?, ?)", representatives)
        return names


def _cluster_centroids(encodings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The clusters (labels >= 0, ascending), their centroids (float32) and member rows; one sort."""
    person = labels >= 0
    order = np.flatnonzero(person)[np.argsort(labels[person], kind="stable")]
    if not len(order):  # no faces, or no person among them
        return np.empty(0, np.int64), np.empty((0, 128), np.float32), []
    X = np.asarray(encodings, dtype=np.float32)
    clusters, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    centroids = np.add.reduceat(X[order], starts, axis=0) / counts[:, None]
    return clusters.astype(np.int64), centroids.astype(np.float32), np.split(order, starts[1:])


def _representatives(encodings: np.ndarray, rows: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """Up to :data:`REPRESENTATIVES` of the faces ``rows`` nearest to the centroid, as float32."""
    faces = np.asarray(encodings[rows], dtype=np.float32)
    if len(faces) <= REPRESENTATIVES:
        return faces
    nearest = np.argsort(((faces - centroid) ** 2).sum(axis=1), kind="stable")[:REPRESENTATIVES]
    return faces[nearest]


def match_centroids(new: np.ndarray, stored: np.ndarray, threshold: float = MATCH_THRESHOLD) -> dict[int, int]:
    """A one-to-one matching of ``new`` rows to ``stored`` rows, closer than ``threshold``, with the
    least total distance (Hungarian, per connected group of candidate pairs).  ``{new row: stored row}``."""
    if not len(new) or not len(stored):
        return {}
    rows, cols, dist = _candidate_pairs(new, stored, threshold)
    if not len(rows):
        return {}
    n, m = len(new), len(stored)
    # A pair whose cluster and person have no other candidate is matched as it is (most of a large
    # collection); the rest go to the assignment, per connected group.
    alone = (np.bincount(rows, minlength=n)[rows] == 1) & (np.bincount(cols, minlength=m)[cols] == 1)
    match: dict[int, int] = dict(zip(rows[alone].tolist(), cols[alone].tolist()))
    rows, cols, dist = rows[~alone], cols[~alone], dist[~alone]
    if not len(rows):
        return match
    graph = sp.coo_matrix((np.ones(len(rows)), (rows, n + cols)), shape=(n + m, n + m))
    _, component = connected_components(graph, directed=False)
    by_group: dict[int, list[int]] = {}
    for pair, row in enumerate(rows.tolist()):
        by_group.setdefault(int(component[row]), []).append(pair)
    for pairs in by_group.values():
        match.update(_match_group(rows[pairs], cols[pairs], dist[pairs]))
    return match


def _candidate_pairs(new: np.ndarray, stored: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each new centroid's nearest stored centroids (at most :data:`CANDIDATES`) closer than ``threshold``."""
    import faiss

    data = np.ascontiguousarray(stored, dtype=np.float32)
    if len(data) <= EXACT_MAX_FACES:
        index = faiss.IndexFlatL2(data.shape[1])
        index.add(data)
    else:  # the clustering's inverted-file index: many people, each near few others
        index = ivf_index(data)
        index.nprobe = min(index.nlist, _STORE_PROBES)
    squared, nearest = index.search(np.ascontiguousarray(new, dtype=np.float32), min(CANDIDATES, len(stored)))
    distances = np.sqrt(np.maximum(squared, 0))
    keep = (nearest >= 0) & (distances < threshold)
    rows = np.nonzero(keep)[0]
    return rows.astype(np.int64), nearest[keep].astype(np.int64), distances[keep]


def _match_group(rows: np.ndarray, cols: np.ndarray, dist: np.ndarray) -> dict[int, int]:
    """The least-distance one-to-one matching within one group of candidate pairs."""
    r, c = np.unique(rows), np.unique(cols)
    if len(r) * len(c) > _DENSE_LIMIT**2:  # too large for the dense assignment: nearest pairs first
        match, used = {}, set()
        for k in np.argsort(dist, kind="stable").tolist():
            if rows[k] not in match and cols[k] not in used:
                match[int(rows[k])] = int(cols[k])
                used.add(int(cols[k]))
        return match
    # Imported here: scipy.optimize costs every cluster_faces.py run ~0.25 s to import, and only
    # a contested match (two clusters near one stored person) needs it.
    from scipy.optimize import linear_sum_assignment

    cost = np.full((len(r), len(c)), 1e6)
    cost[np.searchsorted(r, rows), np.searchsorted(c, cols)] = dist
    chosen_r, chosen_c = linear_sum_assignment(cost)
    return {int(r[i]): int(c[j]) for i, j in zip(chosen_r, chosen_c) if cost[i, j] < 1e6}


def open_store(encodings_path: str, path: str | None, warn) -> PeopleStore | None:
    """The people store for a run (``path``, or the one beside the encodings file), or None with one
    line when it cannot be opened or written (the run then numbers people as the clustering does)."""
    path = path or store_path_for(encodings_path)
    try:
        return PeopleStore(path)
    except sqlite3.OperationalError as error:  # e.g. a folder we may not write in
        warn(f"{path}: cannot open the people store ({error}); IDs and names are not kept this run")
        return None
    except sqlite3.DatabaseError as error:  # not a database: put it aside, start again
        aside = path + ".unreadable"
        try:
            os.replace(path, aside)
            store = PeopleStore(path)
        except (OSError, sqlite3.Error):
            warn(f"{path}: unusable people store ({error}); IDs and names are not kept this run")
            return None
        warn(f"{path}: unusable people store ({error}); kept as {aside}, starting a new one")
        return store

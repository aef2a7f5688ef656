"""Who appears together: two faces of one picture are two people, one track is one person.

Every collection carries these facts for free.  Two faces seen in the same
photo, or in the same frame of a video, are two different people (a
*cannot-link*); the faces a video's tracker followed on screen as one face are
one person (a *must-link*, :mod:`facecluster.run.tracks`).  Face clustering
of video uses exactly these constraints (e.g. Wu et al., "Constrained
clustering and its application to face clustering in videos", CVPR 2013), and
a cluster that holds two faces of one picture is a mistake a user sees at once.

:class:`Constraints` reads them from the records (``imagePath``, and for a
video ``frame`` and ``track``); :func:`respect` makes a clustering obey them:

1. *Must-link*: a track's faces all go to the cluster that holds most of them.
2. *Cannot-link*: a cluster holding two faces of one picture is split by
   constrained k-means (COP-KMeans, Wagstaff et al., ICML 2001): one side per
   face of its most crowded picture, then every face (a track as one unit) goes
   to the nearest side that holds no face of its pictures, the sides' centres
   are recomputed and the faces re-assigned until nothing moves.  So a merged
   father and son are separated by all their photos, not only by the ones they
   share, and a bystander pulled into a famous person's cluster leaves alone.

The exception: two faces of one picture closer than :data:`SAME_SHARE` times
the method's threshold are near-identical (a reflection in a mirror, a photo
within the photo, one face detected twice) and may stay together; nothing else
overrides a cannot-link (docs/clustering.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Two faces of one picture closer than this share of the method's threshold are
# one face seen twice (a reflection; the mirror pass makes a face and its
# mirror image encode alike): 0.6 x 0.5-0.6 = 0.30-0.36, where different people
# essentially never are (LFW: 1 different-person pair in 20,000 is under 0.45)
# while a face and its reflection, or a duplicate, are under 0.2.
SAME_SHARE = 0.6

# Rounds of re-assignment when a cluster is split (it converges in a few).
_SPLIT_ROUNDS = 20


@dataclass(frozen=True)
class Constraints:
    """Per face: the picture it is in and the track it was followed on.

    ``pictures[i] == pictures[j]``: faces ``i`` and ``j`` are in one photo (or
    one frame of one video).  ``tracks[i] == tracks[j] >= 0``: one video track.
    """

    pictures: np.ndarray  # int64 (n,)
    tracks: np.ndarray  # int64 (n,), -1 where none

    @classmethod
    def from_records(cls, records: Iterable[Mapping]) -> Constraints:
        """From records (``imagePath``; ``frame`` and ``track`` where present)."""
        picture_ids: dict[tuple, int] = {}
        track_ids: dict[tuple, int] = {}
        pictures, tracks = [], []
        for record in records:
            path = record["imagePath"]
            pictures.append(picture_ids.setdefault((path, record.get("frame")), len(picture_ids)))
            track = record.get("track")
            tracks.append(-1 if track is None else track_ids.setdefault((path, track), len(track_ids)))
        return cls(np.asarray(pictures, dtype=np.int64), np.asarray(tracks, dtype=np.int64))

    @property
    def n(self) -> int:
        return len(self.pictures)

    def multi_face_pictures(self) -> int:
        """How many pictures show two or more faces."""
        return int((np.bincount(self.pictures) >= 2).sum()) if self.n else 0

    def shared(self) -> list[np.ndarray]:
        """The faces of each picture with two or more faces (index arrays)."""
        if not self.n:
            return []
        order = np.argsort(self.pictures, kind="stable")
        cuts = np.flatnonzero(np.diff(self.pictures[order])) + 1
        return [group for group in np.split(order, cuts) if len(group) >= 2]


@dataclass(frozen=True)
class Repeat:
    """One picture in which one cluster holds two or more faces."""

    label: int
    faces: tuple[int, ...]  # record indices, in record order


def repeated_pictures(labels: np.ndarray, constraints: Constraints) -> list[Repeat]:
    """Each picture that shows one cluster twice (or more), with the faces
    concerned; outliers (-1) never count.  In record order of the first face."""
    labels = np.asarray(labels)
    if len(labels) != constraints.n:
        raise ValueError(f"{len(labels)} labels but {constraints.n} faces in the constraints")
    repeats = []
    for faces in constraints.shared():
        seen: dict[int, list[int]] = {}
        for i in faces.tolist():
            if labels[i] >= 0:
                seen.setdefault(int(labels[i]), []).append(i)
        repeats += [Repeat(label, tuple(sorted(group))) for label, group in seen.items() if len(group) >= 2]
    return sorted(repeats, key=lambda r: r.faces)


def count_repeated(labels: np.ndarray, constraints: Constraints) -> int:
    """How many pictures show one cluster twice (a picture counts once)."""
    return len({int(constraints.pictures[r.faces[0]]) for r in repeated_pictures(labels, constraints)})


def apart_clusters(encodings: np.ndarray, labels: np.ndarray, constraints: Constraints,
                   same_below: float) -> set[tuple[int, int]]:
    """Pairs ``(a, b)``, ``a < b``, of clusters with faces in one picture (so
    two people), not counting faces closer than ``same_below`` (one face seen twice)."""
    pairs = set()
    for faces in constraints.shared():
        faces = faces[labels[faces] >= 0].tolist()
        for k, i in enumerate(faces):
            for j in faces[k + 1:]:
                a, b = sorted((int(labels[i]), int(labels[j])))
                if a != b and (a, b) not in pairs and _distance(encodings, i, j) >= same_below:
                    pairs.add((a, b))
    return pairs


def respect(encodings: np.ndarray, labels: np.ndarray, constraints: Constraints, same_below: float,
            neighbours: np.ndarray | None = None) -> np.ndarray:
    """Raw cluster ids that keep each track in one cluster and no two faces of
    one picture in one cluster (unless closer than ``same_below``).

    ``labels``: raw ids (negative: no cluster).  Clusters that break no
    constraint keep their faces; a split cluster keeps its id for the side
    with the most faces and new ids (above every id in ``labels``) go to
    the others; then its faces may move to a nearer cluster (re-homing).
    ``neighbours``: each face's nearest faces (the kNN graph's indices, -1
    padding), so that re-homing looks only at their clusters; ``None``: at every cluster.
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    if len(labels) != constraints.n:
        raise ValueError(f"{len(labels)} labels but {constraints.n} faces in the constraints")
    _keep_tracks_together(encodings, labels, constraints.tracks)
    conflicts = _conflicts(encodings, labels, constraints, same_below)
    next_id = int(labels.max(initial=-1)) + 1
    moved = []
    for label, pairs in conflicts.items():
        members = np.flatnonzero(labels == label)
        moved.append(members)
        sides = _split(encodings, members, pairs, constraints.tracks)
        for side in sides[1:]:
            labels[side] = next_id
            next_id += 1
    if moved:
        _rehome(encodings, labels, np.concatenate(moved), constraints, same_below / SAME_SHARE, neighbours)
    return labels


def _rehome(encodings: np.ndarray, labels: np.ndarray, faces: np.ndarray, constraints: Constraints,
            within: float, neighbours: np.ndarray | None = None) -> None:
    """In place: each of ``faces`` (a track as one) moves to the cluster whose
    centre is nearest, when nearer than its own cluster's centre without it
    and that cluster holds no face of its pictures; a face (or track) alone
    in its cluster moves only where its faces are on average within ``within``
    of the cluster's (that joins two clusters, so it takes the join's kind of evidence).  A side split off with a few faces of another person whose
    own cluster lies elsewhere sends them there (Venus Williams' photos split
    off with some of Serena's go to Venus' cluster).  Repeats until nothing
    moves (at most :data:`_SPLIT_ROUNDS` rounds).  With ``neighbours``, only
    the clusters of a face's nearest faces are candidates (a million faces
    have too many clusters to look at all)."""
    X = np.asarray(encodings, dtype=np.float64)
    unit_of, units = _units(faces, constraints.tracks)
    in_picture = _faces_by_picture(constraints)
    for _ in range(_SPLIT_ROUNDS):
        ids, inverse = np.unique(labels, return_inverse=True)
        inverse = inverse.reshape(-1)
        sums = np.zeros((len(ids), X.shape[1]))
        np.add.at(sums, inverse, X)
        counts = np.bincount(inverse, minlength=len(ids)).astype(np.float64)
        valid = ids >= 0
        centres = sums / np.maximum(counts, 1)[:, None]
        changed = False
        for unit in units:
            members = faces[unit]
            own = inverse[members[0]]
            point, weight = X[members].mean(0), len(members)
            alone = not (ids[own] >= 0 and counts[own] > weight)
            if not alone:
                rest = (sums[own] - X[members].sum(0)) / (counts[own] - weight)
                stay = float(np.linalg.norm(point - rest))
            else:  # moving it joins two clusters: only when its faces are within reach of theirs on average
                stay = np.inf
            if neighbours is None:
                candidates = np.flatnonzero(valid)
            else:
                near = neighbours[members].ravel()
                candidates = np.unique(inverse[near[near >= 0]])
                candidates = candidates[valid[candidates]]
            candidates = candidates[candidates != own]
            distances = np.full(len(ids), np.inf)
            distances[candidates] = np.linalg.norm(centres[candidates] - point, axis=1)
            partners = {int(labels[j]) for i in members.tolist() for j in in_picture.get(int(constraints.pictures[i]), ())
                        if j != i and labels[j] >= 0}
            for target in candidates[np.argsort(distances[candidates])].tolist():
                if distances[target] >= stay:
                    break
                if int(ids[target]) in partners:
                    continue
                if alone and _mean_distance_to(X, members, np.flatnonzero(labels == ids[target])) > within:
                    break  # the nearest cluster allowed is too far: the others are farther
                labels[members] = ids[target]
                sums[own] -= X[members].sum(0)
                counts[own] -= weight
                sums[target] += X[members].sum(0)
                counts[target] += weight
                centres[own] = sums[own] / max(counts[own], 1)
                centres[target] = sums[target] / counts[target]
                inverse[members] = target
                changed = True
                break
        if not changed:
            break


def _mean_distance_to(X: np.ndarray, faces: np.ndarray, cluster: np.ndarray) -> float:
    """Mean distance from ``faces`` to (a seeded sample of up to 32 of) ``cluster``'s faces."""
    if len(cluster) > 32:
        cluster = np.random.default_rng(0).choice(cluster, 32, replace=False)
    a, b = X[faces], X[cluster]
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return float(np.sqrt(np.maximum(squared, 0.0)).mean())


def _faces_by_picture(constraints: Constraints) -> dict[int, np.ndarray]:
    """Picture id -> its faces, for the pictures with two or more."""
    return {int(constraints.pictures[group[0]]): group for group in constraints.shared()}


def _keep_tracks_together(encodings: np.ndarray, labels: np.ndarray, tracks: np.ndarray) -> None:
    """In place: every track's faces to the cluster holding most of them
    (ties: the one whose faces are nearer the track's); all-outlier tracks stay."""
    tracked = np.flatnonzero(tracks >= 0)
    if not len(tracked):
        return
    order = tracked[np.argsort(tracks[tracked], kind="stable")]
    cuts = np.flatnonzero(np.diff(tracks[order])) + 1
    for faces in np.split(order, cuts):
        found = labels[faces]
        clustered = found[found >= 0]
        if len(clustered) == 0 or (clustered == clustered[0]).all() and len(clustered) == len(found):
            continue
        ids, counts = np.unique(clustered, return_counts=True)
        tied = ids[counts == counts.max()]
        if len(tied) > 1:
            centre = np.asarray(encodings[faces], dtype=np.float64).mean(0)
            tied = [min(tied.tolist(), key=lambda c: float(np.linalg.norm(
                np.asarray(encodings[labels == c], dtype=np.float64).mean(0) - centre)))]
        labels[faces] = int(tied[0])


def _conflicts(encodings: np.ndarray, labels: np.ndarray, constraints: Constraints,
               same_below: float) -> dict[int, list[tuple[int, int]]]:
    """Per cluster: the pairs of its faces that share a picture and are not
    near-identical (closer than ``same_below``)."""
    found: dict[int, list[tuple[int, int]]] = {}
    for faces in constraints.shared():
        faces = faces[labels[faces] >= 0]
        for k, i in enumerate(faces.tolist()):
            for j in faces[k + 1:].tolist():
                if labels[i] == labels[j] and _distance(encodings, i, j) >= same_below:
                    found.setdefault(int(labels[i]), []).append((i, j))
    return found


def _distance(encodings: np.ndarray, i: int, j: int) -> float:
    return float(np.linalg.norm(np.asarray(encodings[i], dtype=np.float64) - np.asarray(encodings[j], dtype=np.float64)))


def _split(encodings: np.ndarray, members: np.ndarray, pairs: Sequence[tuple[int, int]],
           tracks: np.ndarray) -> list[np.ndarray]:
    """The faces ``members`` of one cluster, split so that no pair in
    ``pairs`` shares a side: constrained k-means over units (a track's faces,
    or one face), seeded with the units of the picture with most conflicts.
    Sides largest first."""
    unit_of, units = _units(members, tracks)
    X = np.asarray(encodings[members], dtype=np.float64)
    centres_of_units = np.array([X[u].mean(0) for u in units])
    weights = np.array([len(u) for u in units], dtype=np.float64)
    position = {int(face): k for k, face in enumerate(members.tolist())}
    cannot: list[set[int]] = [set() for _ in units]
    for i, j in pairs:
        a, b = unit_of[position[i]], unit_of[position[j]]
        if a != b:
            cannot[a].add(b)
            cannot[b].add(a)
    seeds = _seed_units(cannot)
    side = _assign(centres_of_units, cannot, [centres_of_units[s] for s in seeds], seeds)
    for _ in range(_SPLIT_ROUNDS):
        count = side.max() + 1
        centres = [np.average(centres_of_units[side == s], axis=0, weights=weights[side == s]) for s in range(count)]
        again = _assign(centres_of_units, cannot, centres, [])
        if np.array_equal(again, side):
            break
        side = again
    face_side = side[unit_of]
    sides = [members[face_side == s] for s in range(side.max() + 1)]
    return sorted((s for s in sides if len(s)), key=len, reverse=True)


def _units(members: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per member (by position): its unit; and each unit's member positions.
    A unit is a track's faces, or a face with no track."""
    unit_of = np.empty(len(members), dtype=np.int64)
    index: dict[int, int] = {}
    units: list[list[int]] = []
    for k, face in enumerate(members.tolist()):
        track = int(tracks[face])
        if track < 0 or track not in index:
            if track >= 0:
                index[track] = len(units)
            units.append([])
            unit = len(units) - 1
        else:
            unit = index[track]
        unit_of[k] = unit
        units[unit].append(k)
    return unit_of, [np.asarray(u) for u in units]


def _seed_units(cannot: list[set[int]]) -> list[int]:
    """Units that must all be apart, to seed the sides: greedily, the unit with
    most cannot-links, then those linked to every unit chosen so far (a clique:
    the faces of the most crowded picture)."""
    first = max(range(len(cannot)), key=lambda u: (len(cannot[u]), -u))
    chosen = [first]
    candidates = set(cannot[first])
    while candidates:
        best = max(candidates, key=lambda u: (len(cannot[u] & candidates), -u))
        chosen.append(best)
        candidates &= cannot[best]
    return chosen


def _assign(points: np.ndarray, cannot: list[set[int]], centres: list[np.ndarray], seeds: list[int]) -> np.ndarray:
    """Each unit to its nearest centre among the sides that hold none of its
    cannot-links (the surest units first); a unit every side refuses opens a
    new side.  ``seeds[s]`` starts on side ``s``."""
    side = np.full(len(points), -1, dtype=np.int64)
    held: list[set[int]] = [set() for _ in centres]
    for s, unit in enumerate(seeds):
        side[unit] = s
        held[s].add(unit)
    C = np.array(centres)
    # Squared distances by dot products: no (units x sides x 128) array.
    distances = (points * points).sum(1)[:, None] + (C * C).sum(1)[None, :] - 2.0 * points @ C.T
    for unit in np.argsort(distances.min(1), kind="stable").tolist():
        if side[unit] >= 0:
            continue
        for s in np.argsort(distances[unit], kind="stable").tolist():
            if not (cannot[unit] & held[s]):
                break
        else:
            s = len(held)
            held.append(set())
        side[unit] = s
        held[s].add(unit)
    return _renumbered(side)


def _renumbered(side: np.ndarray) -> np.ndarray:
    """Side ids 0..k-1 in order of first use (empty sides dropped)."""
    _, first, inverse = np.unique(side, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse.reshape(-1)]

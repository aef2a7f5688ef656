"""Reading a collection before clustering it: how crowded, how tight.

The distance at which two photos are best called one person is not fixed.
Measured with labels (docs/clustering.md), chinese whispers is best at 0.45 on
all of LFW (5,749 people), 0.5 on LFW bench-3474 (658), 0.5-0.55 on Yale and
ORL (15 and 40 people photographed in one studio session), and 0.6-0.65 on
five_celebs and glint_aligned_crops (a few people photographed over decades).
Two things about a collection set that distance, and both can be read from the
encodings alone:

*Crowding.*  The more people, the more look-alikes: the share of face pairs
that belong to one person shrinks as 1 / (number of people), while the
different-person pairs close enough to be confused grow with it.  The share of
pairs closer than :data:`CLOSE` (estimated on a sample) measures this:
0.19-0.32 % on LFW, 1.3-25 % on every smaller set (mirror-pass encodings).
Uniform sampling leaves the share unchanged, so a few thousand faces estimate
it for a million.
In a crowded collection no single distance works (every fixed threshold stays
under pairwise F1 0.96 on all of LFW); HDBSCAN's hierarchy, which cuts dense
and sparse people at different levels, reaches 0.975
(:func:`facecluster.cluster.density.capped_hdbscan`).

*Chance matches.*  Among thousands of people a stranger is often as near a
face as another photo of its person would be.  Where most people are seen
once or twice (a press archive, a day of CCTV) HDBSCAN takes such strangers
into people's clusters and leaves most people of two photos unpaired.  So a
face stays in its cluster only if its nearest fellow member is clearly
closer than its nearest face outside (:func:`drop_unclear_members`), and two
faces left alone are paired when each is clearly the other's match
(:func:`pair_clear_matches`): the ratio test of :data:`CLEAR_MATCH`.

*Tightness.*  Where one person's photos are very alike (one studio session:
Yale, ORL; median nearest-neighbour distance 0.19-0.24) the people are also
closer to each other, and a threshold of 0.5-0.55 is best; where they vary
(decades, make-up, pose: 0.33-0.38) 0.6 is.  In an uncrowded collection
chinese whispers therefore runs at ``0.4 + 0.5 x`` the median distance from a
face to its nearest other face (over the faces with a match under 0.5, so
that strangers in the background do not count), kept within 0.5-0.6.  Chinese
whispers' vote can leave one person in two clusters whose faces are, on
average, closer than the links it used (ORL: two people split 5 / 5; web
photos of one person in a few pieces of 2-10); :func:`join_split_people` joins
two clusters that are each other's closest when their faces are on average
within 1.1 x the threshold, unless the two are tight groups clearly apart (the
separation test of :mod:`.density`), and repeats on the joined clusters.
Before that, the same test cuts a cluster in two where chinese whispers'
links ran between two such groups that are on average farther apart than the
threshold itself (look-alikes in web photos: :func:`split_two_people`).

Both rules were read off the labelled sets and are checked leave-one-set-out
in ``make quality`` (benchmarks/quality_sets.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constraints import Constraints, apart_clusters
from .graph import NeighbourGraph

# Two faces closer than this are nearly always one person (dlib's encoder on
# LFW: 1 in 20,000 different-person pairs, against 56 % of same-person pairs;
# 97 % of LFW's pairs this close are one person), so the share of pairs this
# close tells how many people share the collection.
CLOSE = 0.465

# Below this share of close pairs the collection is crowded (mirror-pass encodings,
# LFW: 0.19-0.32 %; the next most crowded labelled set, glint_aligned_crops: 1.29 %).
CROWDED_BELOW = 0.005

# Faces sampled to estimate the share (8 million pairs: ~0.1 s).
_SAMPLE = 4000

# chinese whispers' threshold in an uncrowded collection: from the median
# nearest-neighbour distance, within these bounds.
_THRESHOLD_BASE, _THRESHOLD_SLOPE = 0.414, 0.5
_THRESHOLD_RANGE = (0.517, 0.62)

# The median is read over faces that have a match: their nearest other face
# closer than this.  Strangers in the background (one photo each) have none;
# counted, they would set the threshold by how unlike each other they are (two
# strangers per labelled face sent small LFW collections to 0.6 and F1 0.95;
# read this way, 0.99).  Where under a tenth of the faces have a match, all count.
_MATCHED_BELOW = 0.517

# Two clusters are one person when each is the other's closest, their faces
# are on average within this share of chinese whispers' threshold, and they are
# not two tight groups clearly apart (density.clearly_apart).  In 240 small
# collections drawn from LFW and glint, one person's pieces sat 0.85-1.14 x
# the threshold apart, different people's from 0.89 x, nearly all of them
# clearly apart (docs/clustering.md).  1.2 mends five_celebs' last split but,
# among background strangers, joins their chance pairs into snowballs.
JOIN_WITHIN = 1.1

# A face's match is clear when it is closer than this share of the distance to
# the nearest face it is not matched with (the ratio test of Lowe, "Distinctive
# image features from scale-invariant keypoints", IJCV 2004).  In a sparse
# crowded collection (thousands of people, most seen once or twice: LFW's
# pairs.txt photos) HDBSCAN takes in strangers at 0.47-0.57 from a person
# (their nearest member a median 0.51 away, a true member's 0.37) and leaves
# most people of two photos unpaired; read with this test, LFW pairs.txt goes
# from pairwise F1 0.792 to 0.878 (docs/clustering.md).  Faces closer than
# CLOSE to a member always stay: that close is nearly always one person.
CLEAR_MATCH = 0.95

# Rounds of joining at most (each round joins mutual closest pairs once).
_JOIN_ROUNDS = 10

# Faces per cluster used for the average distance between two clusters.
_JOIN_SAMPLE = 32

# Faces per cluster in the average-linkage tree that looks for two people in it.
_SPLIT_SAMPLE = 200


@dataclass(frozen=True)
class Crowding:
    """How crowded a collection is: the share of its face pairs under :data:`CLOSE`."""

    close_pairs: float
    sampled_faces: int

    @property
    def crowded(self) -> bool:
        # Too few faces cannot tell: at the boundary share they would hold
        # fewer than 10 close pairs (under 64 faces; a handful of strangers).
        pairs = self.sampled_faces * (self.sampled_faces - 1) / 2
        return self.close_pairs < CROWDED_BELOW and pairs * CROWDED_BELOW >= 10


def read_crowding(encodings: np.ndarray, *, seed: int = 0) -> Crowding:
    """The share of pairs of faces closer than :data:`CLOSE`, over a seeded
    sample of up to 4,000 faces (all of them in a smaller collection)."""
    X = np.asarray(encodings)
    n = X.shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, _SAMPLE, replace=False)) if n > _SAMPLE else np.arange(n)
    S = np.asarray(X[rows], dtype=np.float64)
    m = len(S)
    if m < 2:
        return Crowding(1.0, m)
    norms = (S * S).sum(1)
    close = 0
    for start in range(0, m, 1000):  # blocks of rows: 32 MB at a time
        block = norms[start:start + 1000, None] + norms[None, :] - 2.0 * S[start:start + 1000] @ S.T
        close += np.count_nonzero(block < CLOSE * CLOSE)
    close = (close - m) // 2  # each pair was counted from both ends, each face with itself once
    return Crowding(float(close / (m * (m - 1) // 2)), m)


def threshold_for(nearest_distances: np.ndarray) -> float:
    """Chinese whispers' threshold for an uncrowded collection, from each
    face's distance to its nearest other face (the median over the faces
    that have a match, :data:`_MATCHED_BELOW`)."""
    finite = nearest_distances[np.isfinite(nearest_distances)]
    matched = finite[finite < _MATCHED_BELOW]
    if len(matched) >= max(10, 0.1 * len(finite)):
        finite = matched
    median = float(np.median(finite)) if len(finite) else _THRESHOLD_RANGE[1]
    return float(np.clip(_THRESHOLD_BASE + _THRESHOLD_SLOPE * median, *_THRESHOLD_RANGE))


def join_split_people(encodings: np.ndarray, labels: np.ndarray, within: float, *, seed: int = 0,
                      constraints: Constraints | None = None, same_below: float = 0.0) -> np.ndarray:
    """Labels with pairs of clusters joined when each is the other's closest
    (average distance between their faces, over up to 32 of each, among the 5
    clusters with the nearest centres), that average is at most ``within``,
    and the two are not :func:`~facecluster.cluster.density.clearly_apart`
    nor, given ``constraints``, seen together in one picture (two faces
    closer than ``same_below`` excepted: :mod:`.constraints`).

    ``labels`` are raw cluster ids (negative: no cluster); clusters of one face
    are left alone.  Joins repeat, on the joined clusters, until none is made
    (a person split three ways is joined in two rounds).
    """
    joined = np.asarray(labels).copy()
    for _ in range(_JOIN_ROUNDS):
        apart = set() if constraints is None else apart_clusters(encodings, joined, constraints, same_below)
        pairs = [(a, b) for a, b in _closest_pairs(encodings, joined, within, seed=seed)
                 if (min(a, b), max(a, b)) not in apart]
        if not pairs:
            break
        ids, inverse = np.unique(joined, return_inverse=True)
        renamed = ids.copy()
        for keep, gone in pairs:  # disjoint: each cluster has one closest
            renamed[np.searchsorted(ids, gone)] = keep
        joined = renamed[inverse.reshape(-1)]
    return joined


def _closest_pairs(encodings: np.ndarray, labels: np.ndarray, within: float, *, seed: int) -> list[tuple[int, int]]:
    """(kept id, joined id) for each pair of clusters that are each other's
    closest, within ``within`` on average and not clearly two people."""
    from sklearn.neighbors import NearestNeighbors

    from .density import clearly_apart, mean_distance

    ids, sizes = np.unique(labels, return_counts=True)
    ends = np.cumsum(sizes)
    order = np.argsort(labels, kind="stable")  # each cluster's faces together, in ids' order
    kept = [i for i, (c, size) in enumerate(zip(ids.tolist(), sizes.tolist())) if c >= 0 and size >= 2]
    if len(kept) < 2:
        return []
    rng = np.random.default_rng(seed)
    faces = []
    for i in kept:
        members = order[ends[i] - sizes[i]:ends[i]]
        sample = members if sizes[i] <= _JOIN_SAMPLE else rng.choice(members, _JOIN_SAMPLE, replace=False)
        faces.append(np.asarray(encodings[sample], dtype=np.float64))
    centres = np.array([f.mean(0) for f in faces])
    near = NearestNeighbors(n_neighbors=min(5, len(kept) - 1)).fit(centres).kneighbors(return_distance=False)
    closest, apart = np.full(len(kept), -1), np.full(len(kept), np.inf)
    for i, candidates in enumerate(near):
        for j in candidates.tolist():
            distance = mean_distance(faces[i], faces[j])
            if distance < apart[i]:
                closest[i], apart[i] = j, distance
    return [(int(ids[kept[i]]), int(ids[kept[j]])) for i, j in enumerate(closest.tolist())
            if i < j and closest[j] == i and apart[i] <= within and not clearly_apart(faces[i], faces[j])]


def drop_unclear_members(graph: NeighbourGraph, labels: np.ndarray) -> np.ndarray:
    """Labels with each face taken out of its cluster (``-1``) when, among its
    graph neighbours, its nearest fellow member is farther than :data:`CLOSE`
    and not clearly closer (:data:`CLEAR_MATCH`) than its nearest face outside
    the cluster; clusters left with one face are dissolved.  Repeats (at most
    3 rounds) while faces are taken out."""
    out = np.asarray(labels).copy()
    for _ in range(3):
        inside, outside = _nearest_inside_outside(graph, out)
        unclear = (out >= 0) & (inside > CLOSE) & (inside > CLEAR_MATCH * outside)
        if not unclear.any():
            break
        out[unclear] = -1
        out = _dissolve_singletons(out)
    return out


def pair_clear_matches(graph: NeighbourGraph, labels: np.ndarray, cap: float) -> np.ndarray:
    """Labels with each two unclustered faces (``-1``) made a cluster of two
    when each is the other's nearest neighbour, within ``cap`` of each other,
    and clearly closer (:data:`CLEAR_MATCH`) than either's second neighbour."""
    out = np.asarray(labels).copy()
    if graph.indices.shape[1] < 2:
        return out
    nearest, faces = graph.indices[:, 0], np.arange(graph.n)
    distance, second = graph.distances[:, 0], graph.distances[:, 1]
    valid = nearest >= 0
    partner = np.where(valid, nearest, faces)
    clear = valid & (distance <= cap) & (distance <= CLEAR_MATCH * second) & (out < 0)
    mutual = clear & clear[partner] & (graph.indices[partner, 0] == faces) & (faces < partner)
    first = np.flatnonzero(mutual)
    ids = out.max(initial=-1) + 1 + np.arange(len(first))
    out[first], out[partner[first]] = ids, ids
    return out


def _nearest_inside_outside(graph: NeighbourGraph, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per face: the distance to its nearest graph neighbour in its own
    cluster and to its nearest one outside it (``inf`` where none is)."""
    valid = graph.indices >= 0
    theirs = labels[np.where(valid, graph.indices, 0)]
    same = valid & (theirs == labels[:, None]) & (labels[:, None] >= 0)
    inside = np.where(same, graph.distances, np.inf).min(1)
    outside = np.where(valid & ~same, graph.distances, np.inf).min(1)
    return inside, outside


def _dissolve_singletons(labels: np.ndarray) -> np.ndarray:
    """Labels with clusters of one face turned to ``-1``."""
    out = labels.copy()
    ids, counts = np.unique(out[out >= 0], return_counts=True)
    out[np.isin(out, ids[counts == 1])] = -1
    return out


def split_two_people(encodings: np.ndarray, labels: np.ndarray, beyond: float, *, seed: int = 0) -> np.ndarray:
    """Labels with each cluster cut in two where it holds two people: the
    top split of an average-linkage tree of (up to 200 of) its faces that
    leaves :data:`~.density.SEPARATE_MIN_FACES` on each side, when the two
    sides are on average farther apart than ``beyond`` and
    :func:`~.density.clearly_apart`.  Every member goes to the side it is
    closer to on average.  Repeats (at most 3 rounds) on the pieces."""
    from .density import SEPARATE_MIN_FACES, clearly_apart, mean_distance

    out = np.asarray(labels).copy()
    rng = np.random.default_rng(seed)
    for _ in range(3):
        cut = False
        for members in _clusters_of_at_least(out, 2 * SEPARATE_MIN_FACES):
            halves = _two_sides(encodings, members, rng)
            if halves is None:
                continue
            a, b = halves
            if mean_distance(a, b) <= beyond or not clearly_apart(a, b):
                continue
            faces = np.asarray(encodings[members], dtype=np.float64)
            to_b = _mean_distances(faces, b) < _mean_distances(faces, a)
            out[members[to_b]] = out.max() + 1
            cut = True
        if not cut:
            break
    return out


def _clusters_of_at_least(labels: np.ndarray, size: int) -> list[np.ndarray]:
    """The faces (indices) of each cluster (label >= 0) of ``size`` or more
    faces, in label order (one sort: chinese whispers' raw labels hold an id
    for every face)."""
    order = np.argsort(labels, kind="stable")
    ids, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    return [order[start:start + count] for c, start, count in zip(ids.tolist(), starts.tolist(), counts.tolist())
            if c >= 0 and count >= size]


def _two_sides(encodings: np.ndarray, members: np.ndarray, rng: np.random.Generator) -> tuple | None:
    """The encodings of the two sides of the highest split, in an average-
    linkage tree of up to :data:`_SPLIT_SAMPLE` of ``members``, that keeps
    :data:`~.density.SEPARATE_MIN_FACES` faces on each side (descending into
    the larger side past splits that cut off fewer); ``None`` if there is none."""
    from scipy.cluster.hierarchy import linkage, to_tree
    from scipy.spatial.distance import pdist

    from .density import SEPARATE_MIN_FACES

    sample = members if len(members) <= _SPLIT_SAMPLE else rng.choice(members, _SPLIT_SAMPLE, replace=False)
    faces = np.asarray(encodings[sample], dtype=np.float64)
    node = to_tree(linkage(pdist(faces), method="average"))
    while not node.is_leaf():
        left, right = node.get_left(), node.get_right()
        if min(left.get_count(), right.get_count()) >= SEPARATE_MIN_FACES:
            return faces[left.pre_order()], faces[right.pre_order()]
        node = left if left.get_count() > right.get_count() else right
    return None


def _mean_distances(faces: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Each face's mean Euclidean distance to the faces of ``group``."""
    squared = (faces * faces).sum(1)[:, None] + (group * group).sum(1)[None, :] - 2.0 * faces @ group.T
    return np.sqrt(np.maximum(squared, 0.0)).mean(1)


def describe(crowding: Crowding, threshold: float | None) -> str:
    """One line saying what the adaptive method chose and why."""
    share = f"{100 * crowding.close_pairs:.3g}% of face pairs closer than {CLOSE}"
    if crowding.crowded:
        return f"crowded collection ({share}, under {100 * CROWDED_BELOW:g}%): hdbscan"
    return f"uncrowded collection ({share}): chinese-whispers at {threshold:.3f} (from how alike each face's nearest match is)"

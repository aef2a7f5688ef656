"""HDBSCAN on the kNN graph, with a ceiling on how loosely a cluster may hold.

HDBSCAN (Campello, Moulavi & Sander, "Density-based clustering based on
hierarchical density estimates", PAKDD 2013; McInnes & Healy, "Accelerated
hierarchical density based clustering", ICDM workshops 2017) builds the whole
hierarchy of density-connected groups and keeps the most persistent ones
("excess of mass"), so it needs no distance threshold: dense people (hundreds
of photos) and sparse ones (a handful across decades) are cut at different
levels.  That is why it reaches pairwise F1 0.97 on all of LFW, where no fixed
threshold passes 0.95.

Its weakness on small collections is the opposite: when a few people are far
apart, the group "all of them" persists over a long range of distances and
excess of mass picks it, merging everyone (pairwise F1 0.09 on the 23-person
glint set).  :func:`capped_hdbscan` therefore lets excess of mass choose only
among groups whose faces are all linked (in mutual-reachability distance) at
``cap`` or closer; looser groups are replaced by their best sub-groups.  The
cap is far above the distance of two photos of one person (median 0.44) and is
not a threshold that needs tuning: results hardly move between 0.5 and 0.6
(docs/clustering.md).

The cap alone still lets a cluster hold two people whose closest photos are
linked under it (on LFW bench-3474: John Ashcroft with Hans Blix, 870 wrong
pairs).  Those two groups are far apart *on average*: where a cluster splits,
the mean distance between photos of its two halves is 0.41-0.49 (median) when
they are one person and 0.62-0.80 when they are two (measured at every split
of every labelled set, docs/clustering.md).  So a cluster is also refused when,
at any split inside it, the halves' mean distance (average linkage, Sokal &
Michener 1958, estimated on up to 32 photos of each) exceeds ``link_cap``.

Look-alike people can be closer than that on average (Serena and Venus
Williams: 0.52), yet each is much tighter than the two together (0.40-0.41
within each).  So a split is also refused (:func:`clearly_apart`) when both
halves hold at least :data:`SEPARATE_MIN_FACES` photos and their mean distance
is both beyond the usual distance within one person (:data:`SEPARATE_BEYOND`;
LFW: median 0.42, 90th percentile 0.46) and :data:`SEPARATE_RATIO` times the
wider half's own mean distance: the ratio of spread between groups to spread
within them that Calinski & Harabasz (1974) and Davies & Bouldin (1979) score
partitions by.
Small halves are left out of this test, since a few near-duplicate photos of one
person are tight enough to pass it.

scikit-learn computes the mutual-reachability graph, its minimum spanning tree
and the condensed tree from the sparse kNN graph; the selection is here.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .graph import NeighbourGraph

# Distance given to the links that join the graph's separate pieces into one
# tree (scikit-learn's HDBSCAN needs a connected graph); far above any cap,
# so they never end up inside a cluster.
_FAR = 1e3


# Photos per side used to estimate the mean distance between a split's halves.
_LINK_SAMPLE = 32

# Two halves of at least this many photos each are two people when their mean
# distance is beyond SEPARATE_BEYOND and SEPARATE_RATIO x the wider half's own.
# LFW bench-3474 and all of LFW give the same F1 for every ratio in 1.15-1.25,
# minimum in 6-12 and distance in 0.46-0.50 (docs/clustering.md).  The same
# test keeps the adaptive method from joining two people (adaptive.py), where
# two glint actresses 1.17 x apart need the ratio at 1.15.
SEPARATE_MIN_FACES = 8
SEPARATE_BEYOND = 0.496
SEPARATE_RATIO = 1.15


def capped_hdbscan(graph: NeighbourGraph, cap: float, min_cluster_size: int, encodings: np.ndarray | None = None,
                   link_cap: float | None = None) -> np.ndarray:
    """HDBSCAN labels of the graph's faces (``-1``: noise), choosing only
    clusters held together at distance ``cap`` or closer, and (given the
    encodings) whose halves at every split are on average ``link_cap`` apart
    or closer.

    Parameters
    ----------
    graph : the faces' kNN graph (at least ``min_cluster_size`` neighbours each)
    cap : float
        Largest mutual-reachability distance inside a chosen cluster.
    min_cluster_size : int
        HDBSCAN's ``min_cluster_size``, also its ``min_samples``.
    encodings : (n, d) array or None
        The faces' encodings, for the average-linkage check; ``None`` skips it.
    link_cap : float or None
        Largest mean distance between the two halves of any split inside a
        chosen cluster (default: ``cap``).

    Returns
    -------
    int64 array of shape (n,): raw cluster ids, ``-1`` for noise.
    """
    import warnings

    from sklearn.cluster import HDBSCAN
    from sklearn.cluster._hdbscan._tree import _condense_tree

    with warnings.catch_warnings():  # sklearn 1.9 warns about its future default of `copy`
        warnings.simplefilter("ignore", FutureWarning)
        # min_samples counts neighbours, of which tiny collections have fewer.
        min_samples = min(min_cluster_size, graph.indices.shape[1])
        model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, metric="precomputed", copy=False)
        model.fit(_connected(graph.sparse()))
    tree = _condense_tree(model._single_linkage_tree_, min_cluster_size)
    link = None if encodings is None else (encodings, cap if link_cap is None else link_cap)
    return _select(tree, graph.n, cap, link)


def _connected(graph: sp.csr_matrix) -> sp.csr_matrix:
    """The graph with one far link from each connected piece to the next."""
    from scipy.sparse.csgraph import connected_components

    pieces, piece = connected_components(graph, directed=False)
    if pieces == 1:
        return graph
    first = np.unique(piece, return_index=True)[1]
    links = sp.csr_matrix((np.full(pieces - 1, _FAR), (first[:-1], first[1:])), shape=graph.shape)
    return (graph + links + links.T).tocsr()


def _select(tree: np.ndarray, n: int, cap: float, link: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """Excess-of-mass selection over a condensed tree (scikit-learn's
    ``CONDENSED_dtype``: parent, child, value = lambda = 1 / distance,
    cluster_size), allowed only for clusters that split at ``cap`` or closer
    and, with ``link = (encodings, link_cap)``, whose every split passes
    :func:`_halves_close`; returns each point's selected cluster (``-1``: none)."""
    parent, child = tree["parent"].astype(np.int64), tree["child"].astype(np.int64)
    lam, size = tree["value"].astype(np.float64), tree["cluster_size"].astype(np.float64)
    labels = np.full(n, -1, dtype=np.int64)
    if len(tree) == 0:
        return labels
    nodes = int(max(parent.max(), child.max())) + 1
    is_cluster = child >= n
    birth = np.zeros(nodes)
    birth[child[is_cluster]] = lam[is_cluster]
    stability = np.bincount(parent, weights=(lam - birth[parent]) * size, minlength=nodes)
    # A cluster "dies" where it splits into sub-clusters; a leaf never does.
    split = np.zeros(nodes)
    split[parent[is_cluster]] = lam[is_cluster]
    allowed = split * cap >= 1.0  # it splits at distance 1 / lambda <= cap
    # A leaf never splits; it is allowed when its last faces hold together
    # within the cap (two far-apart strangers are not a person); but a root
    # that never splits only when every face in it is held within the cap (a
    # few far-apart faces are noise, as in HDBSCAN, not one person).
    last = np.zeros(nodes)
    np.maximum.at(last, parent[~is_cluster], lam[~is_cluster])
    allowed[split == 0] = last[split == 0] * cap >= 1.0
    if split[n] == 0:
        allowed[n] = lam[parent == n].min() * cap >= 1.0
    up = np.full(nodes, -1, dtype=np.int64)
    up[child[is_cluster]] = parent[is_cluster]
    if link is not None:
        allowed &= _halves_close(parent, child, n, nodes, allowed, *link)
    chosen = _excess_of_mass(stability, allowed, up, first=n)
    owner = np.full(nodes, -1, dtype=np.int64)
    for c in range(n, nodes):  # parents come before their children
        p = up[c]
        owner[c] = owner[p] if p >= 0 and owner[p] >= 0 else (c if chosen[c] else -1)
    points = ~is_cluster
    labels[child[points]] = owner[parent[points]]
    return labels


def _halves_close(parent: np.ndarray, child: np.ndarray, n: int, nodes: int, allowed: np.ndarray,
                  encodings: np.ndarray, link_cap: float) -> np.ndarray:
    """Per tree node: whether at its own split and at every split below it the
    halves are one person (:func:`_one_person`).

    Children come after their parents in the condensed tree, so one pass from
    the last node up sees every subtree first.  Each node keeps a sample of
    up to :data:`_LINK_SAMPLE` of its photos (seeded), drawn from its own
    points and its children's samples, so the check costs at most 32 x 32
    distances per pair of halves whatever the cluster's size.
    """
    rng = np.random.default_rng(0)
    order = np.argsort(parent, kind="stable")
    starts = np.searchsorted(parent[order], np.arange(nodes + 1))
    ok = np.ones(nodes, dtype=bool)
    sample: dict[int, np.ndarray] = {}
    for c in range(nodes - 1, n - 1, -1):
        below = child[order[starts[c]:starts[c + 1]]]
        children = below[below >= n].tolist()
        halves = [sample.pop(h) for h in children]
        ok[c] = all(ok[h] for h in children)
        if ok[c] and allowed[c] and len(halves) >= 2:
            faces = [encodings[half] for half in halves]
            ok[c] = all(_one_person(a, b, link_cap) for i, a in enumerate(faces) for b in faces[i + 1:])
        members = np.concatenate([below[below < n], *halves])
        sample[c] = members if len(members) <= _LINK_SAMPLE else rng.choice(members, _LINK_SAMPLE, replace=False)
    return ok


def _one_person(a: np.ndarray, b: np.ndarray, link_cap: float) -> bool:
    """Whether two halves of a split (their photos' encodings) may be one person:
    on average within ``link_cap``, and not two tight groups clearly apart."""
    between = mean_distance(a, b)
    return between <= link_cap and not _apart(a, b, between)


def clearly_apart(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two groups of faces (their encodings) are two people by their
    spread alone: each of at least :data:`SEPARATE_MIN_FACES`, and on average
    farther apart than :data:`SEPARATE_BEYOND` and than :data:`SEPARATE_RATIO`
    times the wider group's own mean distance."""
    return _apart(a, b, mean_distance(a, b))


def _apart(a: np.ndarray, b: np.ndarray, between: float) -> bool:
    if between <= SEPARATE_BEYOND or min(len(a), len(b)) < SEPARATE_MIN_FACES:
        return False
    return between > SEPARATE_RATIO * max(_spread(a), _spread(b))


def _spread(faces: np.ndarray) -> float:
    """Mean distance between two different photos of ``faces``."""
    return mean_distance(faces, faces) * len(faces) / (len(faces) - 1)


def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance between the rows of ``a`` and of ``b``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return float(np.sqrt(np.maximum(squared, 0.0)).mean())


def _excess_of_mass(stability: np.ndarray, allowed: np.ndarray, up: np.ndarray, first: int) -> np.ndarray:
    """Bottom-up: a cluster is chosen when allowed and at least as stable as
    its best descendants together (Campello et al. 2013, Eq. 4)."""
    nodes = len(stability)
    below = np.zeros(nodes)  # best total stability of the descendants
    has_children = np.zeros(nodes, dtype=bool)
    has_children[up[up >= 0]] = True
    chosen = np.zeros(nodes, dtype=bool)
    for c in range(nodes - 1, first - 1, -1):  # children before their parents
        if allowed[c] and (not has_children[c] or stability[c] >= below[c]):
            chosen[c] = True
            best = stability[c]
        else:
            best = below[c]
        if up[c] >= 0:
            below[up[c]] += best
    return chosen

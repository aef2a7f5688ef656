"""Grouping face encodings into people.

One entry point, :func:`cluster_encodings`, takes the ``(n, 128)`` encodings
and returns one integer label per face: ``0 .. k-1`` for the people found,
largest group first, and ``-1`` for faces that match nobody else (the
tutorial's "Unknown Faces").  Every method runs on the same bounded
k-nearest-neighbour graph (:mod:`facecluster.cluster.graph`: exact up to
20,000 faces, a faiss inverted-file index above), so memory is linear in the faces and time
about n log n:

``adaptive`` (:data:`RECOMMENDED_METHOD`)
    Reads the collection first (:mod:`facecluster.cluster.adaptive`): in a
    crowded one (thousands of people, many look-alikes) ``hdbscan`` with
    clusters from 2 faces, keeping only clear matches (a ratio test);
    otherwise ``chinese-whispers`` at a threshold of 0.5-0.6 set by how alike
    each face's nearest match is.  No threshold to
    tune; chosen by leave-one-set-out measurement over the labelled sets
    (docs/clustering.md).

``hdbscan``
    HDBSCAN on the graph (Campello, Moulavi & Sander, PAKDD 2013; McInnes &
    Healy 2017): the hierarchy of density-connected groups, keeping the most
    persistent ones, so dense and sparse people are cut at different levels
    with no distance threshold to tune.  One ceiling, ``threshold`` (0.55):
    no chosen cluster may hold together only at distances above it, which stops
    HDBSCAN merging whole small collections of far-apart people into one
    (:mod:`facecluster.cluster.density`), and no cluster whose halves at any
    split are on average farther apart than it either.

``dbscan``
    The tutorial's own choice, ``DBSCAN(eps, min_samples)`` (Ester et al.,
    KDD 1996) on the graph's edges up to ``eps`` (scikit-learn's DBSCAN on a
    sparse precomputed radius graph: the same algorithm).  *Chaining*: any run
    of faces each within ``eps`` of the next becomes one cluster, so on a large,
    varied collection look-alike bridges merge many people into one
    (:func:`facecluster.cluster.looks_collapsed`).

``chinese-whispers``
    Label propagation on the links closer than ``threshold``, weighted by
    similarity (Biemann, TextGraphs 2006; dlib's face clustering example), with
    a seeded visiting order.

``agglomerative``
    Average linkage cut at ``threshold`` (UPGMA; Sokal & Michener 1958).  Two
    clusters whose average distance is under the threshold have at least one
    pair of faces under it, so clusters never span two groups of faces that
    the graph's links up to ``threshold`` leave unconnected: each group is
    clustered exactly, on its own all-pairs distances (quadratic memory in the
    largest group only; refused when that would not fit).

Clusters smaller than ``min_cluster_size`` (at least 2, so singletons always)
are reported as outliers (``-1``) by every method, so that "unknown faces"
means the same thing whichever method ran.

Given who appears together (``constraints``, from the records), every method
but dbscan keeps each video track in one cluster and never two faces of one
picture in one cluster, unless near-identical (a reflection): a cluster that
holds two is split along them (:mod:`facecluster.cluster.constraints`), and
the adaptive method does not join two clusters seen in one picture.  dbscan's
labels stay the tutorial's; cluster_faces.py reports and warns instead.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import adaptive
from .adaptive import (describe, drop_unclear_members, join_split_people, pair_clear_matches, read_crowding,
                       split_two_people, threshold_for)
from .constraints import SAME_SHARE, Constraints, respect
from .density import capped_hdbscan
from .graph import NeighbourGraph, knn_graph
from .memory import check_memory, estimate_memory_bytes

METHODS = ("dbscan", "chinese-whispers", "agglomerative", "hdbscan", "adaptive")

# What the docs and the collapse warning recommend.
RECOMMENDED_METHOD = "adaptive"

DEFAULTS: dict[str, dict[str, float]] = {
    # The tutorial's values, kept so the default run matches it.
    "dbscan": {"eps": 0.5, "min_samples": 5, "n_neighbors": 32},
    # Best fixed threshold on LFW bench-3474; min_cluster_size 3 splits 27 of
    # 31 clean 5-person sets into exactly 5 (2: 17).
    "chinese-whispers": {"threshold": 0.5, "min_cluster_size": 3, "n_neighbors": 32},
    "agglomerative": {"threshold": 0.55, "min_cluster_size": 3, "n_neighbors": 32},
    # threshold = the cap (see density.py); chosen leave-one-set-out (docs/clustering.md).
    "hdbscan": {"threshold": 0.55, "min_cluster_size": 3, "n_neighbors": 10},
    # No threshold: read from the collection (adaptive.py).  n_neighbors is
    # chinese whispers'; in a crowded collection hdbscan reads the nearest
    # 10 of them.  A person is anyone seen twice.
    "adaptive": {"min_cluster_size": 2, "n_neighbors": 32},
}

# hdbscan's settings inside the adaptive method (crowded collections): on all
# of LFW pairwise F1 0.975 with clusters from 2 faces, 0.970 from 3.
_ADAPTIVE_HDBSCAN = {"threshold": 0.569, "min_cluster_size": 2, "n_neighbors": 10}
_ADAPTIVE_LARGE, _ADAPTIVE_LARGE_K = 100_000, 10

# Chinese whispers stops as soon as a full pass changes no label; this caps
# the passes in the rare graphs where labels keep flipping.
_CW_MAX_PASSES = 100

# Weight of a link at exactly the threshold, for chinese whispers:
# from ~1 for twins down to this, so that a few marginal look-alike links
# cannot outvote a person's close matches.
_EDGE_FLOOR = 0.05


def cluster_encodings(
    encodings: np.ndarray,
    method: str = "dbscan",
    *,
    eps: float = DEFAULTS["dbscan"]["eps"],
    min_samples: int = DEFAULTS["dbscan"]["min_samples"],
    threshold: float | None = None,
    n_neighbors: int | None = None,
    seed: int = 0,
    jobs: int = -1,
    min_cluster_size: int | None = None,
    exact: bool | None = None,
    graph: NeighbourGraph | None = None,
    explain=None,
    constraints: Constraints | None = None,
) -> np.ndarray:
    """Cluster face encodings; return one integer label per face.

    Parameters
    ----------
    encodings : array of shape (n, 128)
        Face encodings (float32 or float64; rows in record order).
    method : one of :data:`METHODS`
    eps, min_samples : DBSCAN's neighbourhood radius and core-point count
        (dbscan only).
    threshold : float or None
        Largest Euclidean distance that still links two faces (chinese-whispers),
        two clusters' average distance (agglomerative) or the faces inside a
        cluster (hdbscan's ceiling); ``None``
        takes the method's default from :data:`DEFAULTS`.  Not used by dbscan
        or adaptive.
    n_neighbors : int or None
        Neighbours per face in the graph (``None``: the method's default).
    seed : int
        Seeds chinese-whispers' visiting order; the same seed gives the same
        labels.  The other methods are deterministic.
    jobs : int
        Threads for the neighbour search (-1 = all cores).
    min_cluster_size : int or None
        Clusters with fewer faces are reported as outliers; ``None`` takes the
        method's default (3 for all but dbscan, whose leftovers are mostly
        2-face splinters of a person or pairs of bystanders; 2 for dbscan,
        whose ``min_samples`` already sets a floor).
    exact : bool or None
        Exact neighbours (``True``), the inverted-file index (``False``) or by size (``None``).
    graph : NeighbourGraph or None
        A graph of these encodings already built (:func:`~facecluster.cluster.graph.knn_graph`)
        with at least ``n_neighbors`` columns, e.g. to try several methods on
        one graph; its first ``n_neighbors`` columns are used.
    explain : callable or None
        ``adaptive`` calls it with one line saying what it chose and why.
    constraints : Constraints or None
        Who appears together (:class:`~facecluster.cluster.constraints.Constraints`,
        from the records): every method but dbscan then keeps each video
        track in one cluster and no two faces of one picture in one cluster
        (unless near-identical: a reflection), splitting a cluster along them
        (:func:`~facecluster.cluster.constraints.respect`).  dbscan's labels stay
        the tutorial's.

    Returns
    -------
    labels : int64 array of shape (n,)
        ``0 .. k-1`` numbered by cluster size, largest first (ties: the cluster
        whose first face comes first); ``-1`` for outliers.

    Raises
    ------
    ValueError
        For a bad parameter, or when agglomerative would need more memory than
        :func:`facecluster.cluster.memory.memory_limit_bytes` allows.
    """
    X = _check_encodings(encodings)
    _check_params(method, eps, min_samples, threshold, seed, jobs)
    defaults = DEFAULTS[method]
    min_cluster_size = _check_count("min_cluster_size", min_cluster_size, defaults.get("min_cluster_size", 2), 2)
    n_neighbors = _check_count("n_neighbors", n_neighbors, defaults["n_neighbors"], 1)
    if method not in ("dbscan", "adaptive") and threshold is None:
        threshold = defaults["threshold"]
    n = X.shape[0]
    if n < 2:  # nothing can be grouped
        return np.full(n, -1, dtype=np.int64)
    if constraints is not None and constraints.n != n:
        raise ValueError(f"{n} encodings but {constraints.n} faces in the constraints")
    if method == "adaptive":
        return _adaptive(X, n_neighbors, min_cluster_size, graph, exact=exact, jobs=jobs, seed=seed, explain=explain,
                         constraints=constraints)
    if method == "dbscan":
        # Core points need min_samples - 1 neighbours besides themselves.
        n_neighbors = max(n_neighbors, min_samples)
    graph = _graph(X, n_neighbors, graph, exact=exact, jobs=jobs)
    if method == "dbscan":
        raw = _dbscan(graph, eps, min_samples)
    elif method == "chinese-whispers":
        raw = _chinese_whispers(graph, threshold, seed=seed)
    elif method == "agglomerative":
        raw = _agglomerative(X, graph, threshold)
    else:
        raw = capped_hdbscan(graph, threshold, min_cluster_size, X)
    if constraints is not None and method != "dbscan":
        raw = respect(X, raw, constraints, SAME_SHARE * threshold, graph.indices)
    return _canonical_labels(raw, min_cluster_size)


def _adaptive(X: np.ndarray, n_neighbors: int, min_cluster_size: int, given: NeighbourGraph | None, *,
              exact: bool | None, jobs: int, seed: int, explain, constraints: Constraints | None) -> np.ndarray:
    """hdbscan in a crowded collection, else chinese whispers at a threshold
    read from the nearest-neighbour distances (:mod:`.adaptive`); then, given
    ``constraints``, no join of two clusters seen in one picture and every
    cluster split along its cannot-links (:mod:`.constraints`)."""
    crowding = read_crowding(X, seed=seed)
    if crowding.crowded:
        settings = _ADAPTIVE_HDBSCAN
        graph = _graph(X, settings["n_neighbors"], given, exact=exact, jobs=jobs)
        raw = capped_hdbscan(graph, settings["threshold"], settings["min_cluster_size"], X)
        raw = pair_clear_matches(graph, drop_unclear_members(graph, raw), settings["threshold"])
        threshold = None
        same_below = SAME_SHARE * settings["threshold"]
    else:
        # Chinese whispers keeps its graph as Python lists (~70 bytes an edge):
        # a million faces at k = 32 peak at 7.4 GB.  Above 100k faces it reads
        # the nearest 10 (at 100k faces of 100 people, identical labels to k = 32).
        k = n_neighbors if len(X) <= _ADAPTIVE_LARGE else min(n_neighbors, _ADAPTIVE_LARGE_K)
        graph = _graph(X, k, given, exact=exact, jobs=jobs)
        threshold = threshold_for(graph.distances[:, 0])
        same_below = SAME_SHARE * threshold
        raw = split_two_people(X, _chinese_whispers(graph, threshold, seed=seed), threshold, seed=seed)
        raw = join_split_people(X, raw, adaptive.JOIN_WITHIN * threshold, constraints=constraints,
                                same_below=same_below)
    if constraints is not None:
        raw = respect(X, raw, constraints, same_below, graph.indices)
    if explain is not None:
        explain(describe(crowding, threshold))
    return _canonical_labels(raw, min_cluster_size)


def _graph(X: np.ndarray, k: int, given: NeighbourGraph | None, *, exact: bool | None, jobs: int) -> NeighbourGraph:
    """``given`` cut to ``k`` neighbours, or a new graph."""
    if given is None:
        return knn_graph(X, k, exact=exact, jobs=jobs)
    k = min(k, X.shape[0] - 1)
    if given.n != X.shape[0] or given.indices.shape[1] < k:
        raise ValueError(f"the graph given has {given.n} faces x {given.indices.shape[1]} neighbours; "
                         f"need {X.shape[0]} x {k}")
    return NeighbourGraph(given.indices[:, :k], given.distances[:, :k])


def _dbscan(graph: NeighbourGraph, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN on the graph's links up to ``eps`` (a sparse precomputed
    radius graph: missing entries count as farther than ``eps``)."""
    from sklearn.cluster import DBSCAN

    radius = graph.sparse(eps)
    return DBSCAN(metric="precomputed", eps=eps, min_samples=min_samples).fit(radius).labels_


def _weights(distances: np.ndarray, threshold: float) -> np.ndarray:
    """Similarity of linked faces: ``1 + floor - d / threshold``."""
    return (1.0 + _EDGE_FLOOR) - distances / threshold


def _chinese_whispers(graph: NeighbourGraph, threshold: float, *, seed: int = 0, weighted: bool = True) -> np.ndarray:
    """Chinese whispers graph clustering (Biemann 2006) on the graph's links
    up to ``threshold``.

    Every node starts in its own class.  In each pass the nodes are visited in
    a random order (from ``seed``) and each takes the class with the largest
    total link weight among its neighbours, ties going to the smallest class id
    (as in dlib).  Passes repeat until one changes nothing (at most 100).

    ``weighted=True`` (what :func:`cluster_encodings` uses) weighs a link by
    similarity (:func:`_weights`); on LFW bench-3474 at threshold 0.5 this lifts
    pairwise F1 from 0.888 (dlib: 0.906) to 0.955.  ``weighted=False``
    reproduces dlib's ``chinese_whispers_clustering``: unit weights plus a link
    from each node to itself.

    Returns raw class ids (not renumbered, singletons kept).
    """
    sparse = graph.sparse(threshold)
    weights = _weights(sparse.data, threshold) if weighted else np.ones_like(sparse.data)
    self_vote = 0.0 if weighted else 1.0
    # Plain lists: the per-node work is a handful of dict updates, which Python
    # does several times faster on lists than on numpy scalars.
    indptr, indices, weights = sparse.indptr.tolist(), sparse.indices.tolist(), weights.tolist()
    del sparse
    n = graph.n
    labels = list(range(n))
    rng = np.random.default_rng(seed)
    for _ in range(_CW_MAX_PASSES):
        changed = False
        for i in rng.permutation(n).tolist():
            start, end = indptr[i], indptr[i + 1]
            if start == end:  # no neighbour: nothing to hear
                continue
            votes = {labels[i]: self_vote} if self_vote else {}
            for j, w in zip(indices[start:end], weights[start:end]):
                label = labels[j]
                votes[label] = votes.get(label, 0.0) + w
            best = min(votes, key=lambda label: (-votes[label], label))
            if best != labels[i]:
                labels[i] = best
                changed = True
        if not changed:
            break
    return np.asarray(labels, dtype=np.int64)


def _agglomerative(X: np.ndarray, graph: NeighbourGraph, threshold: float) -> np.ndarray:
    """Average linkage cut at ``threshold``, exactly, within each connected
    group of the graph's links up to ``threshold`` (see the module's notes).
    Refused when the largest group's all-pairs distances would not fit."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial.distance import pdist

    _, group = connected_components(graph.sparse(threshold), directed=False)
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
    ends = np.r_[starts[1:], len(order)]
    largest = int((ends - starts).max())
    check_memory(estimate_memory_bytes(len(X), "agglomerative", n_features=X.shape[1], group=largest),
                 f"agglomerative clustering of {len(X)} faces ({largest} linked within {threshold})",
                 f"use method '{RECOMMENDED_METHOD}' instead (memory linear in the faces)")
    raw = np.full(len(X), -1, dtype=np.int64)  # faces linked to none: outliers
    for start, end in zip(starts.tolist(), ends.tolist()):
        if end - start < 2:
            continue
        members = order[start:end]
        tree = linkage(pdist(np.asarray(X[members], dtype=np.float64)), method="average")
        # fcluster keeps merges at distance <= t; scikit-learn's (and the
        # previous implementation's) cut keeps those < t.
        cut = fcluster(tree, t=np.nextafter(threshold, 0), criterion="distance")
        raw[members] = start + cut  # start + 1 .. end: unique across groups
    return raw


def _canonical_labels(raw: np.ndarray, min_cluster_size: int = 2) -> np.ndarray:
    """Renumber clusters 0..k-1 by size (largest first, ties by first face)
    and turn clusters under ``min_cluster_size`` and negative labels into -1."""
    raw = np.asarray(raw, dtype=np.int64)
    out = np.full(raw.shape, -1, dtype=np.int64)
    keep = raw >= 0
    if not keep.any():
        return out
    ids, first, inverse, sizes = np.unique(raw[keep], return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -sizes))  # by size desc, then first appearance
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    new = np.where(sizes[inverse] >= min_cluster_size, rank[inverse], -1)
    out[keep] = new
    # Dropping small clusters leaves ranks after them unused: they sort last,
    # so the surviving ranks are already 0..k-1.
    return out


def _check_encodings(encodings) -> np.ndarray:
    """The encodings as a float32 or float64 array (float32 stays float32:
    at a million faces a float64 copy would cost another 0.5 GB)."""
    X = np.asarray(encodings)
    if X.ndim != 2:
        raise ValueError(f"encodings must be a 2-D array (n_faces, 128), got shape {X.shape}")
    if X.shape[0] and X.shape[1] == 0:
        raise ValueError("encodings have no features (shape (n, 0))")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"encodings must be real numbers, got dtype {X.dtype}")
    if X.dtype != np.float32:
        X = X.astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        raise ValueError("encodings contain NaN or infinite values")
    return X


def check_params(method: str, *, eps: float, min_samples: int, threshold: float | None = None, seed: int = 0,
                 jobs: int = -1, min_cluster_size: int | None = None) -> None:
    """Raise ValueError naming the first bad parameter of :func:`cluster_encodings`.

    Needs no data, so a script can refuse a bad option before it reads a
    possibly huge encodings file.
    """
    _check_params(method, eps, min_samples, threshold, seed, jobs)
    if min_cluster_size is not None:
        _check_count("min_cluster_size", min_cluster_size, None, 2)


def _check_params(method, eps, min_samples, threshold, seed, jobs) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not _is_positive_number(eps):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    _check_count("min_samples", min_samples, 1, 1)
    if threshold is not None:
        if method == "dbscan":
            raise ValueError("threshold applies to chinese-whispers, agglomerative and hdbscan; dbscan uses eps")
        if method == "adaptive":
            raise ValueError("adaptive reads its threshold from the collection; to set one, "
                             "use chinese-whispers or hdbscan")
        if not _is_positive_number(threshold):
            raise ValueError(f"threshold must be a positive number, got {threshold!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or jobs == 0:
        raise ValueError(f"jobs must be a non-zero integer (-1 = all cores), got {jobs!r}")


def _check_count(name: str, value, default, minimum: int) -> int:
    """``value`` (``None``: ``default``) as an int >= ``minimum``, or ValueError."""
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _is_positive_number(value) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )

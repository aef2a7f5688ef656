"""Grouping face encodings into people.

One entry point, :func:`cluster_encodings`, takes the ``(n, 128)`` encodings
and returns one integer label per face: ``0 .. k-1`` for the people found,
largest group first, and ``-1`` for faces that match nobody else (the
tutorial's "Unknown Faces").  Three methods share that call shape:

``dbscan``
    The tutorial's own choice: ``DBSCAN(metric="euclidean", eps, min_samples)``
    (Ester et al., "A density-based algorithm for discovering clusters in large
    spatial databases with noise", KDD 1996).  Fast and memory-light, but
    *chaining*: any run of faces each within ``eps`` of the next becomes one
    cluster, so on a large, varied collection a few look-alike bridges merge
    many people into one (see :func:`looks_collapsed`).

``chinese-whispers``
    Graph clustering as in dlib's ``chinese_whispers_clustering`` (the method
    dlib's face clustering example uses): faces closer than ``threshold`` are
    joined by an edge and labels spread along edges (Biemann, "Chinese
    Whispers - an efficient graph clustering algorithm and its application to
    natural language processing problems", TextGraphs workshop, HLT-NAACL
    2006).  Implemented here with a seeded RNG, because dlib's binding fixes
    its random generator internally and offers no seed, and with edges
    weighted by similarity, which is markedly more accurate than dlib's unit
    weights on real faces.  Memory grows linearly with the number of faces.

``agglomerative``
    Average-linkage hierarchical clustering cut at ``threshold`` (UPGMA;
    Sokal & Michener 1958), via scikit-learn.  As accurate as
    chinese-whispers and free of randomness, but it needs the full distance
    matrix: O(n^2) memory and time, so it is refused when it would not fit
    (:func:`estimate_memory_bytes`).

Clusters smaller than ``min_cluster_size`` (at least 2, so singletons always)
are reported as outliers (``-1``) by every method, so that "unknown faces"
means the same thing whichever method ran.

Defaults were chosen by ``benchmarks/quality.py`` on LFW bench-3474 (3,648
faces, 158 people with 10-30 photos + 500 one-photo people; see
``benchmarks/results/quality-lfw-bench.md``).  Pairwise F1 at the defaults,
scoring only the largest face of each photo: chinese-whispers 0.962,
agglomerative 0.957, and
the tutorial's dbscan 0.07 (it chains 36% of the faces into one cluster; its
best setting, eps=0.4 and min_samples=2, reaches 0.81).  On the 129-photo
demo set all three find the 5 people.  Recommended: chinese-whispers.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

METHODS = ("dbscan", "chinese-whispers", "agglomerative")

DEFAULTS: dict[str, dict[str, float]] = {
    # The tutorial's values, kept so the default run matches it.
    "dbscan": {"eps": 0.5, "min_samples": 5},
    # Best pairwise F1 of the 0.35-0.6 sweep; with min_cluster_size 3 it splits
    # 27 of 31 clean 5-person sets into exactly 5 (0.475 splits more people).
    # min_cluster_size 3: see cluster_encodings.
    "chinese-whispers": {"threshold": 0.5, "min_cluster_size": 3},
    # Best of the 0.4-0.7 sweep; 0.525 and 0.575 lose 0.01-0.04 F1.
    "agglomerative": {"threshold": 0.55, "min_cluster_size": 3},
}

# Chinese whispers stops as soon as a full pass changes no label; this caps
# the passes in the rare graphs where labels keep flipping.
_CW_MAX_PASSES = 100

# Weight of an edge at exactly the threshold (see _chinese_whispers).
_CW_EDGE_FLOOR = 0.05

# Neighbours per face assumed by the memory estimate for the graph-based
# methods; real collections have a few dozen, a collapsed run up to n.
_ASSUMED_NEIGHBOURS = 64


def cluster_encodings(
    encodings: np.ndarray,
    method: str = "dbscan",
    *,
    eps: float = DEFAULTS["dbscan"]["eps"],
    min_samples: int = DEFAULTS["dbscan"]["min_samples"],
    threshold: float | None = None,
    seed: int = 0,
    jobs: int = -1,
    min_cluster_size: int | None = None,
) -> np.ndarray:
    """Cluster face encodings; return one integer label per face.

    Parameters
    ----------
    encodings : array of shape (n, 128)
        Face encodings (any float dtype; rows in record order).
    method : one of :data:`METHODS`
    eps, min_samples : DBSCAN's neighbourhood radius and core-point count
        (dbscan only).
    threshold : float or None
        Largest Euclidean distance that still links two faces (chinese-whispers)
        or two clusters' average distance (agglomerative); ``None`` takes the
        method's default from :data:`DEFAULTS`.  Not used by dbscan.
    seed : int
        Seeds chinese-whispers' visiting order; the same seed always gives the
        same labels.  dbscan and agglomerative are deterministic anyway.
    jobs : int
        Parallel jobs for the neighbour searches (scikit-learn's ``n_jobs``;
        -1 = all cores).
    min_cluster_size : int or None
        Clusters with fewer faces are reported as outliers; ``None`` takes the
        method's default (3 for chinese-whispers and agglomerative, whose
        leftovers are mostly 2-face splinters of a person or pairs of
        bystanders: on 31 clean 5-person LFW sets, chinese-whispers found
        exactly 5 people in 17 sets with 2 and in 27 with 3, at no cost in
        F1 on the LFW bench; 2 for dbscan, whose ``min_samples`` already
        sets a floor).

    Returns
    -------
    labels : int64 array of shape (n,)
        ``0 .. k-1`` numbered by cluster size, largest first (ties: the cluster
        whose first face comes first); ``-1`` for outliers, including every
        face that ended alone in its cluster.

    Raises
    ------
    ValueError
        For a bad parameter, or when agglomerative would need more memory than
        :func:`memory_limit_bytes` allows.
    """
    X = _check_encodings(encodings)
    _check_params(method, eps, min_samples, threshold, seed, jobs)
    if min_cluster_size is None:
        min_cluster_size = int(DEFAULTS[method].get("min_cluster_size", 2))
    if isinstance(min_cluster_size, bool) or not isinstance(min_cluster_size, numbers.Integral) or min_cluster_size < 2:
        raise ValueError(f"min_cluster_size must be an integer >= 2, got {min_cluster_size!r}")
    n = X.shape[0]
    if method != "dbscan" and threshold is None:
        threshold = DEFAULTS[method]["threshold"]
    if method == "agglomerative":
        _check_memory(n, method, X.shape[1])
    if n < 2:  # nothing can be grouped; the estimators also reject n < 2
        return np.full(n, -1, dtype=np.int64)

    if method == "dbscan":
        from sklearn.cluster import DBSCAN

        raw = DBSCAN(metric="euclidean", eps=eps, min_samples=min_samples, n_jobs=jobs).fit(X).labels_
    elif method == "chinese-whispers":
        raw = _chinese_whispers(X, threshold, seed=seed, jobs=jobs)
    else:
        from sklearn.cluster import AgglomerativeClustering

        model = AgglomerativeClustering(
            n_clusters=None, linkage="average", distance_threshold=threshold, metric="euclidean"
        )
        raw = model.fit(X).labels_
    return _canonical_labels(raw, min_cluster_size)


def _chinese_whispers(
    encodings: np.ndarray, threshold: float, *, seed: int = 0, jobs: int = -1, weighted: bool = True
) -> np.ndarray:
    """Chinese whispers graph clustering (Biemann 2006) of encodings.

    Every face is a node; faces at Euclidean distance <= ``threshold`` share an
    edge.  Every node starts in its own class.  In each pass the nodes are
    visited in a random order (from ``seed``) and each takes the class with the
    largest total edge weight among its neighbours, ties going to the smallest
    class id (as in dlib).  Passes repeat until one changes nothing (at most
    100).

    ``weighted=True`` (what :func:`cluster_encodings` uses) weighs an edge by
    the faces' similarity, ``1.05 - distance / threshold``: from ~1 for twins
    down to 0.05 at the threshold, so that a few marginal look-alike links
    cannot outvote a person's close matches.  Biemann's algorithm is defined on
    weighted graphs.  On LFW bench-3474 at threshold 0.5 this lifts pairwise
    F1 from 0.888 (seeds: 0.840-0.926; dlib 0.906) to 0.955 (0.942-0.960)
    (benchmarks/quality.py).

    ``weighted=False`` reproduces dlib's ``chinese_whispers_clustering``: unit
    weights plus an edge from each node to itself.  (dlib visits random nodes
    with replacement for 100*n steps from a fixed internal seed; passes over a
    seeded permutation reach the same quality and stop earlier.)

    Returns raw class ids (not renumbered, singletons kept); use
    :func:`cluster_encodings` for the public labels.

    Cost: the radius-neighbour search is O(n^2 * 128) time in bounded chunks;
    memory and each pass's time are O(number of edges), i.e. linear in n for
    real collections.
    """
    from sklearn.neighbors import radius_neighbors_graph

    X = np.asarray(encodings, dtype=np.float64)
    n = X.shape[0]
    graph = radius_neighbors_graph(X, radius=threshold, mode="distance", include_self=False, n_jobs=jobs)
    if weighted:
        weights = (1.0 + _CW_EDGE_FLOOR) - graph.data / threshold
        self_vote = 0.0
    else:
        weights = np.ones_like(graph.data)
        self_vote = 1.0
    # Plain lists: the per-node work is a handful of dict updates, which Python
    # does several times faster on lists than on numpy scalars.
    indptr = graph.indptr.tolist()
    indices = graph.indices.tolist()
    weights = weights.tolist()
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


def looks_collapsed(
    labels: np.ndarray,
    encodings: np.ndarray | None = None,
    *,
    min_faces: int = 50,
    max_share: float = 0.5,
    max_spread: float = 0.65,
) -> bool:
    """Whether a clustering of at least ``min_faces`` faces looks collapsed,
    i.e. many people chained into one cluster (DBSCAN's typical failure), so
    that the caller should suggest another method or a smaller ``eps``.

    True when the largest cluster holds more than ``max_share`` of all faces,
    or, given the ``encodings``, when the median distance between its faces
    exceeds ``max_spread``: one person's faces have a median distance of about
    0.45 (at most 0.61 over LFW's 158 people with >= 10 photos) while
    different people are 0.8+ apart.  The spread test catches collapses that
    the share misses: the tutorial's DBSCAN on 3,648 LFW faces puts 36% of them
    in one cluster with median distance 0.76 (pairwise precision 0.04).
    """
    labels = np.asarray(labels)
    if encodings is not None and len(encodings) != labels.size:
        raise ValueError(f"{labels.size} labels but {len(encodings)} encodings")
    if labels.size < min_faces:
        return False
    clustered = labels[labels >= 0]
    if clustered.size == 0:
        return False
    sizes = np.bincount(clustered)
    if sizes.max() > max_share * labels.size:
        return True
    if encodings is None:
        return False
    from scipy.spatial.distance import pdist

    members = np.flatnonzero(labels == sizes.argmax())
    if members.size > 500:  # a fixed sample keeps this O(1) and deterministic
        members = np.random.default_rng(0).choice(members, 500, replace=False)
    X = np.asarray(encodings, dtype=np.float64)[members]
    return bool(np.median(pdist(X)) > max_spread)


def estimate_memory_bytes(n: int, method: str, *, n_features: int = 128) -> int:
    """Rough peak memory (bytes) to cluster ``n`` encodings with ``method``.

    - agglomerative: the condensed distance matrix (n(n-1)/2 float64) plus the
      working copy SciPy's linkage makes of it, i.e. about 8 n^2 bytes:
      ~0.8 GB at 10,000 faces, ~20 GB at 50,000.  Time grows as n^2 too.
      Measured: 1.67 GB peak RSS and 21-27 s for 14,592 faces (2 cores).
    - dbscan, chinese-whispers: the encodings, scikit-learn's 256-row chunks
      of distances, and the neighbour lists, which grow with how many faces
      lie within eps/threshold of each other; the estimate assumes 64
      neighbours per face (real collections have a few dozen; a collapsed run
      has up to n).  Time is O(n^2 * 128) for the neighbour search: measured
      2.6 s (dbscan) and 3.4 s (chinese-whispers), under 80 MB, at 14,592.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    n = int(n)
    data = 8 * n * n_features
    if method == "agglomerative":
        pairs = n * (n - 1) // 2
        return data + 2 * 8 * pairs + 4 * 8 * n  # + the (n-1, 4) linkage matrix
    chunks = 2 * 8 * min(n, 256) * n  # a chunk of distances and its scratch copy
    neighbours = 16 * n * min(n, _ASSUMED_NEIGHBOURS)  # int64 index + float64 distance
    return data + chunks + neighbours


def available_memory_bytes() -> int | None:
    """Memory the system can give right now, or ``None`` when unknown.

    Linux's ``MemAvailable`` counts reclaimable page cache, which
    ``os.sysconf("SC_AVPHYS_PAGES")`` (free pages only) does not; it is used
    when readable, sysconf otherwise.
    """
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            continue
    return None


def memory_limit_bytes() -> int | None:
    """The most memory one clustering run may plan to use: half of what is
    available now (``None``: unknown, no limit)."""
    available = available_memory_bytes()
    return None if available is None else available // 2


def _check_memory(n: int, method: str, n_features: int) -> None:
    limit = memory_limit_bytes()
    need = estimate_memory_bytes(n, method, n_features=n_features)
    if limit is not None and need > limit:
        raise ValueError(
            f"{method} clustering of {n} faces would need about {_format_bytes(need)} of memory "
            f"(limit {_format_bytes(limit)}, half of the available RAM); "
            "use method 'chinese-whispers' instead (as accurate on our benchmark, memory linear in the faces)"
        )


def _format_bytes(value: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


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
    X = np.asarray(encodings)
    if X.ndim != 2:
        raise ValueError(f"encodings must be a 2-D array (n_faces, 128), got shape {X.shape}")
    if X.shape[0] and X.shape[1] == 0:
        raise ValueError("encodings have no features (shape (n, 0))")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"encodings must be real numbers, got dtype {X.dtype}")
    X = X.astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        raise ValueError("encodings contain NaN or infinite values")
    return X


def _check_params(method, eps, min_samples, threshold, seed, jobs) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not _is_positive_number(eps):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, numbers.Integral) or min_samples < 1:
        raise ValueError(f"min_samples must be an integer >= 1, got {min_samples!r}")
    if threshold is not None:
        if method == "dbscan":
            raise ValueError("threshold applies to chinese-whispers and agglomerative; dbscan uses eps")
        if not _is_positive_number(threshold):
            raise ValueError(f"threshold must be a positive number, got {threshold!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or jobs == 0:
        raise ValueError(f"jobs must be a non-zero integer (-1 = all cores), got {jobs!r}")


def _is_positive_number(value) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )

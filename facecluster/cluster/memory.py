"""How much memory a clustering run needs, and how much it may take.

Every method works on the bounded k-nearest-neighbour graph
(:mod:`facecluster.cluster.graph`), so its memory is linear in the faces; only
agglomerative clustering compares all pairs *inside* each group of faces
linked within its threshold, which is quadratic in the largest such group.
The model (bytes, ``n`` faces, ``d`` = 128 features, ``k`` neighbours)::

    encodings         4 n d  (float32; 8 n d for float64 input)
    ANN index         4 n d + 8 n     (faiss IVF lists; freed after the search)
    kNN graph         12 n k          (int64 index + float32 distance)
    sparse graph      ~ 40 n k        (symmetric CSR of float64, built via COO)
    method            chinese-whispers: ~ 70 bytes per edge in Python lists;
                      hdbscan: ~ 60 bytes per edge (mutual reachability, tree);
                      dbscan: scikit-learn's per-face neighbour arrays, ~ 24 n k
    agglomerative     + 8 s^2 for the largest linked group of s faces

At a million faces and ``k = 10`` (hdbscan) that is ~0.5 GB encodings, ~0.5 GB
index, 0.12 GB graph and ~0.4 GB sparse graph; ``k = 32`` (dbscan) triples the
graph terms.  Measured peaks, and ten million faces: docs/clustering.md.
"""

from __future__ import annotations

import numbers
import os

# Edges per face assumed by the estimate for the method's own structures.
_BYTES_PER_EDGE = {"dbscan": 24, "chinese-whispers": 70, "agglomerative": 24, "hdbscan": 60, "adaptive": 70}


def estimate_memory_bytes(n: int, method: str, *, n_features: int = 128, n_neighbors: int = 32,
                          group: int | None = None) -> int:
    """Rough peak memory (bytes) to cluster ``n`` encodings with ``method``.

    ``group``: for agglomerative, the largest group of faces linked within
    its threshold (default ``n``, the worst case): its all-pairs distances
    and SciPy's working copy, ``8 group^2`` bytes, come on top of the graph.
    """
    if method not in _BYTES_PER_EDGE:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(_BYTES_PER_EDGE)}")
    for name, value in (("n", n), ("n_neighbors", n_neighbors)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    n, k = int(n), min(int(n_neighbors), max(int(n) - 1, 0))
    data = 8 * n * n_features
    index = (4 * n_features + 8) * n
    graph = (12 + 40 + _BYTES_PER_EDGE[method]) * n * k
    total = data + index + graph
    if method == "agglomerative":
        s = n if group is None else int(group)
        total += 8 * s * s
    return total


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


def check_memory(need: int, what: str, advice: str) -> None:
    """Raise ``ValueError`` (one line: ``what``, the sizes, ``advice``) when
    ``need`` bytes exceed :func:`memory_limit_bytes`."""
    limit = memory_limit_bytes()
    if limit is not None and need > limit:
        raise ValueError(f"{what} would need about {format_bytes(need)} of memory "
                         f"(limit {format_bytes(limit)}, half of the available RAM); {advice}")


def format_bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"

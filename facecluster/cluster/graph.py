"""The k-nearest-neighbour graph every clustering method runs on.

Comparing all pairs of faces costs n^2: 2-2.5 hours at a million faces.  The
methods in :mod:`facecluster.cluster.methods` look only at each face's ``k``
nearest neighbours instead, which is all that face clustering needs: a person's
photos are each other's nearest neighbours, and two faces that are not among
each other's nearest few dozen are not worth linking (Otto, Wang & Jain,
"Clustering millions of faces by identity", TPAMI 2018; Wang et al.,
"Linkage based face clustering via graph convolution network", CVPR 2019).

:func:`knn_graph` finds the neighbours

- exactly (brute force, scikit-learn, float64) up to :data:`EXACT_MAX_FACES`
  faces, so small collections get the same distances as before, and
- approximately above that, from a faiss inverted-file index (Jegou et al.,
  TPAMI 2011; Douze et al., "The Faiss library", 2024): each face is compared
  with the faces in the few k-means cells nearest to it, about 3,000 faces
  instead of n, so time grows as n (times the cells' training), memory
  linearly.

The graph is two ``(n, k)`` arrays, memory ``12 n k`` bytes (int64 index +
float32 distance): 0.12 GB for a million faces at ``k = 10``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# Up to this many faces the neighbours are found by brute force: exact, and
# still only seconds (20,000^2 distances).  Above, the inverted-file index.
EXACT_MAX_FACES = 20_000

# The inverted-file index: one list per ~256 faces (k-means centres trained on
# 32 faces per list, 10 iterations), and each query scans the 12 lists nearest
# to it.  On 100k synthetic faces this finds >= 0.99 of the neighbours closer
# than 0.55, where HNSW (M = 16-32) found fewer in more time (docs/clustering.md).
_IVF_FACES_PER_LIST = 256
_IVF_TRAIN_PER_LIST = 32
_IVF_ITERATIONS = 10
_IVF_PROBES = 12


@dataclass(frozen=True)
class NeighbourGraph:
    """Each face's ``k`` nearest other faces, nearest first.

    ``indices[i, j]`` is the j-th nearest neighbour of face ``i`` (never ``i``
    itself; ``-1`` pads rows of an index that found fewer), ``distances[i, j]``
    its Euclidean distance (``inf`` for padding).
    """

    indices: np.ndarray
    distances: np.ndarray

    @property
    def n(self) -> int:
        return self.indices.shape[0]

    def sparse(self, radius: float | None = None, *, symmetric: bool = True) -> sp.csr_matrix:
        """The graph as an ``(n, n)`` CSR matrix of distances.

        Only edges up to ``radius`` (all, if ``None``) are kept; with
        ``symmetric`` an edge found from either end is stored at both ends
        (the neighbour relation is not symmetric, a distance is).  A stored
        distance of 0 (duplicate faces) is kept as a tiny positive value, so
        that sparse-matrix code does not mistake it for a missing edge.
        """
        n, k = self.indices.shape
        keep = self.indices >= 0
        if radius is not None:
            keep &= self.distances <= radius
        rows = np.repeat(np.arange(n, dtype=np.int64), k)[keep.ravel()]
        cols = self.indices[keep]
        data = np.maximum(self.distances[keep].astype(np.float64), 1e-12)
        graph = sp.csr_matrix((data, (rows, cols)), shape=(n, n))
        if symmetric:
            graph = graph.maximum(graph.T).tocsr()
        graph.sort_indices()
        return graph


def knn_graph(encodings: np.ndarray, k: int, *, exact: bool | None = None, jobs: int = -1) -> NeighbourGraph:
    """The ``k`` nearest neighbours of every row of ``encodings``.

    Parameters
    ----------
    encodings : (n, d) float array
    k : int >= 1
        Neighbours per face (capped at ``n - 1``).
    exact : bool or None
        Brute force (``True``), inverted-file index (``False``), or by size (``None``: exact
        up to :data:`EXACT_MAX_FACES` faces).
    jobs : int
        Threads (-1 = all cores).

    Returns
    -------
    NeighbourGraph with ``(n, min(k, n - 1))`` arrays.
    """
    X = np.asarray(encodings)
    n = X.shape[0]
    k = max(0, min(int(k), n - 1))
    if k == 0:
        return NeighbourGraph(np.empty((n, 0), np.int64), np.empty((n, 0), np.float32))
    if exact is None:
        exact = n <= EXACT_MAX_FACES
    return _exact_knn(X, k, jobs) if exact else _ivf_knn(X, k, jobs)


def _exact_knn(X: np.ndarray, k: int, jobs: int) -> NeighbourGraph:
    from sklearn.neighbors import NearestNeighbors

    # kneighbors() without a query leaves each point out of its own list.
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=jobs).fit(np.asarray(X, dtype=np.float64))
    distances, indices = nn.kneighbors()
    return NeighbourGraph(indices.astype(np.int64), distances.astype(np.float32))


def _ivf_knn(X: np.ndarray, k: int, jobs: int) -> NeighbourGraph:
    """Neighbours from a faiss inverted-file index (Jegou, Douze & Schmid,
    "Product quantization for nearest neighbor search", TPAMI 2011, Sec. IV;
    exact distances inside the scanned lists)."""
    data = np.ascontiguousarray(X, dtype=np.float32)
    index = ivf_index(data, jobs)
    squared, indices = _search_in_chunks(index, data, k + 1)
    del index
    return _drop_self(indices, squared, k)


def ivf_index(data: np.ndarray, jobs: int = -1):
    """The faiss inverted-file index of ``data`` (float32, C order) that the approximate graph
    searches, trained and filled; ``nprobe`` set as the graph uses it.  Search (facecluster/people)
    queries the same index."""
    import faiss

    if jobs > 0:
        faiss.omp_set_num_threads(jobs)
    n, d = data.shape
    lists = max(1, n // _IVF_FACES_PER_LIST)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, lists)
    index.cp.niter = _IVF_ITERATIONS
    index.cp.seed = 0
    index.cp.max_points_per_centroid = _IVF_TRAIN_PER_LIST
    sample = np.random.default_rng(0).choice(n, min(n, _IVF_TRAIN_PER_LIST * lists), replace=False)
    index.train(data[np.sort(sample)])
    index.add(data)
    index.nprobe = min(lists, _IVF_PROBES)
    return index


def _search_in_chunks(index, data: np.ndarray, k: int, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Query the index with every row, a chunk at a time so that faiss'
    scratch memory stays bounded; returns (squared distances, indices)."""
    n = data.shape[0]
    squared = np.empty((n, k), dtype=np.float32)
    indices = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk):
        squared[start:start + chunk], indices[start:start + chunk] = index.search(data[start:start + chunk], k)
    return squared, indices


def _drop_self(indices: np.ndarray, squared: np.ndarray, k: int) -> NeighbourGraph:
    """Remove each row's own index from its ``k + 1`` results (or, when the
    index missed it, the farthest result), keeping the order."""
    n = indices.shape[0]
    drop = indices == np.arange(n)[:, None]
    # Rows whose own index was not returned (an approximate miss, or a
    # duplicate face ranked first) drop their farthest result instead.
    drop[~drop.any(axis=1), -1] = True
    keep = ~drop
    indices = indices[keep].reshape(n, k)
    distances = np.sqrt(np.maximum(squared[keep].reshape(n, k), 0)).astype(np.float32)
    distances[indices < 0] = np.inf
    return NeighbourGraph(indices, distances)

"""facecluster.cluster.graph: the kNN graph every method runs on, exact or approximate."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from facecluster.cluster import cluster_encodings
from facecluster.cluster.graph import _drop_self, knn_graph

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from scale import outliers_apart  # noqa: E402
from synthetic import CALIBRATION, identity_sizes, synthetic_encodings  # noqa: E402


def test_exact_graph_is_the_brute_force_answer():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 128))
    g = knn_graph(X, 7)
    D = np.linalg.norm(X[:, None] - X[None], axis=2)
    np.fill_diagonal(D, np.inf)
    assert np.array_equal(g.indices, np.argsort(D, axis=1)[:, :7])
    assert np.allclose(g.distances, np.sort(D, axis=1)[:, :7], atol=1e-5)


def test_k_is_capped_and_tiny_inputs_work():
    assert knn_graph(np.zeros((1, 128)), 10).indices.shape == (1, 0)
    g = knn_graph(np.eye(4, 128), 10)
    assert g.indices.shape == (4, 3) and not (g.indices == np.arange(4)[:, None]).any()


def test_sparse_is_symmetric_keeps_duplicates_and_cuts_at_the_radius():
    X = np.zeros((4, 128))
    X[2, 0] = 0.3
    X[3, 0] = 2.0  # far from everyone
    g = knn_graph(X, 1)
    s = g.sparse(0.5)
    assert (s != s.T).nnz == 0
    assert s[0, 1] > 0 and s[0, 1] < 1e-9  # duplicates: a tiny distance, not a missing edge
    assert s[3].nnz == 0  # its one neighbour is 1.7 away
    assert g.sparse()[3].nnz == 1


def test_drop_self_when_the_index_missed_it():
    indices = np.array([[0, 5, 6], [7, 8, 9]])  # row 1 never returned itself
    squared = np.array([[0.0, 0.25, 1.0], [0.04, 0.09, 0.16]], dtype=np.float32)
    g = _drop_self(indices, squared, 2)
    assert g.indices.tolist() == [[5, 6], [7, 8]]
    assert np.allclose(g.distances, [[0.5, 1.0], [0.2, 0.3]])


def test_approximate_graph_finds_the_close_neighbours():
    X, _ = synthetic_encodings(4000, seed=1)
    exact, approx = knn_graph(X, 10, exact=True), knn_graph(X, 10, exact=False)
    close = exact.distances <= 0.55
    found = sum(len(set(e[c]) & set(a)) for e, a, c in zip(exact.indices, approx.indices, close))
    assert found >= 0.98 * close.sum()


@pytest.mark.parametrize("method", ["dbscan", "hdbscan"])
def test_clusters_on_the_approximate_graph_agree_with_the_exact_ones(method):
    from sklearn.metrics import adjusted_rand_score

    X, _ = synthetic_encodings(6000, seed=2)
    exact = cluster_encodings(X, method, exact=True)
    approx = cluster_encodings(X, method, exact=False)
    assert adjusted_rand_score(outliers_apart(exact), outliers_apart(approx)) >= 0.99


def test_synthetic_distances_match_the_calibration():
    X, person = synthetic_encodings(20000, seed=3)
    assert X.dtype == np.float32 and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(X), (2, 5000))
    apart = np.linalg.norm(X[i] - X[j], axis=1)[person[i] != person[j]]
    order = np.argsort(person, kind="stable")
    same = person[order][1:] == person[order][:-1]
    together = np.linalg.norm(X[order][1:][same] - X[order][:-1][same], axis=1)
    assert abs(np.median(apart) - CALIBRATION["different"]) < 0.02
    assert abs(np.median(together) - CALIBRATION["same"]) < 0.02
    sizes = identity_sizes(10000, np.random.default_rng(0))
    assert sizes.sum() == 10000 and 0.6 < (sizes == 1).mean() < 0.8  # LFW: 71% of people have one photo

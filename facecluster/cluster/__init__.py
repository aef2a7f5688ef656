"""From encodings to people.

- :mod:`facecluster.cluster.methods`     :func:`cluster_encodings`: adaptive (:data:`RECOMMENDED_METHOD`),
  dbscan (the tutorial's), hdbscan, chinese-whispers and agglomerative, one call shape
- :mod:`facecluster.cluster.adaptive`    the recommended method: read the collection, then choose
- :mod:`facecluster.cluster.density`     HDBSCAN on the graph with a ceiling (adaptive's path in crowded collections)
- :mod:`facecluster.cluster.graph`       the k-nearest-neighbour graph they all run on (exact, or a faiss inverted-file index)
- :mod:`facecluster.cluster.memory`      the memory model and the limit a run must fit in
- :mod:`facecluster.cluster.constraints` who appears together: two faces of one picture are two people,
  a video track is one; every method but dbscan obeys them
- :mod:`facecluster.cluster.collapse`    :func:`looks_collapsed` and :func:`collapse_warning`, the collapse warning
- :mod:`facecluster.cluster.evaluation`  pairwise / BCubed / NMI / ARI against known identities
"""

from .collapse import looks_collapsed
from .methods import DEFAULTS, METHODS, RECOMMENDED_METHOD, check_params, cluster_encodings

__all__ = ["DEFAULTS", "METHODS", "RECOMMENDED_METHOD", "check_params", "cluster_encodings", "looks_collapsed"]

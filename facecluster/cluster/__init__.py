"""From encodings to people: the clustering methods and their scoring.

- :mod:`facecluster.cluster.methods`     :func:`cluster_encodings` and its methods
- :mod:`facecluster.cluster.evaluation`  pairwise / BCubed / NMI / ARI against known identities
"""

from .methods import DEFAULTS, METHODS, cluster_encodings, looks_collapsed

__all__ = ["DEFAULTS", "METHODS", "cluster_encodings", "looks_collapsed"]

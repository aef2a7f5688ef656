"""facecluster: find the faces in a folder of photos and group them by person.

One module per stage, each a handful of small functions over plain records:

- :mod:`facecluster.records`   the face record and the one box convention
- :mod:`facecluster.images`    finding photos in a folder and decoding them
- :mod:`facecluster.faces`     detecting faces and computing 128-d encodings
- :mod:`facecluster.encoding`  the encoding run: workers, reuse, progress
- :mod:`facecluster.store`     reading and writing the encodings file safely
- :mod:`facecluster.cluster`   grouping encodings into people (methods, kNN graph)
- :mod:`facecluster.cluster.evaluation` scoring clusters against known identities
- :mod:`facecluster.montage`   montages and windows
- :mod:`facecluster.outputs`   CSV, JSON, per-person folders, the HTML gallery
"""

__version__ = "0.1.0"

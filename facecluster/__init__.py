"""facecluster: find the faces in a folder of photos and group them by person.

One module per stage, each a handful of small functions over plain records:

- :mod:`facecluster.records`   the face record and the one box convention
- :mod:`facecluster.sources.images`    finding photos (and videos) in a folder and decoding photos
- :mod:`facecluster.sources`   frames from videos: sampling, rotation, timing
- :mod:`facecluster.encode`    detectors, encoders and the encoding run (workers, reuse)
- :mod:`facecluster.store`     reading and writing the encodings file safely
- :mod:`facecluster.cluster`   grouping encodings into people: the methods and the kNN graph
  they run on, and scoring clusters against known identities (``cluster.evaluation``)
- :mod:`facecluster.present`   what people see, in one call: montages, windows,
  clusters.csv / clusters.json, person folders, the HTML gallery
- :mod:`facecluster.files`     the one atomic writer;  :mod:`facecluster.cli` one-line errors, progress
"""

__version__ = "0.1.0"

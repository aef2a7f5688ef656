"""facecluster: find the faces in a folder of photos and group them by person.

One module per stage, each a handful of small functions over plain records:

- :mod:`facecluster.records`   the face record and the one box convention
- :mod:`facecluster.images`    finding photos in a folder and decoding them
- :mod:`facecluster.encode`    detectors, encoders and the encoding run (workers, reuse)
- :mod:`facecluster.store`     reading and writing the encodings file safely
- :mod:`facecluster.clustering` grouping encodings into people
- :mod:`facecluster.evaluation` scoring clusters against known identities
- :mod:`facecluster.present`   what people see, in one call: montages, windows,
  clusters.csv / clusters.json, person folders, the HTML gallery
"""

__version__ = "0.1.0"

"""facecluster: find the faces in a folder of photos and group them by person.

One wing per stage, passing plain records along; imports only point down
(``tests/test_layout.py`` checks that no module imports one that imports it back):

- :mod:`facecluster.records`   the face record, the one box convention, the unknown label
- :mod:`facecluster.files`     the atomic writers;  :mod:`facecluster.cli` one-line errors, exit codes, progress
- :mod:`facecluster.sources`   what yields pictures: folders listed by content, photos decoded, video frames
- :mod:`facecluster.models`    dlib's model files, loaded once per process; built models kept on disk
- :mod:`facecluster.detect`    finding faces: HOG, the CNN, HOG then CNN
- :mod:`facecluster.embed`     128-d encodings: dlib's ResNet, in dlib or on onnxruntime
- :mod:`facecluster.run`       the encoding run: worker processes or Dask, videos by segments, the cache, the report
- :mod:`facecluster.store`     what lasts between runs: the encodings file, read and written safely; the cache of results
- :mod:`facecluster.cluster`   grouping encodings into people: the methods, the kNN graph they run on,
  and scoring clusters against known identities (``cluster.evaluation``)
- :mod:`facecluster.people`    known people's names, the people store (the same ID every run), search by photo
- :mod:`facecluster.present`   what people see, in one call: montages, windows,
  clusters.csv / clusters.json, person folders, the HTML gallery
"""

__version__ = "0.1.0"

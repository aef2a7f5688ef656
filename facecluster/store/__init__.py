"""What lasts between runs.

- :mod:`facecluster.store.encodings_file`  the tutorial's pickle: restricted reading, atomic
  writing (its calls are also here, as ``facecluster.store.load_encodings`` ...)
- :mod:`facecluster.store.photo_cache`     each photo's results, kept so runs resume and reuse (SQLite)
- :mod:`facecluster.store.video_cache`     each video segment's tracks, in the same SQLite file
"""

from .encodings_file import (EncodingsError, FaceColumns, dumps_encodings, load_encoding_columns, load_encodings,
                             save_encodings, take_encodings)

__all__ = ["EncodingsError", "FaceColumns", "dumps_encodings", "load_encoding_columns", "load_encodings",
           "save_encodings", "take_encodings"]

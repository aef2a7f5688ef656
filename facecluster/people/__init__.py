"""People, not clusters: names from known people, stable person IDs, search by photo.

- :mod:`facecluster.people.known`     the known-people folder (or encodings file) read into :class:`KnownPeople`
- :mod:`facecluster.people.naming`    the naming rule: which cluster is which known person
- :mod:`facecluster.people.store`     the SQLite people store: the same person, the same ID, every run
- :mod:`facecluster.people.identify`  :func:`identify`, the one call cluster_faces.py makes
- :mod:`facecluster.people.search`    every face of a person in an encodings file (search_faces.py)

Design and measurements: docs/people.md.
"""

from .identify import Identified, check_renames, identify, load_known, parse_merges, parse_renames, stored_people
from .naming import KnownPeople
from .store import store_path_for

__all__ = ["Identified", "KnownPeople", "check_renames", "identify", "load_known", "parse_merges", "parse_renames",
           "store_path_for",
           "stored_people"]

"""What people see: montages, windows, clusters.csv / clusters.json, person folders, the gallery.

:func:`present` is the one call; the modules beside it each make one kind of output.
"""

from .present import DEFAULT_MAX_MONTAGES, PresentOptions, Presented, present

__all__ = ["DEFAULT_MAX_MONTAGES", "PresentOptions", "Presented", "present"]

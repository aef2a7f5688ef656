"""Montages: the tutorial's picture of one cluster.

Up to 25 of a cluster's faces, chosen at random, cropped, resized to 96x96
and tiled 5x5 with ``imutils.build_montages``.  Images here are OpenCV's BGR
``uint8`` arrays, ready for ``cv2.imshow`` and ``cv2.imencode``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from imutils import build_montages
from ..records import FaceRecord
from ..records import UNKNOWN_LABEL
from .clusters import safe_name
from .crops import PhotoReader, face_crop, placeholder_tile

TILE_SIZE = 96
MONTAGE_TILES = 25


def cluster_montage(
    records: Sequence[FaceRecord],
    indices: Sequence[int] | np.ndarray,
    rng: np.random.Generator,
    reader: PhotoReader,
    tiles: int = MONTAGE_TILES,
) -> np.ndarray:
    """Tile a random sample of one cluster's faces into a montage.

    ``indices`` are the cluster's positions in ``records``; at most ``tiles``
    of them are drawn without replacement by ``rng`` (one generator for the
    whole run, so a seed always gives the same montages).  Faces whose photo
    ``reader`` cannot read show as gray tiles.  Returns a BGR image of a
    square grid of 96x96 tiles (5x5 = 480x480 for 25); unused cells are black.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    count = min(tiles, len(indices))
    chosen = [int(i) for i in rng.choice(indices, size=count, replace=False)] if count else []
    cropped = {
        index: placeholder_tile(TILE_SIZE) if image is None else face_crop(image, records[index]["loc"], TILE_SIZE)
        for index, image in reader.photos_of(records, chosen)
    }
    side = max(1, math.ceil(math.sqrt(tiles)))
    return build_montages([cropped[index] for index in chosen], (TILE_SIZE, TILE_SIZE), (side, side))[0]


def montage_filename(label: int, name: str | None = None) -> str:
    """File name of a cluster's montage: ``face_id_03.jpg``, ``face_id_03_Ada_Lovelace.jpg`` when
    named (:func:`~.clusters.safe_name`), or ``unknown_faces.jpg``."""
    if int(label) == UNKNOWN_LABEL:
        return "unknown_faces.jpg"
    return f"face_id_{int(label):02d}" + (f"_{safe_name(name)}" if name and safe_name(name) else "") + ".jpg"



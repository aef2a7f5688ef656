"""Montages: the tutorial's picture of one cluster.

Up to 25 of a cluster's faces, chosen at random, cropped, resized to 96x96
and tiled 5x5 with ``imutils.build_montages``.  Images here are OpenCV's BGR
``uint8`` arrays, ready for ``cv2.imshow`` and ``cv2.imencode``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import cv2
import numpy as np
from imutils import build_montages

from ..files import write_atomically
from ..records import FaceRecord
from .clusters import UNKNOWN_LABEL, PhotoReader, face_crop, placeholder_tile, safe_name

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


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 90) -> None:
    """Write a BGR image as JPEG (or PNG, by suffix) to ``path``, atomically.

    Encoded in memory and written with Python's own file API, because
    ``cv2.imwrite`` cannot open paths that are not valid UTF-8.
    """
    extension = os.path.splitext(os.fspath(path))[1].lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if extension in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(extension, image, params)
    if not ok:
        raise ValueError(f"OpenCV cannot encode {extension} images")
    write_atomically(path, encoded.tobytes())

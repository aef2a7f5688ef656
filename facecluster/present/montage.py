"""Montages of a cluster's faces, and the windows that show them.

A montage is the tutorial's picture of one cluster: up to 25 of its faces,
chosen at random, cropped, resized to 96x96 and tiled 5x5 with
``imutils.build_montages``.  Images here are OpenCV's BGR ``uint8`` arrays,
ready for ``cv2.imshow`` and ``cv2.imencode``.

Showing windows is optional: :func:`display_available` says whether OpenCV
can open one here, and :func:`show_montages` checks it first, because
OpenCV's Qt backend *aborts the whole process* (no exception to catch) when
it cannot reach the display.
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache

import cv2
import numpy as np
from imutils import build_montages

from .images import ImageSkipped, LoadedImage, display_path, load_image
from .records import Box, FaceRecord, clip_box, scale_box

log = logging.getLogger(__name__)

TILE_SIZE = 96
MONTAGE_TILES = 25
UNKNOWN_LABEL = -1
# Mid-gray stands in for a face that cannot be shown; it differs from the
# black that build_montages pads an unfilled grid with.
PLACEHOLDER_GRAY = 128
# Keys that end the slideshow early: q, Q and Esc.
_STOP_KEYS = frozenset({ord("q"), ord("Q"), 27})
# How often (ms) the window loop checks whether the user closed the window.
_POLL_MS = 50
# The probe opens a real window in a child process; give a slow X server time.
_PROBE_TIMEOUT_S = 20.0
_PROBE_ATTEMPTS = 3


def placeholder_tile(size: int = TILE_SIZE) -> np.ndarray:
    """A ``size`` x ``size`` gray BGR tile for a face that cannot be cropped."""
    return np.full((size, size, 3), PLACEHOLDER_GRAY, dtype=np.uint8)


def face_tile(image: LoadedImage, box: Box, size: int = TILE_SIZE) -> np.ndarray:
    """Crop one face out of a loaded photo as a ``size`` x ``size`` BGR tile.

    ``box`` is ``(top, right, bottom, left)`` in original-photo pixels; it is
    mapped onto ``image.rgb`` (which may be a reduced copy) and clipped to the
    picture, since detector boxes often overhang the edges.  A box with no
    area left inside the picture gives a gray tile instead of an error.
    """
    height, width = image.rgb.shape[:2]
    try:
        top, right, bottom, left = (int(v) for v in box)
    except (TypeError, ValueError, OverflowError):  # not four numbers: a damaged record
        return placeholder_tile(size)
    scaled = scale_box((top, right, bottom, left), image.scale)
    top, right, bottom, left = clip_box(scaled, width, height)
    if bottom - top < 1 or right - left < 1:
        return placeholder_tile(size)
    crop = cv2.cvtColor(image.rgb[top:bottom, left:right], cv2.COLOR_RGB2BGR)
    # INTER_AREA averages when shrinking (no aliasing); tiny crops grow smoothly.
    interpolation = cv2.INTER_AREA if crop.shape[0] >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


_reported_missing: set[str] = set()


def photos_of(records: Sequence[FaceRecord], indices: Iterable[int]) -> Iterator[tuple[int, LoadedImage | None]]:
    """Yield ``(record index, its decoded photo)`` for ``indices``, decoding each photo once.

    The photo is ``None`` when it cannot be read any more (it moved or broke
    since it was encoded): callers show a gray tile rather than fail.
    """
    by_path: dict[str, list[int]] = defaultdict(list)
    for index in indices:
        by_path[records[index]["imagePath"]].append(index)
    for path, faces in by_path.items():
        try:
            image = load_image(path)
        except ImageSkipped as skipped:
            if path not in _reported_missing:  # montages and thumbnails both look: say it once
                _reported_missing.add(path)
                log.warning("cannot show faces from %s: %s", display_path(path), skipped)
            image = None
        for index in faces:
            yield index, image


def _tiles_by_image(records: Sequence[FaceRecord], indices: Sequence[int], size: int) -> dict[int, np.ndarray]:
    """Crop the faces ``indices`` of ``records``: ``{record index: BGR tile}``."""
    return {
        index: placeholder_tile(size) if image is None else face_tile(image, records[index]["loc"], size)
        for index, image in photos_of(records, indices)
    }


def cluster_montage(
    records: Sequence[FaceRecord],
    indices: Sequence[int] | np.ndarray,
    seed: int | np.random.Generator | None = None,
    tiles: int = MONTAGE_TILES,
) -> np.ndarray:
    """Tile a random sample of one cluster's faces into a montage.

    ``indices`` are positions in ``records`` (e.g. ``np.where(labels == k)[0]``).
    At most ``tiles`` of them are drawn without replacement by a
    ``numpy.random.default_rng(seed)`` generator, so a given seed always gives
    the same montage.  Returns a BGR image of a square grid of 96x96 tiles
    (5x5 = 480x480 for the default 25); unused cells are black.
    """
    rng = np.random.default_rng(seed)  # a Generator passed in is used as is
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    count = min(tiles, len(indices))
    chosen = [int(i) for i in rng.choice(indices, size=count, replace=False)] if count else []
    cropped = _tiles_by_image(records, chosen, TILE_SIZE)
    side = max(1, math.ceil(math.sqrt(tiles)))
    faces = [cropped[index] for index in chosen]
    return build_montages(faces, (TILE_SIZE, TILE_SIZE), (side, side))[0]


def cluster_montages(
    records: Sequence[FaceRecord],
    labels: Sequence[int] | np.ndarray,
    seed: int | None = None,
    tiles: int = MONTAGE_TILES,
) -> list[tuple[int, np.ndarray]]:
    """One montage per cluster: ``[(label, BGR image), ...]``.

    People come in label order and the outliers (label -1), if any, last.
    One generator seeded with ``seed`` draws every cluster's sample.
    """
    labels = np.asarray(labels)
    if len(labels) != len(records):
        raise ValueError(f"{len(labels)} labels for {len(records)} records")
    rng = np.random.default_rng(seed)
    return [
        (label, cluster_montage(records, np.flatnonzero(labels == label), rng, tiles))
        for label in ordered_labels(labels)
    ]


def ordered_labels(labels: Sequence[int] | np.ndarray) -> list[int]:
    """The distinct labels as ints: people in ascending order, then -1 if present."""
    distinct = sorted({int(label) for label in np.asarray(labels).reshape(-1)})
    people = [label for label in distinct if label != UNKNOWN_LABEL]
    return people + ([UNKNOWN_LABEL] if UNKNOWN_LABEL in distinct else [])


def montage_title(label: int) -> str:
    """Window title of a cluster: ``"Face ID #3"``, or ``"Unknown Faces"`` for -1."""
    return "Unknown Faces" if int(label) == UNKNOWN_LABEL else f"Face ID #{int(label)}"


def montage_filename(label: int) -> str:
    """File name of a cluster's montage: ``face_id_03.jpg``, or ``unknown_faces.jpg``."""
    return "unknown_faces.jpg" if int(label) == UNKNOWN_LABEL else f"face_id_{int(label):02d}.jpg"


def _label_from_title(title: str) -> int | None:
    """Invert :func:`montage_title`; ``None`` for any other text."""
    if title == montage_title(UNKNOWN_LABEL):
        return UNKNOWN_LABEL
    match = re.fullmatch(r"Face ID #(\d+)", title)
    return int(match.group(1)) if match else None


def _filename_for(key: int | str) -> str:
    """Montage file name for a label, a title from :func:`montage_title`, or any text."""
    if isinstance(key, (int, np.integer)):
        return montage_filename(int(key))
    label = _label_from_title(str(key))
    if label is not None:
        return montage_filename(label)
    slug = re.sub(r"[^0-9A-Za-z]+", "_", str(key)).strip("_").lower() or "montage"
    return f"{slug}.jpg"


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 90) -> None:
    """Write a BGR image as JPEG (or PNG, by suffix) to ``path``, atomically.

    Encoded in memory and written with Python's own file API, because
    ``cv2.imwrite`` cannot open paths that are not valid UTF-8.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if extension in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(extension, image, params)
    if not ok:
        raise ValueError(f"OpenCV cannot encode {extension} images")
    temporary = path + ".part"
    with open(temporary, "wb") as handle:
        handle.write(encoded.tobytes())
    os.replace(temporary, path)  # a reader never sees half a file


def write_montages(montages: Iterable[tuple[int | str, np.ndarray]], out_dir: str | os.PathLike) -> list[str]:
    """Save montages as JPEGs in ``out_dir`` (created if needed).

    Each item is ``(label, image)`` -- or ``(title, image)`` with a title from
    :func:`montage_title` -- and is saved as :func:`montage_filename`.
    Returns the paths written, in order.
    """
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for key, image in montages:
        path = os.path.join(os.fspath(out_dir), _filename_for(key))
        write_image(path, image)
        written.append(path)
    return written


def _has_gui_backend() -> bool:
    """Whether this OpenCV build has any window backend (headless wheels don't)."""
    info = cv2.getBuildInformation()
    match = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    return bool(match) and match.group(1).upper() not in ("NONE", "NO")


_PROBE = """
import cv2, numpy
cv2.namedWindow("facecluster display probe", cv2.WINDOW_AUTOSIZE)
cv2.imshow("facecluster display probe", numpy.zeros((1, 1, 3), numpy.uint8))
cv2.waitKey(1)
cv2.destroyAllWindows()
cv2.waitKey(1)
"""


@lru_cache(maxsize=8)
def _probe_display(display: str | None, wayland: str | None) -> bool:
    """Open and close a 1-pixel window in a child process; True if that worked.

    A child process, because OpenCV's Qt backend calls ``abort()`` when it
    cannot connect (e.g. a stale ``DISPLAY``, or Wayland without an X server);
    only a separate process survives that.  A failed probe is tried again
    (a busy X server can refuse one connection), then cached per display.
    """
    env = dict(os.environ)
    for name, value in (("DISPLAY", display), ("WAYLAND_DISPLAY", wayland)):
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    for attempt in range(_PROBE_ATTEMPTS):
        if attempt:
            time.sleep(0.5)
        try:
            result = subprocess.run(
                [sys.executable, "-c", _PROBE],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=_PROBE_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            log.debug("display probe failed: %s", error)
            continue
        if result.returncode == 0:
            return True
        log.debug("display probe exited %s: %s", result.returncode, result.stderr.decode(errors="replace").strip())
    return False


def display_available() -> bool:
    """Whether OpenCV can open a window here.

    False without ``DISPLAY``/``WAYLAND_DISPLAY``, with a headless OpenCV
    build, or when a test window cannot be opened on that display.
    """
    display = os.environ.get("DISPLAY") or None
    wayland = os.environ.get("WAYLAND_DISPLAY") or None
    if display is None and wayland is None:
        return False
    if not _has_gui_backend():
        return False
    return _probe_display(display, wayland)


def _wait_for_key(title: str) -> int:
    """Wait until a key is pressed in any window (its code) or ``title`` is closed (-1)."""
    while True:
        key = cv2.waitKey(_POLL_MS)
        if key != -1:
            return key & 0xFF
        # Closing the window with the mouse counts as "next", like a key.
        try:
            visible = cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE)
        except cv2.error:  # some backends forget a window the user closed
            return -1
        if visible < 1:
            return -1


def _close_window(title: str) -> None:
    """Take ``title``'s window down, if it is still there."""
    try:
        cv2.destroyWindow(title)
        cv2.waitKey(1)  # let the GUI loop actually unmap it
    except cv2.error:  # already gone (closed by the user)
        pass


def show_montages(montages: Iterable[tuple[str, np.ndarray]]) -> None:
    """Show ``(title, BGR image)`` montages one window at a time.

    Any key (or closing the window) goes to the next montage; ``q`` or Esc
    stops early.  Without a usable display this logs a warning and returns.
    """
    if not display_available():
        log.warning("no display available: not showing montages (they are still written to files)")
        return
    try:
        for title, image in montages:
            cv2.imshow(title, image)
            key = _wait_for_key(title)
            _close_window(title)
            if key in _STOP_KEYS:
                break
    except cv2.error as error:
        log.warning("cannot show montages: %s", str(error).strip())
    finally:
        try:
            cv2.destroyAllWindows()
            cv2.waitKey(1)
        except cv2.error:
            pass

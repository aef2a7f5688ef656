"""The montage windows: one at a time, any key for the next, q or Esc to stop.

Showing windows is optional: :func:`display_available` says whether OpenCV
can open one here, and :func:`show_montages` checks it first, because
OpenCV's Qt backend *aborts the whole process* (no exception to catch) when
it cannot reach the display.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from functools import lru_cache

import cv2
import numpy as np

log = logging.getLogger(__name__)

# Keys that end the slideshow early: q, Q and Esc.
_STOP_KEYS = frozenset({ord("q"), ord("Q"), 27})
# How often (ms) the window loop checks whether the user closed the window.
_POLL_MS = 50
# The probe opens a real window in a child process; give a slow X server time.
_PROBE_TIMEOUT_S = 20.0
_PROBE_ATTEMPTS = 3
# Where Linux distributions keep fonts Qt can read (.ttf files directly inside).
_SYSTEM_FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",  # Debian, Ubuntu: fonts-dejavu-core
    "/usr/share/fonts/dejavu",  # Fedora, Alpine
    "/usr/share/fonts/TTF",  # Arch
    "/usr/share/fonts/truetype/liberation",
)


def quiet_qt_fonts() -> None:
    """Point OpenCV's Qt at the system fonts, before its first window.

    opencv-python's wheel bundles Qt but no fonts, and on import sets
    ``QT_QPA_FONTDIR`` to its own empty ``cv2/qt/fonts``; Qt then prints
    ``QFontDatabase: Cannot find font directory`` ten times.  A font folder
    that holds fonts is kept; otherwise the first system folder with fonts
    is used.  Without any system fonts nothing changes
    (``tools/install-test-tools.sh`` installs fonts-dejavu-core).
    """
    if _has_fonts(os.environ.get("QT_QPA_FONTDIR", "")):
        return
    for folder in _SYSTEM_FONT_DIRS:
        if _has_fonts(folder):
            os.environ["QT_QPA_FONTDIR"] = folder
            return


def _has_fonts(folder: str) -> bool:
    return bool(folder) and bool(glob.glob(os.path.join(glob.escape(folder), "*.[tT][tT][fF]")))


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
    quiet_qt_fonts()  # the child inherits it
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
    stops early, leaving the rest of ``montages`` unread.  Without a usable
    display this logs a warning and returns.
    """
    if not display_available():
        log.warning("no display available: not showing montages")
        return
    quiet_qt_fonts()
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

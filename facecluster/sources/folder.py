"""A folder's photos and videos, found by their content, never by their name.

A PNG named ``.jpg``, a WEBP without an extension and an upper-case ``.JPEG``
are all photos; ``notes.txt`` is ignored; a file that looks meant as a photo
but is unusable is reported as a :class:`~facecluster.sources.skips.Skip`.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
from dataclasses import dataclass, field

from PIL import Image

from ..files import OUTPUT_MARKER, open_regular
from .images import IMAGE_EXTENSIONS, sniff_format
from .skips import ImageSkipped, Skip, skipped_for_oserror
from .video import named_like_video, sniff_video


@dataclass
class Listing:
    """What a folder walk found: photos to use, and what was passed over."""

    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)  # found by content too (sources/video.py)
    skipped: list[Skip] = field(default_factory=list)
    ignored: int = 0  # files that are plainly not photos (e.g. notes.txt)
    root: str = ""  # the folder walked ("" when the photos were listed otherwise)
    outputs: list[str] = field(default_factory=list)  # cluster_faces.py's output folders inside it: not walked


def _read_head(path: str) -> bytes:
    with open_regular(path) as handle:
        return handle.read(512)  # enough for a video's signature too (MPEG-TS: two 188-byte packets)


def _skip(path: str, skipped: ImageSkipped) -> Skip:
    return Skip(path, skipped.category, skipped.reason)


def classify_file(path: str) -> str | None:
    """Decide whether ``path`` is a photo (or a video) to decode.

    Returns ``None`` for a photo, ``"video"`` for a video, otherwise raises :class:`ImageSkipped` (a
    file that looks meant as a photo but is unusable) or returns ``"ignore"``
    (a file that is plainly something else, such as ``notes.txt``).
    """

    named_like_image = os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS or named_like_video(path)
    try:
        info = os.stat(path)  # follows links: a dangling one raises here
    except OSError as error:
        if os.path.islink(path) or named_like_image:
            raise skipped_for_oserror(error) from None
        return "ignore"
    if not stat.S_ISREG(info.st_mode):
        if named_like_image:
            raise ImageSkipped("not a regular file", "not a file")
        return "ignore"
    if info.st_size == 0:
        if named_like_image:
            raise ImageSkipped("empty file (0 bytes)", "empty")
        return "ignore"
    try:
        head = _read_head(path)
    except OSError as error:
        if named_like_image:
            raise skipped_for_oserror(error) from None
        return "ignore"
    if sniff_format(head) is None and sniff_video(head):
        return "video"
    if sniff_format(head) is None:
        if named_like_video(path):
            raise ImageSkipped("not a video (unrecognised content)", "not a video")
        if named_like_image:
            raise ImageSkipped("not an image (unrecognised content)", "not an image")
        return "ignore"
    return None


def is_photo_or_video(path: str) -> bool:
    """Whether ``path`` is a regular file that holds a photo Pillow can read or a video, by content.

    What the person folders copy: a record that names anything else (a
    crafted one naming ``/etc/passwd``) is never copied.
    """
    try:
        verdict = classify_file(path)
    except ImageSkipped:
        return False
    if verdict == "video":
        return True
    if verdict is not None:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_regular(path) as handle, Image.open(handle) as image:
                return image.width > 0 and image.height > 0  # the header only: nothing decoded
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError):
        return False


def _is_our_output(folder: str) -> bool:
    """Whether ``folder`` is an output folder of cluster_faces.py (its marker, or an older version's manifest)."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in (OUTPUT_MARKER, ".facecluster-organize.json"))


def list_images(root: str) -> Listing:
    """Walk ``root`` recursively and sort its files into photos and the rest.

    Symlinked folders are followed once each (loops are cut); photos are
    found by content, so names and extensions don't matter.  Folders that
    cluster_faces.py wrote (montages, person folders) are passed over and
    listed in ``outputs``.  The result is
    sorted, so every run sees the photos in the same order.
    """
    listing = Listing(root=root)
    seen_dirs: set[tuple[int, int]] = set()

    def walk_error(error: OSError) -> None:
        listing.skipped.append(_skip(error.filename or root, skipped_for_oserror(error)))

    for folder, dirnames, filenames in os.walk(root, followlinks=True, onerror=walk_error):
        try:
            info = os.stat(folder)
        except OSError as error:
            listing.skipped.append(_skip(folder, skipped_for_oserror(error)))
            dirnames[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen_dirs:  # a symlink back up the tree
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        if folder != root and _is_our_output(folder):  # montages and person folders are not new photos
            listing.outputs.append(folder)
            dirnames[:] = []
            continue
        dirnames.sort()
        for name in dirnames:
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                # Named like a photo but a folder: say so, and look inside it.
                listing.skipped.append(Skip(os.path.join(folder, name), "folder", "a folder, not an image (searched inside)"))
        for name in filenames:
            path = os.path.join(folder, name)
            try:
                verdict = classify_file(path)
            except ImageSkipped as skipped:
                listing.skipped.append(_skip(path, skipped))
                continue
            if verdict == "ignore":
                listing.ignored += not name.startswith(".")  # hidden files are nobody's photos
            elif verdict == "video":
                listing.videos.append(path)
            else:
                listing.images.append(path)
    listing.images.sort()
    listing.videos.sort()
    listing.skipped.sort()
    return listing


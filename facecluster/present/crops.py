"""Faces cut out of their photos (or video frames) for tiles, thumbnails and stills.

:class:`PhotoReader` decodes each photo once and remembers the ones that can no
longer be read; :func:`face_crop` cuts one face out; :func:`placeholder_tile`
stands in for a face that cannot be shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import cv2
import numpy as np
from ..records import Box, FaceRecord, clip_box, is_from_video, scale_box
from ..sources.images import LoadedImage, load_image
from ..sources.skips import ImageSkipped
from ..sources.video import video_frames
from .clusters import warn_about_photos

# Mid-gray stands in for a face that cannot be shown; it differs from the
# black that build_montages pads an unfilled grid with.
PLACEHOLDER_GRAY = 128


class PhotoReader:
    """Decodes the photos that montages and the gallery crop faces from.

    Photos that cannot be read any more (moved or broken since they were
    encoded) are remembered, so :meth:`report` can say so once for the whole
    run instead of once per face.
    """

    def __init__(self) -> None:
        self.unreadable: dict[str, str] = {}  # path -> reason

    def photos_of(self, records: Sequence[FaceRecord], indices: Iterable[int]) -> Iterator[tuple[int, LoadedImage | None]]:
        """Yield ``(record index, its decoded photo or None)`` for ``indices``, decoding each photo once.

        A face from a video gets its frame (``time``); each video is decoded
        in one pass, a frame at a time.
        """
        by_path: dict[str, list[int]] = {}
        for index in indices:
            by_path.setdefault(records[index]["imagePath"], []).append(int(index))
        for path, faces in by_path.items():
            if any(is_from_video(records[index]) for index in faces):
                yield from self._frames_of(path, records, faces)
                continue
            image = None
            if path not in self.unreadable:
                try:
                    image = load_image(path)
                except ImageSkipped as skipped:
                    self.unreadable[path] = str(skipped)
            for index in faces:
                yield index, image

    def _frames_of(self, path: str, records: Sequence[FaceRecord], faces: list[int]) -> Iterator[tuple[int, LoadedImage | None]]:
        """The frames of one video's faces, in time order; ``None`` for all when the video can't be read."""
        by_time: dict[float, list[int]] = {}
        for index in faces:
            by_time.setdefault(float(records[index].get("time", 0.0)), []).append(index)
        if path not in self.unreadable:
            try:
                for time, image in video_frames(path, sorted(by_time)):
                    yield from ((index, image) for index in by_time.pop(time))
            except ImageSkipped as skipped:
                self.unreadable[path] = str(skipped)
        yield from ((index, None) for left in by_time.values() for index in left)

    def report(self) -> None:
        """Log one warning naming the photos that could not be shown (if any)."""
        warn_about_photos("cannot show faces from photos that moved or broke since they were encoded",
                          sorted(self.unreadable))


def placeholder_tile(size: int) -> np.ndarray:
    """A ``size`` x ``size`` gray BGR tile for a face that cannot be cropped."""
    return np.full((size, size, 3), PLACEHOLDER_GRAY, dtype=np.uint8)


def face_crop(image: LoadedImage, box: Box, size: int, margin: float = 0.0, square: bool = False) -> np.ndarray:
    """Crop one face out of a loaded photo as a BGR image whose longest side is ``size``.

    ``box`` is ``(top, right, bottom, left)`` in original-photo pixels; it is
    widened by ``margin`` (a fraction of its size) on each side, made square
    around its middle when ``square``, mapped onto ``image.rgb`` (which may be
    a reduced copy) and clipped to the picture.  Without ``square`` the crop
    is stretched to ``size`` x ``size`` (the montage tiles).  A box with no
    area inside the picture, or not four numbers, gives a gray tile.
    """
    try:
        top, right, bottom, left = scale_box(tuple(int(v) for v in box), image.scale)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # not four numbers: a damaged record
        return placeholder_tile(size)
    if square:
        half = max(bottom - top, right - left) * (0.5 + margin)
        middle_y, middle_x = (top + bottom) / 2, (left + right) / 2
        top, right, bottom, left = (int(middle_y - half), int(middle_x + half), int(middle_y + half), int(middle_x - half))
    height, width = image.rgb.shape[:2]
    top, right, bottom, left = clip_box((top, right, bottom, left), width, height)
    if bottom - top < 1 or right - left < 1:
        return placeholder_tile(size)
    crop = cv2.cvtColor(image.rgb[top:bottom, left:right], cv2.COLOR_RGB2BGR)
    factor = size / max(crop.shape[:2])
    new_size = (size, size) if not square else (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    # INTER_AREA averages when shrinking (no aliasing); tiny crops grow smoothly.
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(crop, new_size, interpolation=interpolation)


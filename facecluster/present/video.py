"""Faces from videos, for the present wing: their frames, their appearances, stills and clip links.

A record from a video carries ``time`` (seconds) and ``frame`` beside the
video's path (see :mod:`facecluster.records`).  Here:

- :func:`video_frames` decodes the frames the tiles and thumbnails are cut
  from, one pass per video, one frame at a time (memory stays flat however
  many faces a video gave);
- :func:`appearances` groups a person's video faces into moments on screen
  (clip, from, to) for the gallery's timeline and the person folders' stills;
- :func:`clip_href` is a link that plays the clip from a moment (``#t=``).
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..files import fit_name
from ..records import FaceRecord, is_from_video
from ..sources.skips import ImageSkipped, display_path
from ..sources.video import video_frames

# Faces of one person in one video less than this many seconds apart are one appearance.
APPEARANCE_GAP = 5.0


def source_noun(records: Sequence[FaceRecord], indices: Iterable[int]) -> str:
    """What the faces ``indices`` come from, in a word: ``"photo"``, ``"video"`` or ``"photo/video"``."""
    kinds = {is_from_video(records[index]) for index in indices}
    return {frozenset({True}): "video", frozenset({True, False}): "photo/video"}.get(frozenset(kinds), "photo")


@dataclass(frozen=True)
class Appearance:
    """One stretch of one video in which a person was seen: ``start`` to ``end`` seconds."""

    path: str
    start: float
    end: float
    faces: tuple[int, ...]  # record indices, in time order


def appearances(records: Sequence[FaceRecord], indices: Sequence[int], gap: float = APPEARANCE_GAP) -> list[Appearance]:
    """The person's appearances in videos (by video, then time) among the faces ``indices``."""
    by_video: dict[str, list[int]] = {}
    for index in indices:
        if is_from_video(records[index]):
            by_video.setdefault(records[index]["imagePath"], []).append(int(index))
    found = []
    for path in sorted(by_video):
        run: list[int] = []
        for index in sorted(by_video[path], key=lambda i: records[i]["time"]):  # type: ignore[typeddict-item]
            if run and records[index]["time"] - records[run[-1]]["time"] > gap:  # type: ignore[typeddict-item]
                found.append(_appearance(records, path, run))
                run = []
            run.append(index)
        found.append(_appearance(records, path, run))
    return found


def _appearance(records: Sequence[FaceRecord], path: str, run: list[int]) -> Appearance:
    times = [records[i]["time"] for i in run]  # type: ignore[typeddict-item]
    return Appearance(path, min(times), max(times), tuple(run))


def clip_href(href: str, time: float) -> str:
    """A link to the clip at ``href`` that starts playing at ``time`` seconds (a media fragment)."""
    return f"{href}#t={max(0.0, time):.2f}"


def clock(seconds: float) -> str:
    """``75.4`` -> ``"1:15"``; an hour or more -> ``"1:02:03"``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def timeline_html(found: list[Appearance], href_of) -> str:
    """The gallery's list of a person's moments in videos: clip name, from–to, each playing from its start.

    ``href_of(path)`` gives the clip's link from the page.  Empty without appearances.
    """
    if not found:
        return ""
    items = []
    for seen in found:
        name = html.escape(os.path.basename(display_path(seen.path)))
        span = clock(seen.start) if seen.end - seen.start < 1 else f"{clock(seen.start)}&ndash;{clock(seen.end)}"
        link = html.escape(clip_href(href_of(seen.path), seen.start))
        items.append(f'<li><a href="{link}" title="play from {clock(seen.start)}">{name} <span>{span}</span></a></li>')
    return '<ol class="timeline" aria-label="In videos">\n' + "\n".join(items) + "\n</ol>\n"


def still_name(path: str, time: float) -> str:
    """File name of a still from ``path`` at ``time`` in a person folder: ``clip.mp4 at 0m12.5s.jpg``."""
    minutes, seconds = divmod(time, 60)
    return fit_name(f"{os.path.basename(path)} at {int(minutes)}m{seconds:04.1f}s.jpg", f"{path} {time}")


def write_stills(folder: str, folder_name: str, records: Sequence[FaceRecord], indices: Sequence[int],
                 placed: set[str]) -> tuple[int, list[str]]:
    """Put a still of each of the person's appearances in videos into ``folder``.

    The still is the frame of the appearance's middle face; one already there
    is kept.  Adds ``"folder_name/still name"`` to ``placed`` for each.
    Returns how many stills are in place and the videos that could not be read.
    """
    import cv2

    from ..files import write_image  # (montage -> clusters -> this module)

    count, unreadable = 0, []
    for path, times in _still_times(records, appearances(records, indices)).items():
        names = {time: still_name(path, time) for time in times}
        missing = [time for time in times if not os.path.isfile(os.path.join(folder, names[time]))]
        try:
            for time, image in video_frames(path, missing) if missing else ():
                if image is not None:
                    write_image(os.path.join(folder, names[time]), cv2.cvtColor(image.rgb, cv2.COLOR_RGB2BGR))
        except ImageSkipped:
            unreadable.append(path)
        for name in names.values():
            if os.path.isfile(os.path.join(folder, name)):
                placed.add(f"{folder_name}/{name}")
                count += 1
    return count, unreadable


def _still_times(records: Sequence[FaceRecord], found: list[Appearance]) -> dict[str, list[float]]:
    """Per video, the time of each appearance's middle face (sorted): where its still is taken."""
    times: dict[str, list[float]] = {}
    for seen in found:
        times.setdefault(seen.path, []).append(float(records[seen.faces[len(seen.faces) // 2]]["time"]))  # type: ignore[typeddict-item]
    return {path: sorted(set(found_times)) for path, found_times in times.items()}

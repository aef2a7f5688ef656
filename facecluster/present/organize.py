"""Person folders: each person's photos in ``person_00/``, ``person_01/`` ... and ``unknown/``.

A named person's folder carries the name: ``person_03_Ada_Lovelace/``.

A photo of two people is in both folders; photos that share a file name are
told apart.  Re-running into the same folder updates it in place and removes
only what an earlier run placed there (listed in a manifest).
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..files import fit_name, open_regular, replace_atomically, write_text_atomically
from ..records import FaceRecord, is_from_video
from ..sources.folder import is_photo_or_video
from ..sources.skips import display_path
from .clusters import Clusters, json_text, plural, warn_about_photos
from .video import write_stills

log = logging.getLogger(__name__)

# organize() remembers what it placed here, so a re-run can tidy up after itself.
ORGANIZE_MANIFEST = ".facecluster-organize.json"


@dataclass
class Organized:
    """What :func:`organize` did."""

    mode: str  # "copy" or "link": what was actually made (link falls back to copy)
    folders: dict[int, str] = field(default_factory=dict)  # label -> folder
    placed: int = 0  # files now in the folders (new or already up to date)
    missing: list[str] = field(default_factory=list)  # photos that were not there any more
    not_media: list[str] = field(default_factory=list)  # records whose file is not a photo or video: never copied
    failed: list[str] = field(default_factory=list)  # "photo: reason" for those that could not be placed


def _plan_names(sources: Iterable[str]) -> dict[str, str]:
    """Give each photo of one folder a file name no other photo there has.

    Photos keep their own name (cut short, with a digest of the path, where
    it would not fit in 255 bytes) unless another photo of the folder has the
    same one (``a/img.jpg`` and ``b/img.jpg``); those become ``img (a).jpg``
    and ``img (b).jpg``.  Names are compared case-insensitively, since the
    output may sit on a case-insensitive disk.  Deterministic: the same
    photos always get the same names, so a re-run finds its own files.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for source in sorted(set(sources)):
        groups[fit_name(os.path.basename(source), source).casefold()].append(source)
    taken = {key for key, group in groups.items() if len(group) == 1}
    names: dict[str, str] = {}
    for key in sorted(groups):
        group = groups[key]
        if len(group) == 1:
            names[group[0]] = fit_name(os.path.basename(group[0]), group[0])
            continue
        for source in group:
            stem, extension = os.path.splitext(os.path.basename(source))
            parent = os.path.basename(os.path.dirname(source)) or "root"
            candidate, number = fit_name(f"{stem} ({parent}){extension}", source), 2
            while candidate.casefold() in taken:
                candidate, number = fit_name(f"{stem} ({parent} {number}){extension}", f"{source} {number}"), number + 1
            taken.add(candidate.casefold())
            names[source] = candidate
    return names


def _same_copy(source: str, target: str) -> bool:
    """Whether ``target`` is already a plain-file copy of ``source`` (copy2 keeps mtime)."""
    try:
        if os.path.islink(target):
            return False
        a, b = os.stat(source), os.stat(target)
    except OSError:
        return False
    return a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime)


def _same_link(source: str, target: str) -> bool:
    try:
        return os.path.islink(target) and os.readlink(target) == source
    except OSError:
        return False


# What os.symlink raises where the disk or the system has no symlinks (Windows without the
# privilege, FAT/exFAT, some network disks); any other error is that file's own trouble.
_NO_SYMLINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS)


def _place(source: str, target: str, mode: str) -> str:
    """Put ``source`` at ``target`` as a copy or symlink; returns the mode used.

    Made under a unique temporary name and renamed over ``target``, so an
    existing entry is replaced in one step and never left half-written.
    Falls back to a copy only where symlinks can't be made at all; other
    errors (``OSError``) are raised for the caller to report.
    """
    if mode == "link":
        try:
            replace_atomically(target, lambda temporary: os.symlink(source, temporary))
            return "link"
        except NotImplementedError as error:
            log.warning("cannot make symlinks in %s (%s): copying instead", display_path(os.path.dirname(target)), error)
        except OSError as error:
            if error.errno not in _NO_SYMLINKS:
                raise
            log.warning("cannot make symlinks in %s (%s): copying instead", display_path(os.path.dirname(target)),
                        error.strerror)
    replace_atomically(target, lambda temporary: shutil.copy2(source, temporary))
    return "copy"


def _is_placed_name(relative: str) -> bool:
    """Whether a manifest entry has the shape organize() writes (``person_03/x.jpg``).

    A damaged or edited manifest must never make a re-run delete anything
    outside the person folders.
    """
    parts = relative.split("/")
    return (
        len(parts) == 2
        and re.fullmatch(r"person_\d+(_[^/\\.]+)?|unknown", parts[0]) is not None
        and parts[1] not in ("", ".", "..")
        and "\\" not in parts[1]
    )


def _read_manifest(path: str) -> set[str]:
    try:
        with io.TextIOWrapper(open_regular(path), encoding="utf-8") as handle:
            return {entry for entry in json.load(handle).get("files", []) if isinstance(entry, str)}
    except (OSError, ValueError, AttributeError, TypeError):
        return set()


def organize(
    out_dir: str | os.PathLike,
    records: Sequence[FaceRecord],
    clusters: Clusters,
    mode: Literal["copy", "link"] = "copy",
) -> Organized:
    """Sort the photos into a folder per person: ``person_00/`` ... ``unknown/``.

    A photo with several people goes into each of their folders; photos that
    share a file name are told apart (see :func:`_plan_names`).  ``"link"``
    makes symlinks to the originals and falls back to copies where the disk
    cannot hold symlinks.

    Re-running into the same ``out_dir`` is safe: files already in place are
    left alone, changed ones replaced, and files that this function placed
    last time but no longer belong (the clusters changed) are removed.
    Nothing else in ``out_dir`` is touched.
    """
    if mode not in ("copy", "link"):
        raise ValueError(f"mode must be 'copy' or 'link', not {mode!r}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, ORGANIZE_MANIFEST)
    previous = _read_manifest(manifest_path)

    result = Organized(mode=mode)
    current: set[str] = set()
    for label in clusters.order:
        # Absolute targets: links keep working wherever out_dir is opened from.
        members = clusters.members(label).tolist()
        sources = {os.path.abspath(records[i]["imagePath"]) for i in members if not is_from_video(records[i])}
        result.folders[label] = _fill_folder(out_dir, clusters.dirname(label), sources, result, current)
        stills, unreadable = write_stills(result.folders[label], clusters.dirname(label), records, members, current)
        result.placed += stills  # a still of each appearance in a video
        result.missing.extend(unreadable)
    _remove_stale(out_dir, previous - current)
    result.missing = sorted(set(result.missing))
    warn_about_photos("photos not found, not organized", result.missing)
    warn_about_photos("files that are not photos or videos, not organized", sorted(set(result.not_media)))
    if result.failed:
        log.warning("could not place %s in the person folders: %s%s", plural(len(result.failed), "photo"),
                    result.failed[0], f" and {len(result.failed) - 1:,} more" if len(result.failed) > 1 else "")
    write_text_atomically(manifest_path, json_text({"version": 1, "mode": result.mode, "files": sorted(current)}) + "\n")
    return result


def _fill_folder(out_dir: str, folder_name: str, sources: set[str], result: Organized, current: set[str]) -> str:
    """Place ``sources`` in ``out_dir/folder_name``; returns the folder.

    Updates ``result`` (mode, placed, missing) and adds each entry that now
    belongs there to ``current`` (``"person_03/name.jpg"``).
    """
    folder = os.path.join(out_dir, folder_name)
    os.makedirs(folder, exist_ok=True)
    for source, name in sorted(_plan_names(sources).items()):
        target = os.path.join(folder, name)
        relative = f"{folder_name}/{name}"
        if not os.path.isfile(source):
            result.missing.append(source)
            if os.path.lexists(target):  # a copy may be all that is left: keep it
                current.add(relative)
            continue
        up_to_date = _same_link(source, target) if result.mode == "link" else _same_copy(source, target)
        if not up_to_date and not is_photo_or_video(source):  # a crafted record: /etc/passwd is never copied
            result.not_media.append(source)
            continue
        current.add(relative)
        if not up_to_date:
            try:
                result.mode = _place(source, target, result.mode)
            except OSError as error:  # this photo's own trouble (a full disk is every photo's): the rest go on
                result.failed.append(f"{display_path(source)}: {error.strerror or error}")
                current.discard(relative)
                continue
        result.placed += 1
    return folder


def _remove_stale(out_dir: str, stale_entries: set[str]) -> None:
    """Remove what an earlier run placed (``"person_03/name.jpg"``) and this one did not, and emptied folders."""
    stale = [relative for relative in sorted(stale_entries) if _is_placed_name(relative)]
    for relative in stale:
        target = os.path.join(out_dir, *relative.split("/"))
        if os.path.islink(target) or os.path.isfile(target):
            os.unlink(target)
    for folder_name in sorted({relative.split("/")[0] for relative in stale}):
        try:
            os.rmdir(os.path.join(out_dir, folder_name))  # only if now empty
        except OSError:
            pass

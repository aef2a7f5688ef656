"""The files people browse after clustering, all written into one output folder.

- ``clusters.csv``: one row per face, ``image,top,right,bottom,left,label``
- ``clusters.json``: per person, their faces and counts
- ``person_00/``, ``person_01/`` ..., ``unknown/``: each person's photos
- ``index.html`` with ``thumbs/``: a static gallery that opens from ``file://``

Labels are a numpy int array aligned with the records, -1 marking the faces
that belong to no cluster.  Photo paths are stored as found on disk and may
not be valid UTF-8; every writer here either keeps their exact bytes or
shows a readable form, never crashes on them.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import os
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import cv2
import numpy as np
from PIL import Image

from .images import LoadedImage, display_path
from .montage import (
    TILE_SIZE,
    UNKNOWN_LABEL,
    montage_filename,
    montage_title,
    ordered_labels,
    photos_of,
    placeholder_tile,
    write_image,
)
from .records import Box, FaceRecord, clip_box, scale_box

log = logging.getLogger(__name__)

CSV_HEADER = ("image", "top", "right", "bottom", "left", "label")
THUMBS_DIR = "thumbs"
THUMB_SIZE = 128  # longest side of a gallery thumbnail, in pixels
THUMB_MARGIN = 0.25  # context kept around a face, as a fraction of its box
# organize() remembers what it placed here, so a re-run can tidy up after itself.
ORGANIZE_MANIFEST = ".facecluster-organize.json"

PathLike = str | os.PathLike


# --------------------------------------------------------------------------
# Small shared helpers


def _check_aligned(records: Sequence[FaceRecord], labels) -> np.ndarray:
    """``labels`` as a 1-d int array, after checking it matches ``records``."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(records):
        raise ValueError(f"{len(labels)} labels for {len(records)} records")
    return labels.astype(np.int64, copy=False)


def person_dirname(label: int) -> str:
    """Folder (and HTML anchor) name of a cluster: ``person_03``, or ``unknown``."""
    return "unknown" if int(label) == UNKNOWN_LABEL else f"person_{int(label):02d}"


def _json_default(value):
    """Let ``json`` write numpy scalars/arrays and paths."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(document) -> str:
    """JSON text that stays valid UTF-8 even for paths that are not.

    ``ensure_ascii=False`` keeps ordinary names readable; the lone surrogates
    that stand for undecodable bytes (``os.fsdecode``) are written as
    ``\\udcXX`` escapes, which ``json.loads`` turns back into the same path.
    """
    text = json.dumps(document, ensure_ascii=False, indent=2, default=_json_default)
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def _write_text(path: PathLike, text: str, errors: str = "strict") -> None:
    """Write UTF-8 text atomically: a reader never sees half a file."""
    path = os.fspath(path)
    temporary = path + ".part"
    with open(temporary, "w", encoding="utf-8", errors=errors, newline="") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _box(record: FaceRecord) -> Box:
    return tuple(int(v) for v in record["loc"])  # type: ignore[return-value]


# --------------------------------------------------------------------------
# CSV and JSON


def write_clusters_csv(path: PathLike, records: Sequence[FaceRecord], labels) -> None:
    """Write one row per face: ``image,top,right,bottom,left,label``.

    ``image`` is the record's ``imagePath`` exactly; a name that is not valid
    UTF-8 keeps its original bytes (``surrogateescape``), so reading the file
    back with ``errors="surrogateescape"`` gives a path that opens.
    """
    labels = _check_aligned(records, labels)
    path = os.fspath(path)
    temporary = path + ".part"
    with open(temporary, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for record, label in zip(records, labels):
            writer.writerow([record["imagePath"], *_box(record), int(label)])
    os.replace(temporary, path)


def cluster_summary(records: Sequence[FaceRecord], labels) -> dict:
    """Per-person faces and counts, as plain JSON-ready data.

    Returns ``{"counts": {...}, "clusters": [{"label", "name", "title",
    "faces", "images", "members": [{"image", "box"}, ...]}, ...]}`` with
    people in label order and the unknown faces (label -1) last.
    """
    labels = _check_aligned(records, labels)
    clusters = []
    for label in ordered_labels(labels):
        members = [
            {"image": records[i]["imagePath"], "box": list(_box(records[i]))}
            for i in np.flatnonzero(labels == label)
        ]
        clusters.append(
            {
                "label": label,
                "name": person_dirname(label),
                "title": montage_title(label),
                "faces": len(members),
                "images": len({member["image"] for member in members}),
                "members": members,
            }
        )
    counts = {
        "faces": len(records),
        "images": len({record["imagePath"] for record in records}),
        "people": sum(1 for cluster in clusters if cluster["label"] != UNKNOWN_LABEL),
        "unknown_faces": int(np.count_nonzero(labels == UNKNOWN_LABEL)),
    }
    return {"counts": counts, "clusters": clusters}


def write_clusters_json(path: PathLike, records: Sequence[FaceRecord], labels, extra: Mapping | None = None) -> None:
    """Write the clusters as JSON: ``{"run": extra, "counts": ..., "clusters": [...]}``.

    ``extra`` (e.g. the method and parameters used) is stored as given under
    ``"run"``; see :func:`cluster_summary` for the rest.  Encodings are not
    included.  Undecodable path bytes survive as ``\\udcXX`` escapes.
    """
    document = {"run": dict(extra or {}), **cluster_summary(records, labels)}
    _write_text(path, _dumps(document))


# --------------------------------------------------------------------------
# Per-person folders


@dataclass
class Organized:
    """What :func:`organize` did."""

    mode: str  # "copy" or "link": what was actually made (link falls back to copy)
    folders: dict[int, str] = field(default_factory=dict)  # label -> folder
    placed: int = 0  # files now in the folders (new or already up to date)
    missing: list[str] = field(default_factory=list)  # photos that were not there any more


def _plan_names(sources: Iterable[str]) -> dict[str, str]:
    """Give each photo of one folder a file name no other photo there has.

    Photos keep their own name unless another photo of the folder has the
    same one (``a/img.jpg`` and ``b/img.jpg``); those become ``img (a).jpg``
    and ``img (b).jpg``.  Names are compared case-insensitively, since the
    output may sit on a case-insensitive disk.  Deterministic: the same
    photos always get the same names, so a re-run finds its own files.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for source in sorted(set(sources)):
        groups[os.path.basename(source).casefold()].append(source)
    taken = {key for key, group in groups.items() if len(group) == 1}
    names: dict[str, str] = {}
    for key in sorted(groups):
        group = groups[key]
        if len(group) == 1:
            names[group[0]] = os.path.basename(group[0])
            continue
        for source in group:
            stem, extension = os.path.splitext(os.path.basename(source))
            parent = os.path.basename(os.path.dirname(source)) or "root"
            candidate, number = f"{stem} ({parent}){extension}", 2
            while candidate.casefold() in taken:
                candidate, number = f"{stem} ({parent} {number}){extension}", number + 1
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


def _place(source: str, target: str, mode: str) -> str:
    """Put ``source`` at ``target`` as a copy or symlink; returns the mode used.

    Made under a temporary name and renamed over ``target``, so an existing
    entry is replaced in one step and never left half-written.
    """
    temporary = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.part")
    if os.path.lexists(temporary):
        os.unlink(temporary)
    if mode == "link":
        try:
            os.symlink(source, temporary)
            os.replace(temporary, target)
            return "link"
        except (OSError, NotImplementedError) as error:
            # e.g. Windows without the privilege, FAT/exFAT, some network disks
            log.warning("cannot make symlinks in %s (%s): copying instead", display_path(os.path.dirname(target)), error)
            if os.path.lexists(temporary):
                os.unlink(temporary)
    shutil.copy2(source, temporary)
    os.replace(temporary, target)
    return "copy"


def _is_placed_name(relative: str) -> bool:
    """Whether a manifest entry has the shape organize() writes (``person_03/x.jpg``).

    A damaged or edited manifest must never make a re-run delete anything
    outside the person folders.
    """
    parts = relative.split("/")
    return (
        len(parts) == 2
        and re.fullmatch(r"person_\d+|unknown", parts[0]) is not None
        and parts[1] not in ("", ".", "..")
        and "\\" not in parts[1]
    )


def _read_manifest(path: str) -> set[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return {entry for entry in json.load(handle).get("files", []) if isinstance(entry, str)}
    except (OSError, ValueError, AttributeError, TypeError):
        return set()


def organize(
    out_dir: PathLike,
    records: Sequence[FaceRecord],
    labels,
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
    labels = _check_aligned(records, labels)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, ORGANIZE_MANIFEST)
    previous = _read_manifest(manifest_path)

    result = Organized(mode=mode)
    current: set[str] = set()
    for label in ordered_labels(labels):
        folder_name = person_dirname(label)
        folder = os.path.join(out_dir, folder_name)
        os.makedirs(folder, exist_ok=True)
        result.folders[label] = folder
        # Absolute targets: links keep working wherever out_dir is opened from.
        sources = {os.path.abspath(records[i]["imagePath"]) for i in np.flatnonzero(labels == label)}
        for source, name in sorted(_plan_names(sources).items()):
            target = os.path.join(folder, name)
            relative = f"{folder_name}/{name}"
            if not os.path.isfile(source):
                result.missing.append(source)
                if os.path.lexists(target):  # a copy may be all that is left: keep it
                    current.add(relative)
                continue
            current.add(relative)
            up_to_date = _same_link(source, target) if result.mode == "link" else _same_copy(source, target)
            if not up_to_date:
                result.mode = _place(source, target, result.mode)
            result.placed += 1

    stale = [relative for relative in sorted(previous - current) if _is_placed_name(relative)]
    for relative in stale:  # ours from last time, not wanted now
        target = os.path.join(out_dir, *relative.split("/"))
        if os.path.islink(target) or os.path.isfile(target):
            os.unlink(target)
    for folder_name in sorted({relative.split("/")[0] for relative in stale}):
        try:
            os.rmdir(os.path.join(out_dir, folder_name))  # only if now empty
        except OSError:
            pass
    result.missing = sorted(set(result.missing))
    for source in result.missing:
        log.warning("photo not found, not organized: %s", display_path(source))
    _write_text(manifest_path, _dumps({"version": 1, "mode": result.mode, "files": sorted(current)}))
    return result


# --------------------------------------------------------------------------
# HTML gallery


def face_thumbnail(image: LoadedImage, box: Box, size: int = THUMB_SIZE, margin: float = THUMB_MARGIN) -> np.ndarray:
    """A small BGR crop of one face with some context around it.

    The box is widened by ``margin`` on each side and made square, then
    clipped to the photo; the longest side of the result is ``size``.
    A box with nothing inside the photo gives a gray square.
    """
    try:
        top, right, bottom, left = scale_box(tuple(int(v) for v in box), image.scale)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # not four numbers: a damaged record
        return placeholder_tile(size)
    half = max(bottom - top, right - left) * (0.5 + margin)
    middle_y, middle_x = (top + bottom) / 2, (left + right) / 2
    square = (int(middle_y - half), int(middle_x + half), int(middle_y + half), int(middle_x - half))
    height, width = image.rgb.shape[:2]
    top, right, bottom, left = clip_box(square, width, height)
    if bottom - top < 1 or right - left < 1 or half <= 0:
        return placeholder_tile(size)
    crop = cv2.cvtColor(image.rgb[top:bottom, left:right], cv2.COLOR_RGB2BGR)
    factor = size / max(crop.shape[:2])
    new_size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(crop, new_size, interpolation=interpolation)


def _write_thumbnails(out_dir: str, records: Sequence[FaceRecord]) -> dict[int, str]:
    """Write ``thumbs/face_00000.jpg`` ... for every record; decode each photo once.

    Returns ``{record index: path relative to out_dir}``.  Faces whose photo
    cannot be read get a gray thumbnail, so the page has no broken images.
    Thumbnails left from an earlier, larger run are removed.
    """
    thumbs = os.path.join(out_dir, THUMBS_DIR)
    os.makedirs(thumbs, exist_ok=True)
    written: dict[int, str] = {}
    for index, image in photos_of(records, range(len(records))):
        name = f"face_{index:05d}.jpg"
        tile = placeholder_tile(THUMB_SIZE) if image is None else face_thumbnail(image, records[index]["loc"])
        write_image(os.path.join(thumbs, name), tile, quality=85)
        written[index] = f"{THUMBS_DIR}/{name}"
    wanted = {os.path.basename(relative) for relative in written.values()}
    for name in os.listdir(thumbs):
        if re.fullmatch(r"face_\d+\.jpg", name) and name not in wanted:
            os.unlink(os.path.join(thumbs, name))
    return written


def _href(target: str, out_dir: str) -> str:
    """A URL for ``target`` that works from ``out_dir/index.html`` opened as ``file://``.

    Relative when possible (the page keeps working when the folders move
    together, and over HTTP); an absolute ``file://`` URL otherwise (another
    drive on Windows).  Raw bytes are percent-encoded, so undecodable names
    still resolve to the right file.
    """
    target = os.path.abspath(target)
    try:
        relative = os.path.relpath(target, os.path.abspath(out_dir))
    except ValueError:
        return Path(target).as_uri()
    return quote(os.fsencode(relative.replace(os.sep, "/")), safe="/")


def _montage_map(montage_files) -> dict[int, str]:
    """Montage paths by label, from a ``{label: path}`` mapping or a list of paths
    named by :func:`montage_filename`."""
    if isinstance(montage_files, Mapping):
        return {int(label): os.fspath(path) for label, path in montage_files.items()}
    mapped = {}
    for path in montage_files or ():
        name = os.path.basename(os.fspath(path))
        match = re.fullmatch(r"face_id_(\d+)\.jpg", name)
        if match:
            mapped[int(match.group(1))] = os.fspath(path)
        elif name == montage_filename(UNKNOWN_LABEL):
            mapped[UNKNOWN_LABEL] = os.fspath(path)
    return mapped


MONTAGE_WIDTH = 240  # CSS pixels a montage is shown at in the gallery


def _montage_height(path: str, faces: int) -> int:
    """Shown height of a montage cropped to its filled rows of tiles.

    A small cluster fills only the montage's first row(s); the rest is black
    padding, which the page leaves out (the link still opens the whole file).
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError):
        return MONTAGE_WIDTH
    columns = max(1, width // TILE_SIZE)
    rows = max(1, height // TILE_SIZE)
    used = min(rows, max(1, -(-faces // columns)))
    return round(MONTAGE_WIDTH * (height * used / rows) / width)


_CSS = """
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --card: #ffffff; --text: #1d2330; --muted: #5f6b7a;
  --line: #dfe3e8; --accent: #2f6fdf;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #16181d; --card: #1f232a; --text: #e7eaf0; --muted: #9aa4b2;
          --line: #2f353f; --accent: #7aa7ff; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { padding: 28px 32px 8px; }
h1 { margin: 0 0 4px; font-size: 26px; font-weight: 650; }
.summary { margin: 0; color: var(--muted); }
nav { padding: 8px 32px 4px; display: flex; flex-wrap: wrap; gap: 8px; }
nav a { padding: 3px 11px; border: 1px solid var(--line); border-radius: 999px; background: var(--card);
        color: var(--text); text-decoration: none; font-size: 13px; white-space: nowrap; }
nav a:hover { border-color: var(--accent); color: var(--accent); }
main { padding: 12px 32px 40px; display: grid; gap: 20px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 18px 20px;
          scroll-margin-top: 12px; }
section h2 { margin: 0; font-size: 19px; }
.meta { margin: 2px 0 14px; color: var(--muted); font-size: 13px; }
.meta a { color: var(--accent); }
.body { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
.body > a { flex: none; line-height: 0; }
.montage { width: 240px; object-fit: cover; object-position: top; border-radius: 8px;
           border: 1px solid var(--line); background: #000; }
.faces { display: flex; flex-wrap: wrap; gap: 6px; flex: 1 1 320px; align-content: flex-start; }
.faces a { display: block; line-height: 0; border-radius: 6px; outline-offset: 2px; }
.faces img { width: 72px; height: 72px; object-fit: cover; border-radius: 6px; background: var(--line); }
.faces a:hover img, .faces a:focus img { box-shadow: 0 0 0 2px var(--accent); }
footer { padding: 0 32px 28px; color: var(--muted); font-size: 12px; }
"""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def write_gallery(
    out_dir: PathLike,
    records: Sequence[FaceRecord],
    labels,
    montage_files: Mapping[int, PathLike] | Iterable[PathLike] | None = None,
    title: str = "Face clusters",
) -> str:
    """Write ``out_dir/index.html``: one section per person, Unknown Faces last.

    Each section shows the montage (from ``montage_files``: ``{label: path}``
    or paths named by :func:`montage_filename`), the face count, and a
    thumbnail per face (written to ``out_dir/thumbs/``) linking to its photo.
    The page is static -- no scripts, no external resources -- and uses only
    relative links, so it opens straight from disk.  Returns its path.
    """
    labels = _check_aligned(records, labels)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    thumbs = _write_thumbnails(out_dir, records)
    montages = _montage_map(montage_files)
    summary = cluster_summary(records, labels)["counts"]
    esc = html.escape  # quote=True: safe inside attribute values too

    nav, sections = [], []
    for label in ordered_labels(labels):
        anchor, heading = person_dirname(label), montage_title(label)
        members = np.flatnonzero(labels == label)
        photos = len({records[i]["imagePath"] for i in members})
        nav.append(f'<a href="#{anchor}">{esc(heading)} <small>({len(members)})</small></a>')
        meta = f"{_plural(len(members), 'face')} in {_plural(photos, 'photo')}"
        if os.path.isdir(os.path.join(out_dir, anchor)):  # organize() made this person's folder
            meta += f' &middot; <a href="{esc(anchor)}/">{esc(anchor)}/</a>'
        montage = ""
        if label in montages and os.path.isfile(montages[label]):
            source = esc(_href(montages[label], out_dir))
            height = _montage_height(montages[label], len(members))
            montage = (
                f'<a href="{source}" title="full montage"><img class="montage" src="{source}" '
                f'alt="{esc(heading)} montage" width="{MONTAGE_WIDTH}" height="{height}"></a>'
            )
        faces = []
        for i in members:
            name = display_path(records[i]["imagePath"])
            link = esc(_href(records[i]["imagePath"], out_dir))
            faces.append(
                f'<a href="{link}" title="{esc(name)}"><img src="{esc(thumbs[int(i)])}" '
                f'alt="face in {esc(os.path.basename(name))}" width="72" height="72" loading="lazy"></a>'
            )
        sections.append(
            f'<section id="{anchor}" aria-labelledby="{anchor}-h">\n'
            f'<h2 id="{anchor}-h">{esc(heading)}</h2>\n'
            f'<p class="meta">{meta}</p>\n'
            f'<div class="body">{montage}\n<div class="faces">\n' + "\n".join(faces) + "\n</div></div>\n</section>"
        )

    people = summary["people"]
    line = (
        f"{_plural(summary['faces'], 'face')} in {_plural(summary['images'], 'photo')}: "
        f"{people} {'person' if people == 1 else 'people'}, {summary['unknown_faces']} unknown"
    )
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{esc(title)}</h1>
<p class="summary">{esc(line)}</p>
</header>
<nav aria-label="People">
{chr(10).join(nav)}
</nav>
<main>
{chr(10).join(sections)}
</main>
<footer>Made by facecluster. Click a face to open its photo.</footer>
</body>
</html>
"""
    path = os.path.join(out_dir, "index.html")
    _write_text(path, page)
    return path

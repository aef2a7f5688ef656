"""The offline HTML gallery: ``index.html`` (and ``page-2.html`` ...) with ``thumbs/``.

One section per cluster, in the presentation order (Unknown Faces first,
then people largest first): its montage, its face and photo counts, a link
to its person folder when there is one, and thumbnails that open the
original photos.  A fixed number of people per page, with page links, and a
capped number of thumbnails per person, so the pages stay light at any
scale; thumbnails are made only for what the pages show.  The pages are
static -- no scripts, no external resources, relative links -- so they open
straight from disk.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image
from ..files import write_text_atomically
from ..sources.images import LoadedImage
from ..sources.skips import display_path
from ..records import Box, FaceRecord
from .clusters import Clusters, person_dirname, plural
from .crops import PhotoReader, face_crop, placeholder_tile
from .montage import TILE_SIZE
from ..files import write_image
from .video import appearances, clip_href, clock, source_noun, timeline_html
from ..records import is_from_video

THUMBS_DIR = "thumbs"
THUMB_SIZE = 128  # longest side of a gallery thumbnail, in pixels
THUMB_MARGIN = 0.25  # context kept around a face, as a fraction of its box
UNAVAILABLE_THUMB = "unavailable.jpg"  # one gray thumbnail for every face whose photo is gone
MONTAGE_WIDTH = 240  # CSS pixels a montage is shown at in the gallery
PAGE_LINKS_AROUND = 3  # page links shown either side of the current page


@dataclass(frozen=True)
class GalleryOptions:
    """How much the gallery shows."""

    title: str = "Face clusters"
    people_per_page: int = 24
    thumbs_per_person: int = 60


def write_gallery(
    out_dir: str | os.PathLike,
    records: Sequence[FaceRecord],
    clusters: Clusters,
    shown: Sequence[int],
    montage_files: Mapping[int, str],
    folders: Mapping[int, str],
    reader: PhotoReader,
    options: GalleryOptions = GalleryOptions(),
    twice: Collection[int] = frozenset(),
) -> list[str]:
    """Write the gallery pages for the clusters ``shown`` (labels, in order) into ``out_dir``.

    ``montage_files`` and ``folders`` map labels to a montage image and a
    person folder (either may lack a label).  Photos are read with
    ``reader``.  ``twice``: record indices of faces whose picture shows their
    cluster twice; they are shown first in their section and marked.
    Returns the paths of the pages written, ``index.html`` first.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    per_page = max(1, options.people_per_page)
    pages = [list(shown[start:start + per_page]) for start in range(0, len(shown), per_page)] or [[]]
    faces = {label: _shown_faces(clusters.members(label).tolist(), twice, options.thumbs_per_person) for label in shown}
    thumbs = _write_thumbnails(out_dir, records, [i for label in shown for i in faces[label]], reader)
    summary = _summary(records, clusters, len(shown))
    written = []
    for number, labels in enumerate(pages, 1):
        sections = [
            _section(out_dir, records, clusters, label, faces[label], thumbs, montage_files.get(label), folders.get(label),
                     twice)
            for label in labels
        ]
        page = _page(options.title, summary, labels, clusters, sections, _page_links(number, len(pages)))
        written.append(os.path.join(out_dir, page_name(number)))
        write_text_atomically(written[-1], page)
    _remove_stale_pages(out_dir, len(pages))
    return written


def _shown_faces(members: list[int], twice: Collection[int], count: int) -> list[int]:
    """The first ``count`` faces of a cluster, those in ``twice`` first (so the pages show them)."""
    marked = [i for i in members if i in twice]
    return (marked + [i for i in members if i not in twice])[:count] if marked else members[:count]


def page_name(number: int) -> str:
    """File name of gallery page ``number`` (from 1): ``index.html``, ``page-2.html`` ..."""
    return "index.html" if number == 1 else f"page-{number}.html"


def _remove_stale_pages(out_dir: str, pages: int) -> None:
    """Remove pages an earlier, larger gallery left behind."""
    for name in os.listdir(out_dir):
        match = re.fullmatch(r"page-(\d+)\.html", name)
        if match and int(match.group(1)) > pages:
            os.unlink(os.path.join(out_dir, name))


def _summary(records: Sequence[FaceRecord], clusters: Clusters, shown: int) -> str:
    """The line under the title: counts, and what the pages leave out."""
    people = clusters.people
    line = (f"{plural(len(records), 'face')} in {plural(clusters.photos, source_noun(records, range(len(records))))}: "
            f"{people:,} {'person' if people == 1 else 'people'}, {clusters.unknown_faces:,} unknown")
    if shown < len(clusters.order):
        line += f". Showing the {shown:,} largest of {len(clusters.order):,} clusters; every face is in clusters.csv"
    return line


def face_thumbnail(image: LoadedImage, box: Box, size: int = THUMB_SIZE) -> np.ndarray:
    """A small BGR crop of one face with some context around it (longest side ``size``)."""
    return face_crop(image, box, size, margin=THUMB_MARGIN, square=True)


def _write_thumbnails(out_dir: str, records: Sequence[FaceRecord], indices: list[int], reader: PhotoReader) -> dict[int, str]:
    """Write ``thumbs/face_00000.jpg`` ... for the faces ``indices``; decode each photo once.

    Returns ``{record index: path relative to out_dir}``.  Faces whose photo
    cannot be read share one gray thumbnail, so the pages have no broken
    images.  Thumbnails left from an earlier run are removed.
    """
    os.makedirs(os.path.join(out_dir, THUMBS_DIR), exist_ok=True)
    unavailable = f"{THUMBS_DIR}/{UNAVAILABLE_THUMB}"
    written: dict[int, str] = {}
    for index, image in reader.photos_of(records, indices):
        if image is None:
            written[index] = unavailable
            continue
        written[index] = f"{THUMBS_DIR}/face_{index:05d}.jpg"
        write_image(os.path.join(out_dir, written[index]), face_thumbnail(image, records[index]["loc"]), quality=85)
    wanted = {os.path.basename(relative) for relative in written.values()}
    if UNAVAILABLE_THUMB in wanted:
        write_image(os.path.join(out_dir, unavailable), placeholder_tile(THUMB_SIZE), quality=85)
    for name in os.listdir(os.path.join(out_dir, THUMBS_DIR)):
        if (re.fullmatch(r"face_\d+\.jpg", name) or name == UNAVAILABLE_THUMB) and name not in wanted:
            os.unlink(os.path.join(out_dir, THUMBS_DIR, name))
    return written


def _section(
    out_dir: str,
    records: Sequence[FaceRecord],
    clusters: Clusters,
    label: int,
    faces: list[int],
    thumbs: Mapping[int, str],
    montage: str | None,
    folder: str | None,
    twice: Collection[int] = frozenset(),
) -> str:
    """One cluster's ``<section>``: heading, counts, folder link, montage and thumbnails
    (faces in ``twice`` marked: their picture shows this cluster twice)."""
    esc = html.escape  # quote=True: safe inside attribute values too
    anchor, heading, size = person_dirname(label), clusters.title(label), clusters.size(label)
    noun = source_noun(records, clusters.members(label).tolist())
    meta = f"{plural(size, 'face')} in {plural(clusters.photo_counts[label], noun)}"
    if len(faces) < size:
        meta += f" &middot; the first {len(faces):,} shown"
    repeated = sum(i in twice for i in clusters.members(label).tolist()) if twice and label >= 0 else 0
    if repeated:
        meta += f' &middot; <span class="twice-note">{plural(repeated, "face")} in pictures that show it twice</span>'
    if folder is not None:  # organize() made this person's folder
        meta += f' &middot; <a href="{esc(file_href(folder, out_dir))}/">{esc(os.path.basename(folder))}/</a>'
    picture = ""
    if montage is not None and os.path.isfile(montage):
        source = esc(file_href(montage, out_dir))
        picture = (
            f'<a href="{source}" title="full montage"><img class="montage" src="{source}" '
            f'alt="{esc(heading)} montage" width="{MONTAGE_WIDTH}" height="{_montage_height(montage, size)}"></a>'
        )
    tiles = []
    for i in faces:
        name, href = display_path(records[i]["imagePath"]), file_href(records[i]["imagePath"], out_dir)
        if is_from_video(records[i]):  # plays the clip from the moment the face was seen
            href, name = clip_href(href, records[i]["time"]), f"{name} at {clock(records[i]['time'])}"
        mark = i in twice and label >= 0
        extra, note = (' class="twice"', " (this picture shows this cluster twice)") if mark else ("", "")
        tiles.append(
            f'<a href="{esc(href)}"{extra} title="{esc(name + note)}"><img src="{esc(thumbs[i])}" '
            f'alt="face in {esc(os.path.basename(name))}" width="72" height="72" loading="lazy"></a>'
        )
    return (
        f'<section id="{anchor}" aria-labelledby="{anchor}-h">\n'
        f'<h2 id="{anchor}-h">{esc(heading)}</h2>\n'
        f'<p class="meta">{meta}</p>\n'
        + timeline_html(appearances(records, clusters.members(label).tolist()), lambda path: file_href(path, out_dir)) +
        f'<div class="body">{picture}\n<div class="faces">\n' + "\n".join(tiles) + "\n</div></div>\n</section>"
    )


def _page_links(number: int, pages: int) -> str:
    """The page navigation of page ``number`` of ``pages`` (empty for a single page)."""
    if pages < 2:
        return ""
    links = []
    if number > 1:
        links.append(f'<a href="{page_name(number - 1)}" rel="prev">&larr; Previous</a>')
    near = {1, pages, *range(max(1, number - PAGE_LINKS_AROUND), min(pages, number + PAGE_LINKS_AROUND) + 1)}
    previous = 0
    for page in sorted(near):
        if page > previous + 1:
            links.append("<span>&hellip;</span>")
        links.append(f'<span class="current" aria-current="page">{page}</span>' if page == number
                     else f'<a href="{page_name(page)}">{page}</a>')
        previous = page
    if number < pages:
        links.append(f'<a href="{page_name(number + 1)}" rel="next">Next &rarr;</a>')
    return '<nav class="pages" aria-label="Pages">\n' + "\n".join(links) + "\n</nav>"


def _page(title: str, summary: str, labels: Sequence[int], clusters: Clusters, sections: list[str], pages: str) -> str:
    """One whole HTML page."""
    esc = html.escape
    people = "\n".join(
        f'<a href="#{person_dirname(label)}">{esc(clusters.title(label))} <small>({clusters.size(label):,})</small></a>'
        for label in labels
    )
    return f"""<!doctype html>
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
<p class="summary">{esc(summary)}</p>
</header>
{pages}
<nav class="people" aria-label="People">
{people}
</nav>
<main>
{chr(10).join(sections)}
</main>
{pages}
<footer>Made by facecluster. Click a face to open its photo, or to play its video from that moment.</footer>
</body>
</html>
"""


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
.faces a.twice img { box-shadow: 0 0 0 3px #d93838; }
.twice-note { color: #d93838; }
.timeline { margin: 0 0 14px; padding: 0; list-style: none; display: flex; flex-wrap: wrap; gap: 6px; }
.timeline a { padding: 2px 10px; border: 1px solid var(--line); border-radius: 6px; color: var(--accent);
              text-decoration: none; font-size: 13px; }
.timeline span { color: var(--muted); }
footer { padding: 0 32px 28px; color: var(--muted); font-size: 12px; }
nav.pages span { padding: 3px 11px; font-size: 13px; }
nav.pages span.current { border: 1px solid var(--accent); border-radius: 999px; color: var(--accent); font-weight: 600; }
"""


def file_href(target: str, out_dir: str) -> str:
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

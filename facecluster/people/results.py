"""search_faces.py's output: ``matches.csv`` and an ``index.html`` to look at them.

``matches.csv``: ``image,top,right,bottom,left,frame,time,distance,query,match``,
one row a face, each query's faces nearest first (queries in the order given); paths
and names that begin like a spreadsheet formula get a ``'`` in front, as in clusters.csv.
``match`` is ``same`` for a face judged the same person and ``nearest`` for one
of the ``--top`` nearest that is not.  ``frame`` and ``time`` are empty for photos.

``index.html``: per query, its face(s) beside the matches' thumbnails, each
opening its photo, or, for a video, playing it from the moment the face was
seen (the gallery's links).  Static, relative links: it opens from disk.
"""

from __future__ import annotations

import csv
import html
import os
from collections.abc import Sequence

from ..files import open_atomically, write_image, write_text_atomically
from ..present.crops import PhotoReader, placeholder_tile
from ..present.export import spreadsheet_safe
from ..present.gallery import THUMB_SIZE, file_href, face_thumbnail
from ..present.video import clip_href, clock
from ..records import FaceRecord, is_from_video
from ..sources.images import load_image
from ..sources.skips import ImageSkipped, display_path
from .search import Match, Query

MATCHES_CSV_HEADER = ("image", "top", "right", "bottom", "left", "frame", "time", "distance", "query", "match")
THUMBS_DIR = "thumbs"


def write_matches_csv(path: str, records: Sequence[FaceRecord], found: Sequence[tuple[Query, list[Match]]]) -> None:
    """One row per match, each query's matches nearest first (paths keep their bytes, as clusters.csv)."""
    with open_atomically(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        quoted = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)  # a lone CR: see export.py
        writer.writerow(MATCHES_CSV_HEADER)
        for query, matches in found:
            name = spreadsheet_safe(query.name)
            for match in matches:
                record = records[match.face]
                image = spreadsheet_safe(record["imagePath"])
                (quoted if "\r" in image or "\r" in name else writer).writerow(
                    [image, *map(int, record["loc"]), record.get("frame", ""), record.get("time", ""),
                     f"{match.distance:.4f}", name, "same" if match.same else "nearest"])


def write_search_page(out_dir: str, records: Sequence[FaceRecord], found: Sequence[tuple[Query, list[Match]]],
                      shown_per_query: int = 200) -> str:
    """Write ``out_dir/index.html`` and its thumbnails; returns the page's path."""
    thumbs_dir = os.path.join(out_dir, THUMBS_DIR)
    os.makedirs(thumbs_dir, exist_ok=True)
    reader = PhotoReader()
    wanted = sorted({m.face for _, matches in found for m in matches[:shown_per_query]})
    thumbs: dict[int, str] = {}
    for index, image in reader.photos_of(records, wanted):
        thumbs[index] = f"{THUMBS_DIR}/face_{index:06d}.jpg"
        tile = placeholder_tile(THUMB_SIZE) if image is None else face_thumbnail(image, records[index]["loc"])
        write_image(os.path.join(out_dir, thumbs[index]), tile, quality=85)
    sections = [_section(out_dir, number, query, matches[:shown_per_query], len(matches), records, thumbs)
                for number, (query, matches) in enumerate(found, 1)]
    page = os.path.join(out_dir, "index.html")
    write_text_atomically(page, _PAGE.format(sections="\n".join(sections)))
    reader.report()
    return page


def _query_thumbs(out_dir: str, number: int, query: Query) -> list[str]:
    """Thumbnails of the query's faces (``thumbs/query_1_1.jpg`` ...), relative to ``out_dir``."""
    made = []
    for k, (photo, box) in enumerate(zip(query.photos, query.boxes), 1):
        try:
            tile = face_thumbnail(load_image(photo), box)
        except ImageSkipped:
            tile = placeholder_tile(THUMB_SIZE)
        made.append(f"{THUMBS_DIR}/query_{number}_{k}.jpg")
        write_image(os.path.join(out_dir, made[-1]), tile, quality=85)
    return made


def _section(out_dir: str, number: int, query: Query, matches: list[Match], total: int,
             records: Sequence[FaceRecord], thumbs: dict[int, str]) -> str:
    esc = html.escape
    faces = "".join(f'<img src="{esc(src)}" alt="query face" width="96" height="96">'
                    for src in _query_thumbs(out_dir, number, query))
    same = sum(1 for m in matches if m.same)
    tiles = []
    for match in matches:
        record = records[match.face]
        name, href = display_path(record["imagePath"]), file_href(record["imagePath"], out_dir)
        if is_from_video(record):  # plays the clip from the moment the face was seen
            href, name = clip_href(href, record["time"]), f"{name} at {clock(record['time'])}"
        kind = "same" if match.same else "nearest"
        tiles.append(f'<figure class="{kind}"><a href="{esc(href)}" title="{esc(name)}"><img src="{esc(thumbs[match.face])}" '
                     f'alt="face in {esc(os.path.basename(name))}" width="72" height="72" loading="lazy"></a>'
                     f'<figcaption>{match.distance:.2f}</figcaption></figure>')
    more = f" &middot; the first {len(matches):,} shown" if len(matches) < total else ""
    return (f'<section><h2>{esc(query.name)}</h2>\n<p class="meta">{same:,} same-person faces'
            f'{" (plus the nearest others, dashed)" if same < len(matches) else ""}{more}</p>\n'
            f'<div class="body"><div class="query">{faces}</div>\n<div class="faces">\n' + "\n".join(tiles)
            + "\n</div></div></section>")


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Face search</title>
<style>
:root {{ color-scheme: light dark; }}
body {{ margin: 0; padding: 24px 32px; font: 15px/1.5 system-ui, sans-serif; }}
section {{ border: 1px solid #8884; border-radius: 12px; padding: 16px 20px; margin: 0 0 20px; }}
h2 {{ margin: 0; font-size: 19px; }}
.meta {{ margin: 2px 0 12px; opacity: .7; font-size: 13px; }}
.body {{ display: flex; gap: 20px; align-items: flex-start; }}
.query img {{ display: block; margin: 0 0 6px; border-radius: 8px; outline: 3px solid #2f6fdf; }}
.faces {{ display: flex; flex-wrap: wrap; gap: 6px; }}
figure {{ margin: 0; text-align: center; font-size: 12px; }}
figure img {{ width: 72px; height: 72px; object-fit: cover; border-radius: 6px; }}
figure.nearest img {{ outline: 2px dashed #888; opacity: .6; }}
</style>
</head>
<body>
<h1>Face search</h1>
{sections}
<footer>Made by facecluster. The number under a face is its distance to the query (same person under the
threshold). Click a face to open its photo, or to play its video from that moment.</footer>
</body>
</html>
"""

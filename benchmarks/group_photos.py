"""Labelled group photos made from LFW: side-by-side composites of 2-4 different people.

LFW has one labelled person a photo.  A picture of two to four of them side
by side is a group photo with a known answer: every face it holds is a
different person, and the face in the middle of each tile is that tile's
person.  Used by ``make quality`` and the tests to check that clustering never
puts two faces of one picture into one cluster (:mod:`facecluster.cluster.constraints`).

The composites are written to a folder the caller gives (a temporary one: the
photos stay out of the project) and encoded by the real pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# A face belongs to its tile's person when its centre is this close (pixels,
# LFW's 250 px photos) to the tile's centre; other faces are bystanders in the
# LFW photo, clustered but not labelled.
_CENTRE_WITHIN = 50


@dataclass(frozen=True)
class Composite:
    """One group photo: its path, and the LFW photos side by side (left to right) with their people."""

    path: str
    people: tuple[str, ...]
    sources: tuple[str, ...]
    tile: int  # width of each tile, in pixels


def people_with(lfw: Path, at_least: int) -> dict[str, list[Path]]:
    """LFW people with at least ``at_least`` photos: name -> photos (sorted)."""
    found = {}
    for folder in sorted(p for p in lfw.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        if len(photos) >= at_least:
            found[folder.name] = photos
    return found


# LFW people with look-alike relatives (sisters; a father and his sons and
# their wife and mother): their group photos are the hard case.
RELATIVES = ("Serena_Williams", "Venus_Williams", "George_W_Bush", "George_HW_Bush", "Jeb_Bush", "Laura_Bush")


def make_composites(lfw: Path, out: Path, count: int, *, people: int = 12, at_least: int = 10,
                    names: tuple[str, ...] | None = None, seed: int = 0) -> list[Composite]:
    """Write ``count`` composites of 2-4 different people (drawn, seeded, from
    ``names``, or from ``people`` LFW people with ``at_least`` photos each, so
    each person recurs across composites) as JPEGs into ``out``; return what each shows."""
    rng = np.random.default_rng(seed)
    pool = people_with(lfw, at_least) if names is None else {name: sorted((lfw / name).glob("*.jpg")) for name in names}
    if names is None:
        names = tuple(sorted(rng.choice(sorted(pool), min(people, len(pool)), replace=False).tolist()))
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for k in range(count):
        chosen = rng.choice(names, int(rng.integers(2, 5)), replace=False).tolist()
        sources = [pool[name][int(rng.integers(len(pool[name])))] for name in chosen]
        tiles = [Image.open(source).convert("RGB") for source in sources]
        side = tiles[0].height
        picture = Image.new("RGB", (side * len(tiles), side))
        for position, tile in enumerate(tiles):
            picture.paste(tile.resize((side, side)), (position * side, 0))
        path = out / f"group_{k:04d}.jpg"
        picture.save(path, quality=95)
        made.append(Composite(str(path), tuple(chosen), tuple(str(s) for s in sources), side))
    return made


def composite_labels(records: list[dict], composites: list[Composite]) -> list[str | None]:
    """Per record: the person of the tile whose centre its face is in, else ``None`` (a bystander)."""
    by_path = {os.path.realpath(c.path): c for c in composites}
    labels: list[str | None] = []
    for record in records:
        composite = by_path.get(os.path.realpath(record["imagePath"]))
        if composite is None:
            labels.append(None)
            continue
        top, right, bottom, left = record["loc"]
        x, y = (left + right) / 2, (top + bottom) / 2
        position = int(x // composite.tile)
        centre = (position + 0.5) * composite.tile
        near = abs(x - centre) <= _CENTRE_WITHIN and abs(y - composite.tile / 2) <= _CENTRE_WITHIN
        labels.append(composite.people[position] if near and position < len(composite.people) else None)
    return labels

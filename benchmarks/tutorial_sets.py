#!/usr/bin/env python3
"""The tutorial's two commands at their defaults on collections like the tutorial's (part of ``make quality``).

The tutorial clusters a folder of web photos of a few people: 5 people with
about 25 photos each, plus a few people seen once.  ``encode_faces.py`` at its
defaults, then ``cluster_faces.py`` at its defaults (DBSCAN, eps 0.5,
min_samples 5) must find those 5 people.  Collections of that shape:

- ``LFW draw N``: 5 people drawn (seeded) from LFW's people with 25+ photos, 25
  photos of each drawn at random, and 4 people with one photo;
- ``five_celebs``: its 5 people with all their photos (14-30 each, web photos
  across decades), and 4 LFW people with one photo.

Each photo's largest face takes the photo's person (the singletons are people
too: a cluster that takes one in is wrong).  Encodings come from ``make
quality``'s cache (``.cache/quality/``: the encode_faces.py pipeline at its
defaults), so a photo is encoded once for every collection it is in.
Writes ``benchmarks/results/tutorial-sets.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

OUT = ROOT / "benchmarks" / "results" / "tutorial-sets.md"
DRAWS = 8
PEOPLE, PHOTOS_EACH, SINGLETONS = 5, 25, 4


def collections(data: Path, draws: int = DRAWS, seed: int = 0) -> list[tuple[str, np.ndarray, list]]:
    """(name, encodings, largest-face labels) of each tutorial-like collection."""
    from quality_sets import encoded

    X, largest, _, paths = encoded(data / "lfw-deepfunneled", "lfw-deepfunneled")
    rows_of: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        rows_of.setdefault(Path(path).parent.name, []).append(i)
    photos_of: dict[str, set[str]] = {}
    for path in paths:
        photos_of.setdefault(Path(path).parent.name, set()).add(path)
    many = sorted(p for p, photos in photos_of.items() if len(photos) >= PHOTOS_EACH)
    once = sorted(p for p, photos in photos_of.items() if len(photos) == 1)
    rng = np.random.default_rng(seed)
    out = []
    for draw in range(draws):
        people = rng.choice(many, PEOPLE, replace=False).tolist() + rng.choice(once, SINGLETONS, replace=False).tolist()
        chosen_photos = set()
        for person in people:
            photos = sorted(photos_of[person])
            chosen_photos.update(rng.choice(photos, min(PHOTOS_EACH, len(photos)), replace=False).tolist())
        rows = [i for i, path in enumerate(paths) if path in chosen_photos]
        out.append((f"LFW draw {draw + 1}", X[rows], [largest[i] for i in rows]))
    singles = [i for person in rng.choice(once, SINGLETONS, replace=False).tolist() for i in rows_of[person]]
    Xc, celebs, _, _ = encoded(data / "five_celebs", "five_celebs")
    out.append(("five_celebs + 4 LFW singletons", np.vstack([Xc, X[singles]]), list(celebs) + [largest[i] for i in singles]))
    return out


def main(argv: list[str] | None = None) -> int:
    from facecluster.cluster import cluster_encodings
    from facecluster.cluster.evaluation import evaluate
    from scale import write_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACES_DATA", str(ROOT.parent / "shared" / "datasets")))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "lfw-deepfunneled").is_dir() or not (data / "five_celebs").is_dir():
        parser.error(f"no lfw-deepfunneled/ and five_celebs/ in {data}; set FACES_DATA or pass --data")
    lines = ["# The tutorial's two commands at their defaults, on collections like the tutorial's", "",
             f"Written by `benchmarks/tutorial_sets.py`: encode_faces.py's defaults, then cluster_faces.py's "
             f"(DBSCAN, eps 0.5, min_samples 5). {DRAWS} draws from LFW ({PEOPLE} people with {PHOTOS_EACH} photos "
             f"each + {SINGLETONS} people with one), and five_celebs (5 people, 14-30 web photos each) with "
             f"{SINGLETONS} LFW singletons. Pairwise F1, each photo's largest face.", "",
             "| collection | people (faces) | people found | pairwise precision | recall | F1 | adaptive: people found, F1 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    f1s, adaptive = [], []
    for name, X, labels in collections(data):
        found = cluster_encodings(X, "dbscan")
        score = evaluate(found, labels)
        f1s.append(score["pairwise_f1"])
        other = cluster_encodings(X, "adaptive")
        adaptive.append(evaluate(other, labels)["pairwise_f1"])
        people = sorted({label for label in labels if label is not None and labels.count(label) > 1})
        lines.append(f"| {name} | {', '.join(people)} ({len(X)}) | {len(set(found.tolist()) - {-1})} "
                     f"| {score['pairwise_precision']:.3f} | {score['pairwise_recall']:.3f} | {score['pairwise_f1']:.3f} "
                     f"| {len(set(other.tolist()) - {-1})}, {adaptive[-1]:.3f} |")
        print(lines[-1], flush=True)
    lines += ["", f"DBSCAN: lowest F1 {min(f1s):.3f}, mean {np.mean(f1s):.3f}; adaptive: lowest {min(adaptive):.3f}, "
              f"mean {np.mean(adaptive):.3f}."]
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

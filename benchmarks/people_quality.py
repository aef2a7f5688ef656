"""Naming, search and ID stability on labelled collections (``make quality``).

Collections like a user's folder of a few people (issue 18's "web-photo
collections of 5-20 people"):

- six drawn from LFW's people with 10+ photos (seeded, 5-20 people each): each
  person's first photos (at most 15) are the collection; three *other* photos
  of the same person, never in the collection, are the known folder;
- five_celebs (5 people photographed over decades): three photos of each are
  the known folder, the rest the collection.

In each collection about a quarter of the people (at least one) get no known
folder: their faces must stay unnamed.  Encoded once with encode_faces.py's
defaults (cached under ``.cache/quality/``), clustered with ``adaptive``, then:

- **named right**: share of the faces of known people whose cluster carries
  their name (a face left unknown counts as not named right);
- **unknown people named**: share of the faces of left-out people that get any name;
- **search**: each known person's folder (3 photos) as the query against the
  collection; precision and recall of the faces judged the same person, per
  person (reported: mean, lowest, and people under 0.9 / 0.8);
- **ID stability**: the people store is filled from five sixths of the
  photos, then the whole collection (20% more photos) is clustered again;
  the share of faces that were in ``person_k`` before and are in ``person_k``
  after.

Writes ``benchmarks/results/people-quality.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_paths import ROOT, faces_data, machine  # noqa: E402  (first: sets up sys.path)

OUT = ROOT / "benchmarks" / "results" / "people-quality.md"
CACHE = ROOT / ".cache" / "quality"
COLLECTIONS, SMALLEST, LARGEST = 6, 5, 20
IN_COLLECTION, KNOWN_PHOTOS = 15, 3
LEFT_OUT = 0.25
ADDED = 0.2  # ID stability: the second run has this many more photos than the first


def lfw_draws(lfw: Path, seed: int = 0) -> list[dict[str, tuple[list[str], list[str]]]]:
    """Collections of LFW people: ``{person: (collection photos, known photos)}`` each."""
    people = sorted(p.name for p in lfw.iterdir() if p.is_dir() and len(list(p.iterdir())) >= 10)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(COLLECTIONS):
        chosen = sorted(rng.choice(people, int(rng.integers(SMALLEST, LARGEST + 1)), replace=False).tolist())
        draw = {}
        for person in chosen:
            photos = sorted(str(p) for p in (lfw / person).iterdir())
            draw[person] = (photos[:-KNOWN_PHOTOS][:IN_COLLECTION], photos[-KNOWN_PHOTOS:])
        draws.append(draw)
    return draws


def five_celebs(folder: Path) -> dict[str, tuple[list[str], list[str]]]:
    """five_celebs as one collection: the first three photos of each person are the known folder."""
    draw = {}
    for person in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        photos = sorted(str(p) for p in (folder / person).iterdir())
        draw[person] = (photos[KNOWN_PHOTOS:], photos[:KNOWN_PHOTOS])
    return draw


def all_photos(draws: list[dict]) -> list[str]:
    return sorted({p for draw in draws for photos in draw.values() for part in photos for p in part})


def encode_all(paths: list[str]) -> dict[str, list[dict]]:
    """Records of every photo, by path (encode_faces.py's defaults, cached)."""
    from quality import load_or_encode

    records, _ = load_or_encode(str(CACHE / "people.pickle"), paths)
    by_path: dict[str, list[dict]] = {}
    for record in records:
        by_path.setdefault(record["imagePath"], []).append(record)
    return by_path


def collection(draw: dict, by_path: dict, seed: int) -> dict:
    """One collection's arrays: encodings, each face's identity (largest face of a photo; None for
    bystanders), photo paths, the known people and who was left out."""
    from facecluster.people.known import one_face_each, person_name

    rng = np.random.default_rng(seed)
    people = sorted(draw)
    left_out = set(rng.choice(people, max(1, round(LEFT_OUT * len(people))), replace=False).tolist())
    records, identity = [], []
    for person in people:
        for photo in draw[person][0]:
            faces = by_path.get(photo, [])
            largest = max(range(len(faces)), key=lambda i: _area(faces[i]["loc"]), default=None)
            for i, record in enumerate(faces):
                records.append(record)
                identity.append(person_name(person) if i == largest else None)
    known_records = [r for person in people if person not in left_out for p in draw[person][1] for r in by_path.get(p, [])]
    known = one_face_each(known_records, None, lambda line: None)
    return {"X": np.stack([r["encoding"] for r in records]).astype(np.float32), "identity": identity,
            "paths": [r["imagePath"] for r in records], "known": known,
            "left_out": {person_name(p) for p in left_out}}


def _area(box) -> int:
    top, right, bottom, left = box
    return (bottom - top) * (right - left)


def naming_scores(c: dict, labels: np.ndarray, names: dict) -> tuple[int, int, int, int]:
    """(faces of known people, of them named right, faces of left-out people, of them named)."""
    known_faces = right = stranger_faces = named = 0
    for label, who in zip(labels.tolist(), c["identity"]):
        if who is None:
            continue
        if who in c["left_out"]:
            stranger_faces += 1
            named += label in names
        else:
            known_faces += 1
            right += names.get(label) == who
    return known_faces, right, stranger_faces, named


def name_collection(c: dict, threshold: float | None = None) -> tuple[np.ndarray, dict]:
    from facecluster.cluster import cluster_encodings
    from facecluster.people.naming import NAME_THRESHOLD, PULL_THRESHOLD, name_clusters, pull_in_unknown

    labels = cluster_encodings(c["X"], "adaptive")
    t = NAME_THRESHOLD if threshold is None else threshold
    names = name_clusters(c["X"], labels, c["known"], threshold=t)
    return pull_in_unknown(c["X"], labels, c["known"], names, threshold=PULL_THRESHOLD * t / NAME_THRESHOLD)


def search_scores(c: dict, single: bool = False) -> list[tuple[str, float, float]]:
    """(person, precision, recall) of each known person's search: their known photos as the query
    (only the first with ``single``), against the collection (scored faces)."""
    import faiss

    from facecluster.people.search import FaceIndex, search

    index = faiss.IndexFlatL2(128)
    index.add(c["X"])
    face_index = FaceIndex([], c["X"], index, exact=True)
    out = []
    for person in c["known"].people:
        rows = [i for i, name in enumerate(c["known"].names) if name == person][:1 if single else None]
        found = [m.face for m in search(face_index, c["known"].encodings[rows]) if m.same]
        scored = [c["identity"][f] for f in found if c["identity"][f] is not None]
        truth = sum(1 for who in c["identity"] if who == person)
        precision = sum(1 for who in scored if who == person) / len(scored) if scored else 1.0
        recall = sum(1 for who in scored if who == person) / truth if truth else 1.0
        out.append((person, precision, recall))
    return out


def stability(c: dict, seed: int) -> tuple[int, int]:
    """(faces in a person before, of them in the same person after) when 20% more photos are added."""
    from facecluster.cluster import cluster_encodings
    from facecluster.people.store import PeopleStore

    photos = sorted(set(c["paths"]))
    rng = np.random.default_rng(seed)
    added = set(rng.choice(photos, int(round(len(photos) * ADDED / (1 + ADDED))), replace=False).tolist())
    base = np.array([p not in added for p in c["paths"]])
    with tempfile.TemporaryDirectory() as folder:
        store = PeopleStore(os.path.join(folder, "people.sqlite"))
        before = store.assign(c["X"][base], cluster_encodings(c["X"][base], "adaptive")).labels
        after = store.assign(c["X"], cluster_encodings(c["X"], "adaptive")).labels[base]
        store.close()
    kept = before >= 0
    return int(kept.sum()), int((after[kept] == before[kept]).sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(faces_data()))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    from facecluster.people.naming import NAME_MARGIN, NAME_THRESHOLD, PULL_THRESHOLD

    data = Path(args.data)
    draws = lfw_draws(data / "lfw-deepfunneled") + [five_celebs(data / "five_celebs")]
    sources = [f"LFW draw {i + 1}" for i in range(COLLECTIONS)] + ["five_celebs"]
    started = time.perf_counter()
    by_path = encode_all(all_photos(draws))
    rows = ["| collection | people (left out) | faces | named right | unknown people named | search P / R "
            "(folder of 3, mean) | lowest P / R | search P / R (one photo) | ID stability (+20% photos) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    totals = np.zeros(6, dtype=np.int64)
    every_search: list[tuple[float, float]] = []
    every_single: list[tuple[float, float]] = []
    sweep: dict[float, np.ndarray] = {t: np.zeros(4, np.int64) for t in (0.4, 0.45, 0.5, 0.55, 0.6)}
    for number, (source, draw) in enumerate(zip(sources, draws)):
        c = collection(draw, by_path, seed=number)
        labels, names = name_collection(c)
        scores = naming_scores(c, labels, names)
        for t in sweep:
            sweep[t] += naming_scores(c, *name_collection(c, t))
        found, single = search_scores(c), search_scores(c, single=True)
        every_search += [(p, r) for _, p, r in found]
        every_single += [(p, r) for _, p, r in single]
        stable = stability(c, seed=number)
        totals += (*scores, *stable)
        P, R = np.array([p for _, p, _ in found]), np.array([r for _, _, r in found])
        P1, R1 = np.array([p for _, p, _ in single]), np.array([r for _, _, r in single])
        rows.append(f"| {source} | {len(draw)} ({len(c['left_out'])}) | {len(c['X'])} | {_share(scores[1], scores[0])} "
                    f"| {_share(scores[3], scores[2])} | {P.mean():.3f} / {R.mean():.3f} | {P.min():.3f} / {R.min():.3f} "
                    f"| {P1.mean():.3f} / {R1.mean():.3f} | {_share(stable[1], stable[0])} |")
        print(rows[-1], file=sys.stderr)
    S, S1 = np.array(every_search), np.array(every_single)
    rows.append(f"| **all** | {sum(len(d) for d in draws)} | | **{_share(totals[1], totals[0])}** | "
                f"**{_share(totals[3], totals[2])}** | **{S[:, 0].mean():.3f} / {S[:, 1].mean():.3f}** "
                f"| {S[:, 0].min():.3f} / {S[:, 1].min():.3f} | {S1[:, 0].mean():.3f} / {S1[:, 1].mean():.3f} "
                f"| **{_share(totals[5], totals[4])}** |")
    lines = ["# Naming, search and ID stability (`make quality`, benchmarks/people_quality.py)", "",
             f"Rule: name threshold {NAME_THRESHOLD}, margin {NAME_MARGIN}, pull-in threshold {PULL_THRESHOLD}; "
             f"clusters by `adaptive`; {KNOWN_PHOTOS} known photos a known person, about "
             f"{LEFT_OUT:.0%} of people left out of the known folder.  Shares are of faces (each photo's "
             "largest face; bystanders not scored).", "", *rows, "",
             f"Search per person over all collections ({len(S)} searches): people with precision < 0.9: "
             f"{int((S[:, 0] < 0.9).sum())}, recall < 0.8: {int((S[:, 1] < 0.8).sum())} (folder of 3); "
             f"one photo: {int((S1[:, 0] < 0.9).sum())} and {int((S1[:, 1] < 0.8).sum())}.", "",
             "Name threshold swept (margin and pull-in scaled alike; the shipped value is the project's "
             "chinese-whispers default, not this sweep's pick):", "",
             "| name threshold | named right | unknown people named |", "|---:|---:|---:|",
             *[f"| {t} | {_share(v[1], v[0])} | {_share(v[3], v[2])} |" for t, v in sweep.items()], "",
             f"{time.perf_counter() - started:.0f} s on {machine()}."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else "-"



if __name__ == "__main__":
    sys.exit(main())

"""Every method at its defaults on every labelled set (``make quality``).

For each labelled set in ``$FACES_DATA`` (LFW: all 13,233 photos, bench-3474
and demo; five_celebs; glint_aligned_crops; Yale; ORL; face_recognition's
examples) the photos are encoded once with encode_faces.py's pipeline (cached
under ``.cache/quality/``), then:

1. the best fixed threshold: chinese-whispers swept over 0.40-0.70 and
   agglomerative over 0.40-0.65, the best pairwise F1 of either (what a user with labels could
   tune to, per set);
2. every method at its defaults, against that best;
3. leave-one-set-out for the recommended method: its parameters are chosen on
   all sets but one (largest worst-case shortfall against the best fixed
   threshold) and reported on the one left out, so that no reported number
   comes from parameters tuned on the set itself;
4. small collections (3-8 people, like a user's folder) drawn at random from
   all of LFW and from glint: every method at its defaults against each
   draw's best fixed threshold;
5. who appears together: for every labelled set, group photos built from LFW
   (side-by-side composites of 2-4 different people, :mod:`group_photos`:
   random people, and look-alike relatives), face_recognition's ``_multi_face``
   photos and both video clips, the share of multi-face pictures (photos, or
   video frames) that show one cluster twice, beside pairwise F1 on all
   labelled faces of multi-face pictures (hand labels in
   ``benchmarks/labels/``: who is where, for the ``_multi_face`` photos and
   every face of the two clips).

Every method is given who appears together (the records' pictures and video
tracks, :mod:`facecluster.cluster.constraints`), as cluster_faces.py gives it,
in the main table (1-2) and in 5; the leave-one-set-out grid and the drawn
collections hold the largest face of each photo only (or are run as before).

Two scoring rules: ``largest`` (each photo's largest face takes the photo's
label; other faces are clustered but not scored) and ``single`` (only faces in
photos with exactly one face are scored).  Writes
``benchmarks/results/quality-sets.md``.

Labels are the sets' folders, except where ``benchmarks/label-corrections/
<set>.csv`` (``path,identity``) names a photo filed under the wrong person:
glint_aligned_crops' "Gwyneth Paltrow" holds 26 crops of her mother, Blythe
Danner (docs/clustering.md).  Such a set is also reported with its source
labels, apart from the choice of defaults.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench_paths import ROOT, faces_data  # noqa: E402  (first: sets up sys.path)

OUT = ROOT / "benchmarks" / "results" / "quality-sets.md"
CORRECTIONS = ROOT / "benchmarks" / "label-corrections"
LABELS = ROOT / "benchmarks" / "labels"  # image,time,x,y,identity: who is where in multi-face pictures
COMPOSITES = 200  # group photos of random LFW people (and a quarter as many of relatives)
CACHE = ROOT / ".cache" / "quality"
FOLDER_SETS = ("five_celebs", "glint_aligned_crops", "yale_faces", "orl_att_faces", "face_recognition_examples")
THRESHOLDS = {"chinese-whispers": [round(0.4 + 0.025 * i, 3) for i in range(13)],
              "agglomerative": [round(0.4 + 0.05 * i, 2) for i in range(6)]}  # agglomerative: ~1 min a run on all of LFW
GRAPH_K = 40  # one exact graph per set, shared by every run (each method reads its own k)
RULES = ("largest", "single")
# The recommended method's candidate settings for leave-one-set-out: where a
# collection counts as crowded, the base of chinese whispers' threshold
# (facecluster/cluster/adaptive.py), its slope on the median nearest distance,
# how close on average two clusters must be (x the threshold) to be joined, and
# the ratio test that keeps a face in a crowded collection's cluster or pairs it.
GRID = {"crowded_below": (0.003, 0.005, 0.01), "threshold_base": (0.362, 0.414, 0.465), "threshold_slope": (0.4, 0.5, 0.6),
        "join_within": (1.0, 1.1, 1.2), "clear_match": (0.9, 0.95, 1.0)}
# The module settings each grid parameter replaces (facecluster/cluster/adaptive.py).
_SETTINGS = ("CROWDED_BELOW", "_THRESHOLD_BASE", "_THRESHOLD_SLOPE", "JOIN_WITHIN", "CLEAR_MATCH")
# Which grid parameters each path reads (the rest cannot change its result).
_CROWDED_READS, _UNCROWDED_READS = ("clear_match",), ("threshold_base", "threshold_slope", "join_within")
# Small collections drawn from the large sets, like a user's folder of a few
# people: per source, DRAWS collections of 3-8 people with 10+ faces, 10-40
# faces of each (seeded).
SMALL_SOURCES = ("LFW, all", "glint_aligned_crops")
DRAWS = 60
# Sparse collections, like a press archive or a day of CCTV: thousands of
# people, most seen once or twice, a few many times.  All the photos named in
# LFW's pairs.txt (4,281 people, 64 % of them once), and SPARSE_DRAWS seeded
# draws from all of LFW: SPARSE_PEOPLE people taken at random, each with as
# many of their photos as a Zipf law (exponent SPARSE_ZIPF, at least two)
# allows (LFW's own 71 % of people with one photo stay at one).
SPARSE_DRAWS = 4
SPARSE_PEOPLE = (2000, 4000)
SPARSE_ZIPF = 1.6
SPARSE_MOST = 80
# Web collections of 5-20 people photographed over many years, 10-40 photos
# each: WEB_DRAWS drawn from five_celebs and glint_aligned_crops's people, and
# WEB_DRAWS from those and LFW's people with at least WEB_LFW_MIN photos (one
# identity per name across sets).
WEB_DRAWS = 20
WEB_PEOPLE = (5, 20)
WEB_LFW_MIN = 30
# One spelling per person across the sets (five_celebs misspells him).
ALIASES = {"ben afflek": "ben affleck"}


def encoded(dataset: Path, cache_name: str, paths: list[str] | None = None, *,
            corrected: bool = True, mirror: bool = True) -> tuple[np.ndarray, list, list, list]:
    """Encodings, the two label lists (largest, single) and the image paths of
    a folder set; its folder labels corrected by ``CORRECTIONS/<dataset name>.csv``
    where there is one, unless ``corrected`` is false.  ``mirror=False``: encoded
    as with ``--no-mirror`` (give it a ``cache_name`` of its own)."""
    from facecluster.cluster.evaluation import primary_face_labels, read_labels
    from facecluster.run.pipeline import list_dataset
    from quality import load_or_encode

    if paths is None:
        paths = list_dataset(str(dataset)).images
    records, _ = load_or_encode(str(CACHE / f"{cache_name}.pickle"), paths, mirror=mirror)
    X = np.asarray([r["encoding"] for r in records], dtype=np.float64)
    image_paths = [r["imagePath"] for r in records]
    folder = read_labels("folders", image_paths, str(dataset))
    fixes = CORRECTIONS / f"{dataset.name}.csv"
    if corrected and fixes.is_file():
        folder = [fix or label for fix, label in zip(read_labels(str(fixes), image_paths, str(dataset)), folder)]
    faces_in: dict[str, int] = {}
    for p in image_paths:
        faces_in[p] = faces_in.get(p, 0) + 1
    single = [label if faces_in[p] == 1 else None for label, p in zip(folder, image_paths)]
    return X, primary_face_labels(records, folder), single, image_paths


def labelled_sets(data: Path, lfw_paths: list[str] | None = None) -> dict[str, tuple[np.ndarray, list, list]]:
    """name -> (encodings, largest-face labels, single-face labels); all of
    LFW's image paths, one per face, are appended to ``lfw_paths`` if given."""
    from quality import lfw_subset

    sets = {}
    lfw = data / "lfw-deepfunneled"
    X, largest, single, paths = encoded(lfw, "lfw-deepfunneled")
    sets["LFW, all"] = (X, largest, single)
    if lfw_paths is not None:
        lfw_paths.extend(paths)
    for subset in ("bench-3474", "demo"):
        keep = set(lfw_subset(str(lfw), subset))
        rows = [i for i, p in enumerate(paths) if p in keep]
        sets[f"LFW {subset}"] = (X[rows], [largest[i] for i in rows], [single[i] for i in rows])
    for name in FOLDER_SETS:
        X, largest, single, _ = encoded(data / name, name)
        sets[name] = (X, largest, single)
    return sets


def pictures_of(data: Path) -> dict:
    """name -> who appears together (:class:`~facecluster.cluster.constraints.Constraints`)
    for each set of :func:`labelled_sets` (their photos' paths, read from the cache)."""
    from quality import lfw_subset

    _, _, _, paths = encoded(data / "lfw-deepfunneled", "lfw-deepfunneled")
    together = {"LFW, all": _pictures(paths)}
    for subset in ("bench-3474", "demo"):
        keep = set(lfw_subset(str(data / "lfw-deepfunneled"), subset))
        together[f"LFW {subset}"] = _pictures([p for p in paths if p in keep])
    for name in FOLDER_SETS:
        together[name] = _pictures(encoded(data / name, name)[3])
    return together


def scores(labels: np.ndarray, truth: tuple[list, ...]) -> tuple[float, ...]:
    from facecluster.cluster.evaluation import evaluate

    return tuple(evaluate(labels, t)["pairwise_f1"] for t in truth)


def best_fixed(X: np.ndarray, truth: tuple[list, ...], graph, constraints=None) -> list[tuple[float, str]]:
    """Per scoring rule: (best F1, "method threshold") over the sweep."""
    from facecluster.cluster import cluster_encodings

    best = [(-1.0, "")] * len(truth)
    for method, t in ((m, t) for m, ts in THRESHOLDS.items() for t in ts):
        f1 = scores(cluster_encodings(X, method, threshold=t, graph=graph, constraints=constraints), truth)
        best = [max(b, (f, f"{method} {t}")) for b, f in zip(best, f1)]
    return best


def recommended(X: np.ndarray, graph, **params: float) -> np.ndarray:
    """The recommended (adaptive) method with its module settings replaced
    by ``params`` (the names of :data:`GRID`)."""
    from facecluster.cluster import RECOMMENDED_METHOD, adaptive, cluster_encodings

    names = [_SETTINGS[list(GRID).index(key)] for key in params]
    saved = [getattr(adaptive, name) for name in names]
    for name, value in zip(names, params.values()):
        setattr(adaptive, name, value)
    try:
        return cluster_encodings(X, RECOMMENDED_METHOD, graph=graph)
    finally:
        for name, value in zip(names, saved):
            setattr(adaptive, name, value)


def grid_runner(X: np.ndarray, graph, truth: tuple[list, ...]):
    """A function of a grid point's parameters giving the recommended method's
    scores on this collection, run once per distinct setting that can change
    them (a crowded collection does not read chinese whispers' settings, an
    uncrowded one not hdbscan's)."""
    from facecluster.cluster import adaptive

    crowding = adaptive.read_crowding(X)
    seen: dict[tuple, tuple[float, ...]] = {}

    def run(params: dict) -> tuple[float, ...]:
        saved = adaptive.CROWDED_BELOW
        adaptive.CROWDED_BELOW = params["crowded_below"]
        try:
            crowded = crowding.crowded
        finally:
            adaptive.CROWDED_BELOW = saved
        key = (crowded,) + tuple(params[k] for k in (_CROWDED_READS if crowded else _UNCROWDED_READS))
        if key not in seen:
            seen[key] = scores(recommended(X, graph, **params), truth)
        return seen[key]
    return run


def methods_row(name: str, X: np.ndarray, truth: tuple[list, list], graph, best: list[tuple[float, str]],
                constraints=None) -> str:
    """One table row: the set, its best fixed thresholds and every method at its defaults."""
    from facecluster.cluster import METHODS, cluster_encodings

    cells = [name, str(len(X)), f"{best[0][0]:.3f} ({best[0][1]})", f"{best[1][0]:.3f} ({best[1][1]})"]
    for method in METHODS:
        start = time.perf_counter()
        f1 = scores(cluster_encodings(X, method, graph=graph, constraints=constraints), truth)
        cells.append(f"{f1[0]:.3f} / {f1[1]:.3f} ({time.perf_counter() - start:.1f} s)")
    return "| " + " | ".join(cells) + " |"


def leave_one_set_out(results: dict, best: dict, names: list[str], shipped: tuple) -> list[str]:
    """Choose the recommended method's parameters on the other sets (max of
    the worst shortfall under both rules); report them on the left-out set.

    Ties (to 1e-6) go to the grid point with the fewest parameters moved from
    ``shipped``: a parameter moves only when the other sets gain by it.  (Broken
    by grid order instead, a tie can move a parameter that no other set tests:
    held-out bench-3474 then took the lowest crowding cut, the one that calls
    it uncrowded.)"""
    configs = list(results)
    lines = ["| left-out set | parameters chosen on the other sets | F1 largest | F1 single "
             "| best fixed (largest) | shortfall |", "|---|---|---:|---:|---:|---:|"]
    for out in names:
        def worst(config):
            return min(results[config][s][r] - best[s][r][0] for s in names if s != out for r in range(2))

        def moved(config):
            return sum(value != default for value, default in zip(config, shipped))
        chosen = max(configs, key=lambda config: (round(worst(config), 6), -moved(config)))
        f1 = results[chosen][out]
        lines.append(f"| {out} | {_fmt(chosen)} | {f1[0]:.3f} | {f1[1]:.3f} | {best[out][0][0]:.3f} "
                     f"| {min(f1[r] - best[out][r][0] for r in range(2)):+.3f} |")
    return lines


def small_collections(sets: dict, sources: tuple[str, ...] = SMALL_SOURCES, draws: int = DRAWS,
                      seed: int = 0, strangers: float = 0.0) -> list[tuple[str, np.ndarray, list]]:
    """(source, encodings, labels) of collections of 3-8 people drawn from each
    source set's people with at least 10 faces (largest-face labels), with
    ``strangers`` x as many faces of the source's other people added unlabelled
    (background faces: scored as nobody, clustered like everyone)."""
    rng = np.random.default_rng(seed)
    drawn = []
    for source in sources:
        X, largest, _ = sets[source]
        faces: dict[str, list[int]] = {}
        for i, label in enumerate(largest):
            if label is not None:
                faces.setdefault(label, []).append(i)
        people = sorted(p for p, rows in faces.items() if len(rows) >= 10)
        for _ in range(draws):
            chosen = rng.choice(people, int(rng.integers(3, 9)), replace=False)
            rows = np.concatenate([rng.choice(faces[p], min(len(faces[p]), int(rng.integers(10, 41))), replace=False)
                                   for p in chosen])
            labels = [largest[i] for i in rows]
            if strangers:
                taken = set(chosen.tolist())
                others = np.array([i for i, label in enumerate(largest) if label not in taken])
                extra = rng.choice(others, int(strangers * len(rows)), replace=False)
                rows, labels = np.concatenate([rows, extra]), labels + [None] * len(extra)
            drawn.append((source if not strangers else f"{source} + {strangers:g} strangers a face", X[rows], labels))
    return drawn


def small_collections_report(drawn: list[tuple[str, np.ndarray, list]]) -> list[str]:
    """Per source: the recommended method's F1 over the draws, against each
    draw's best fixed threshold and the other methods at their defaults."""
    from facecluster.cluster import METHODS, RECOMMENDED_METHOD, cluster_encodings
    from facecluster.cluster.graph import knn_graph

    f1: dict[str, dict[str, list[float]]] = {}
    for source, X, labels in drawn:
        graph = knn_graph(X, GRAPH_K, exact=True)
        row = f1.setdefault(source, {})
        row.setdefault("best fixed (per draw)", []).append(best_fixed(X, (labels,), graph)[0][0])
        for method in METHODS:
            row.setdefault(method, []).append(scores(cluster_encodings(X, method, graph=graph), (labels,))[0])
    lines = ["| source | draws | method | mean F1 | median | 10th percentile | lowest | draws >= 0.95 "
             "| draws within 0.01 of their best fixed |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for source, row in f1.items():
        best = np.array(row["best fixed (per draw)"])
        for method, values in row.items():
            v = np.array(values)
            mark = "**" if method == RECOMMENDED_METHOD else ""
            lines.append(f"| {source} | {len(v)} | {mark}{method}{mark} | {v.mean():.3f} | {np.median(v):.3f} "
                         f"| {np.percentile(v, 10):.3f} | {v.min():.3f} | {int((v >= 0.95).sum())} "
                         f"| {int((v >= best - 0.01).sum())} |")
    return lines


def lfw_pairs_paths(lfw: Path) -> set[str]:
    """Paths of every photo named in LFW's ``pairs.txt`` (View 2: 6,000 pairs
    in 10 folds; 7,701 photos of 4,281 people)."""
    photos = set()
    for line in (lfw / "pairs.txt").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) == 3:
            named = [(fields[0], fields[1]), (fields[0], fields[2])]
        elif len(fields) == 4:
            named = [(fields[0], fields[1]), (fields[2], fields[3])]
        else:
            continue
        photos.update(str(lfw / name / f"{name}_{int(number):04d}.jpg") for name, number in named)
    return photos


def sparse_collections(X: np.ndarray, labels: list, draws: int = SPARSE_DRAWS, seed: int = 0,
                       people: tuple[int, int] = SPARSE_PEOPLE) -> list[tuple[str, np.ndarray, list]]:
    """(name, encodings, labels) of ``draws`` sparse collections drawn from
    one large labelled set (its largest-face ``labels``; ``None`` faces are
    never drawn): ``people`` (low, high) people taken at random, each with
    min(their photos, 1 + Zipf(:data:`SPARSE_ZIPF`), :data:`SPARSE_MOST`)
    of their photos, so people with one photo stay singletons and everyone
    else appears twice or more, a few many times."""
    rng = np.random.default_rng(seed)
    faces: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        if label is not None:
            faces.setdefault(label, []).append(i)
    names = sorted(faces)
    drawn = []
    for d in range(draws):
        chosen = rng.choice(names, min(len(names), int(rng.integers(people[0], people[1] + 1))), replace=False)
        rows = []
        for name in chosen.tolist():
            own = faces[name]
            take = min(len(own), 1 + int(rng.zipf(SPARSE_ZIPF)), SPARSE_MOST)
            rows.extend(rng.choice(own, take, replace=False).tolist())
        rows = np.sort(np.asarray(rows))
        drawn.append((f"sparse draw {d + 1}", X[rows], [labels[i] for i in rows]))
    return drawn


def web_pool(sets: dict, lfw_min: int | None = WEB_LFW_MIN,
             sources: tuple[str, ...] = ("five_celebs", "glint_aligned_crops")) -> dict[str, np.ndarray]:
    """Person (lower-case name, :data:`ALIASES` applied) -> encodings of their
    labelled faces in the web sets ``sources`` and, unless ``lfw_min`` is
    None, of LFW's people with at least ``lfw_min`` photos there (one person
    across sets is one)."""
    pool: dict[str, list[np.ndarray]] = {}

    def add(source: str, minimum: int) -> None:
        X, largest, _ = sets[source]
        faces: dict[str, list[int]] = {}
        for i, label in enumerate(largest):
            if label is not None:
                faces.setdefault(label, []).append(i)
        for label, rows in faces.items():
            if len(rows) >= minimum:
                name = " ".join(label.replace("_", " ").lower().split())
                pool.setdefault(ALIASES.get(name, name), []).append(X[rows])

    for source in sources:
        add(source, 2)
    if lfw_min is not None:
        add("LFW, all", lfw_min)
    return {name: np.concatenate(parts) for name, parts in sorted(pool.items())}


def web_collections(pool: dict[str, np.ndarray], source: str = "web", draws: int = WEB_DRAWS, seed: int = 0,
                    people: tuple[int, int] = WEB_PEOPLE) -> list[tuple[str, np.ndarray, list]]:
    """(source, encodings, labels) of ``draws`` collections of ``people`` (low,
    high) people drawn from ``pool`` (:func:`web_pool`), 10-40 faces of each
    (all of them where fewer), seeded."""
    rng = np.random.default_rng(seed)
    names = sorted(pool)
    drawn = []
    for _ in range(draws):
        chosen = rng.choice(names, min(len(names), int(rng.integers(people[0], people[1] + 1))), replace=False)
        parts, labels = [], []
        for name in chosen.tolist():
            faces = pool[name]
            take = min(len(faces), int(rng.integers(10, 41)))
            parts.append(faces[np.sort(rng.choice(len(faces), take, replace=False))])
            labels += [name] * take
        drawn.append((source, np.concatenate(parts), labels))
    return drawn


def collections_rows(drawn: list[tuple[str, np.ndarray, list]], graphs: list, best: list) -> list[str]:
    """One row per collection: its shape, its best fixed threshold, every
    method at its defaults (pairwise F1; the recommended method's precision
    and recall too)."""
    from facecluster.cluster import METHODS, RECOMMENDED_METHOD, cluster_encodings
    from facecluster.cluster.evaluation import evaluate

    lines = ["| collection | faces | people | people seen once | best fixed | "
             + " | ".join(f"**{m}** (P / R)" if m == RECOMMENDED_METHOD else m for m in METHODS) + " |",
             "|---|---:|---:|---:|---|" + "---:|" * len(METHODS)]
    for (name, X, labels), graph, (f1, where) in zip(drawn, graphs, best):
        counts = np.unique([label for label in labels if label is not None], return_counts=True)[1]
        cells = [name, str(len(X)), str(len(counts)), f"{(counts == 1).mean():.0%}", f"{f1:.3f} ({where})"]
        for method in METHODS:
            m = evaluate(cluster_encodings(X, method, graph=graph), labels)
            cells.append(f"{m['pairwise_f1']:.3f}" + (f" ({m['pairwise_precision']:.3f} / {m['pairwise_recall']:.3f})"
                                                       if method == RECOMMENDED_METHOD else ""))
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def sparse_and_web(data: Path, sets: dict, lfw_paths: list[str]) -> tuple[list, list]:
    """The sparse collections (LFW's pairs.txt photos, then the seeded draws)
    and the web collections, each as (name, encodings, labels)."""
    X, largest, _ = sets["LFW, all"]
    named = lfw_pairs_paths(data / "lfw-deepfunneled")
    rows = [i for i, path in enumerate(lfw_paths) if path in named]
    pairs = ("LFW pairs.txt", X[rows], [largest[i] for i in rows])
    web = web_collections(web_pool(sets, None), "five_celebs + glint")
    web += web_collections(web_pool(sets), f"five_celebs + glint + LFW's {WEB_LFW_MIN}+", seed=1)
    return [pairs] + sparse_collections(X, largest), web


def _pictures(paths: list[str]):
    """Who appears together, for photos: faces with one path share a picture."""
    from facecluster.cluster.constraints import Constraints

    return Constraints.from_records({"imagePath": p} for p in paths)


def hand_labels(records: list[dict], root: Path, name: str) -> list[str | None]:
    """Per record, the identity ``LABELS/<name>.csv`` gives the face at its place
    (``image`` relative to ``root``, ``time`` for a video frame, the box centre
    within 30 px), else ``None``."""
    import csv

    rows: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    with open(LABELS / f"{name}.csv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            moment = f"{float(row['time']):.3f}" if row["time"] else ""
            rows.setdefault((row["image"], moment), []).append((int(row["x"]), int(row["y"]), row["identity"]))
    labels = []
    for record in records:
        moment = f"{record['time']:.3f}" if "time" in record else ""
        top, right, bottom, left = record["loc"]
        x, y = (left + right) / 2, (top + bottom) / 2
        places = rows.get((os.path.relpath(record["imagePath"], root), moment), [])
        near = [who for px, py, who in places if abs(px - x) <= 30 and abs(py - y) <= 30]
        labels.append(near[0] if len(near) == 1 else None)
    return labels


def together_sets(data: Path, sets: dict, together: dict, work: Path) -> list[tuple[str, np.ndarray, list, object]]:
    """(name, encodings, labels of the faces in multi-face pictures, constraints)
    for every labelled set (largest faces labelled; face_recognition's examples
    with ``_multi_face`` labelled by hand), LFW composites (random people, and
    relatives) and both video clips (hand labels)."""
    import group_photos
    from quality import load_or_encode

    from facecluster.cluster.constraints import Constraints
    from facecluster.run.pipeline import list_dataset

    entries = []
    for name, (X, largest, _) in sets.items():
        labels = largest
        if name == "face_recognition_examples":
            records, _ = load_or_encode(str(CACHE / f"{name}.pickle"), list_dataset(str(data / name)).images)
            labels = [hand or label for hand, label in
                      zip(hand_labels(records, data / name, name), largest)]
        entries.append((name, X, labels, together[name]))
    lfw = data / "lfw-deepfunneled"
    for title, count, names in ((f"LFW group photos: {COMPOSITES} composites of 2-4 of 40 people", COMPOSITES, None),
                                (f"LFW group photos of relatives: {COMPOSITES // 4} composites of 2-4 of "
                                 f"{len(group_photos.RELATIVES)} Williams and Bushes", COMPOSITES // 4,
                                 group_photos.RELATIVES)):
        made = group_photos.make_composites(lfw, work / f"groups-{len(entries)}", count, people=40, names=names, seed=0)
        records, _ = load_or_encode(str(work / f"groups-{len(entries)}.pickle"), [c.path for c in made])
        entries.append((title, np.array([r["encoding"] for r in records]),
                        group_photos.composite_labels(records, made), Constraints.from_records(records)))
    records = video_records(data / "videos")
    for clip in sorted({r["imagePath"] for r in records}):
        mine = [r for r in records if r["imagePath"] == clip]
        entries.append((f"video: {Path(clip).name}", np.array([r["encoding"] for r in mine]),
                        hand_labels(mine, data / "videos", "videos"), Constraints.from_records(mine)))
    return entries


def video_records(folder: Path) -> list[dict]:
    """The records encode_faces.py makes of the videos in ``folder`` (its
    defaults; segments kept under ``CACHE``)."""
    from facecluster.detect.detectors import choose_detector
    from facecluster.embed.encoders import choose_encoder
    from facecluster.run.pipeline import Method, list_dataset
    from facecluster.run.videos import encode_videos

    CACHE.mkdir(parents=True, exist_ok=True)
    method = Method(choose_detector("auto")[0], choose_encoder("numpy")[0])
    records, _ = encode_videos(sorted(list_dataset(str(folder)).videos), str(CACHE / "videos.pickle"), method,
                               out=sys.stderr)
    return records


def together_report(entries: list[tuple[str, np.ndarray, list, object]]) -> list[str]:
    """Per set and method: pictures that show one cluster twice (of the
    multi-face pictures, and as a share), and pairwise F1 on the labelled
    faces of multi-face pictures."""
    from facecluster.cluster import METHODS, RECOMMENDED_METHOD, cluster_encodings
    from facecluster.cluster.constraints import count_repeated
    from facecluster.cluster.evaluation import evaluate

    runs = [(m, True) for m in METHODS] + [(RECOMMENDED_METHOD, False)]
    lines = ["| set | faces | multi-face pictures (labelled faces in them) | "
             + " | ".join(f"**{m}**" if m == RECOMMENDED_METHOD else m for m in METHODS)
             + f" | {RECOMMENDED_METHOD} not told who appears together |",
             "|---|---:|---:|" + "---:|" * len(runs)]
    for name, X, labels, constraints in entries:
        multi = np.zeros(len(X), dtype=bool)
        for faces in constraints.shared():
            multi[faces] = True
        truth = [label if m else None for label, m in zip(labels, multi)]
        scored = sum(t is not None for t in truth)
        pictures = constraints.multi_face_pictures()
        cells = [name, str(len(X)), f"{pictures} ({scored})"]
        for method, told in runs:
            found = cluster_encodings(X, method, constraints=constraints if told else None)
            twice = count_repeated(found, constraints)
            f1 = f"F1 {evaluate(found, truth)['pairwise_f1']:.3f}" if len({t for t in truth if t}) >= 2 else "F1 –"
            cells.append(f"{twice} ({100 * twice / max(pictures, 1):.0f}%), {f1}")
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def _fmt(config: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(GRID, config))


def main(argv: list[str] | None = None) -> int:
    from facecluster.cluster import METHODS, RECOMMENDED_METHOD
    from scale import write_report

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(faces_data()))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "lfw-deepfunneled").is_dir():
        parser.error(f"no lfw-deepfunneled/ in {data}; set FACES_DATA or pass --data")

    from facecluster.cluster.graph import knn_graph

    lfw_paths: list[str] = []
    sets = labelled_sets(data, lfw_paths)
    names = list(sets)
    sparse, web = sparse_and_web(data, sets, lfw_paths)
    groups = {"sparse collections": sparse, "web collections": web}
    group_graphs = {g: [knn_graph(X, GRAPH_K, exact=True) for _, X, _ in drawn] for g, drawn in groups.items()}
    group_best = {g: [best_fixed(X, (labels,), graph)[0] for (_, X, labels), graph in zip(drawn, group_graphs[g])]
                  for g, drawn in groups.items()}
    graphs = {name: knn_graph(X, GRAPH_K, exact=True) for name, (X, _, _) in sets.items()}
    together = pictures_of(data)
    best = {name: best_fixed(X, (a, b), graphs[name], together[name]) for name, (X, a, b) in sets.items()}
    lines = ["# Every method at its defaults on every labelled set", "",
             f"Written by `benchmarks/quality_sets.py`; {os.cpu_count()} cores; one exact {GRAPH_K}-neighbour "
             "graph per set, shared by all runs (each method reads its own k). Pairwise F1; "
             "`largest`: each photo's largest face scored; `single`: only photos with one face. "
             "Best fixed threshold: the best of chinese-whispers at 0.400-0.700 (steps of 0.025) and "
             "agglomerative at 0.40-0.65 (steps of 0.05) for that set and rule. Every method is told who "
             "appears together (faces of one photo are two people), as cluster_faces.py tells it.", "",
             "| set | faces | best fixed (largest) | best fixed (single) | "
             + " | ".join(f"{m} (largest / single)" for m in METHODS) + " |",
             "|---|---:|---|---|" + "---:|" * len(METHODS)]
    for name, (X, largest, single) in sets.items():
        lines.append(methods_row(name, X, (largest, single), graphs[name], best[name], together[name]))
        print(lines[-1], flush=True)
    for name in FOLDER_SETS:
        if (CORRECTIONS / f"{name}.csv").is_file():
            X, largest, single, _ = encoded(data / name, name, corrected=False)
            truth = (largest, single)
            lines.append(methods_row(f"{name}, source labels (not used below)", X, truth, graphs[name],
                                     best_fixed(X, truth, graphs[name], together[name]), together[name]))
            print(lines[-1], flush=True)

    lines += ["", "## Sparse collections: thousands of people, most seen once or twice", "",
              f"All the photos named in LFW's pairs.txt, and {SPARSE_DRAWS} seeded draws from all of LFW: "
              f"{SPARSE_PEOPLE[0]}-{SPARSE_PEOPLE[1]} people at random, each with min(their photos, 1 + Zipf("
              f"{SPARSE_ZIPF:g}), {SPARSE_MOST}) of their photos (largest face). Pairwise F1; best fixed as above, "
              "per collection.", ""]
    lines += collections_rows(sparse, group_graphs["sparse collections"], group_best["sparse collections"])
    lines += ["", "## Web collections: 5-20 people photographed over many years", "",
              f"{WEB_DRAWS} seeded draws of {WEB_PEOPLE[0]}-{WEB_PEOPLE[1]} people from five_celebs and "
              f"glint_aligned_crops (corrected labels), and {WEB_DRAWS} from those and LFW's people with "
              f"{WEB_LFW_MIN}+ photos (one person across sets is one), 10-40 faces of each. Pairwise F1 against "
              "each draw's best fixed threshold.", ""]
    lines += small_collections_report(web)

    results = {}
    runners = {name: grid_runner(X, graphs[name], (a, b)) for name, (X, a, b) in sets.items()}
    group_runners = {group: [grid_runner(X, graph, (labels,)) for (_, X, labels), graph in zip(drawn, group_graphs[group])]
                     for group, drawn in groups.items()}
    for config in itertools.product(*GRID.values()):
        params = dict(zip(GRID, config))
        results[config] = {name: run(params) for name, run in runners.items()}
        for group, runs in group_runners.items():
            f1 = float(np.mean([run(params)[0] for run in runs]))
            results[config][group] = (f1, f1)
        print(_fmt(config), " ".join(f"{v[0]:.3f}" for v in results[config].values()), flush=True)
    for group in groups:
        mean_best = float(np.mean([f1 for f1, _ in group_best[group]]))
        best[group] = [(mean_best, "per collection"), (mean_best, "per collection")]
    names += list(groups)
    from facecluster.cluster import adaptive

    defaults = tuple(getattr(adaptive, name) for name in _SETTINGS)
    lines += ["", f"## Leave-one-set-out: {RECOMMENDED_METHOD}", "",
              f"Grid: {'; '.join(f'{k} in {v}' for k, v in GRID.items())}. Shipped defaults: {_fmt(defaults)}. "
              "Ties go to the grid point with the fewest parameters moved from them.", ""]
    lines += leave_one_set_out(results, best, names, defaults)
    lines += ["", "## Small collections drawn from the large sets", "",
              f"{DRAWS} collections from each source: 3-8 people with 10+ faces each, 10-40 faces of each, seeded; "
              "'+ N strangers a face': N times as many faces of other LFW people added, unlabelled (background "
              "faces: clustered, not scored). Pairwise F1 (largest face); the best fixed threshold is "
              "the sweep's best for each draw (as above).", ""]
    lines += small_collections_report(small_collections(sets) + small_collections(sets, ("LFW, all",), strangers=1)
                                      + small_collections(sets, ("LFW, all",), strangers=2))
    import tempfile

    lines += ["", "## Who appears together: pictures that show one cluster twice", "",
              "Per method at its defaults: the pictures (photos, or video frames) with two or more faces "
              "that show one cluster twice, their share of the multi-face pictures, and pairwise F1 on the "
              "labelled faces of multi-face pictures (LFW and the folder sets: the largest face of each; the "
              "composites, `_multi_face` and the clips: every face, by hand or by tile). Composites: LFW "
              "photos side by side (benchmarks/group_photos.py), encoded by the real pipeline.", ""]
    with tempfile.TemporaryDirectory(prefix="quality-groups-") as work:
        lines += together_report(together_sets(data, sets, together, Path(work)))
    lines += ["", f"## {RECOMMENDED_METHOD}: every grid point (pairwise F1, largest face)", "",
              "| parameters | " + " | ".join(names) + " | worst shortfall |", "|---|" + "---:|" * (len(names) + 1)]
    for config, by_set in results.items():
        worst = min(by_set[s][r] - best[s][r][0] for s in names for r in range(2))
        lines.append(f"| {_fmt(config)} | " + " | ".join(f"{by_set[s][0]:.3f}" for s in names) + f" | {worst:+.3f} |")
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Clustering quality on real faces: the sweep that chose facecluster's defaults.

Builds the LFW subsets that ``shared/datasets/README.md`` describes, encodes
them once with encode_faces.py's pipeline, then sweeps each clustering method's
parameters and scores every run against the true identities.

Subsets (deterministic, by sorted folder and file name):

- ``bench-3474``: every identity with >= 10 images (its first 30 images) plus
  the first 500 singletons: 3,474 images, 158 identities + 500 outliers.
- ``demo``: the first 5 identities with >= 25 images (25 images each) plus the
  first 4 singletons: 129 images.  It is a subset of bench-3474, so its
  encodings are taken from the same cache.

Usage::

    python benchmarks/quality.py                       # LFW from $FACES_DATA
    python benchmarks/quality.py --encodings enc.pickle --labels folders
    python benchmarks/quality.py --encodings enc.pickle --labels key.csv --dataset-root dataset/

LFW: G. B. Huang et al., "Labeled Faces in the Wild", UMass Amherst TR 07-49,
2007 (deep-funneled version: Huang, Mattar, Lee, Learned-Miller, NIPS 2012).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
from collections import Counter
import sys
import time

import numpy as np

from bench_paths import ROOT, faces_data, machine  # noqa: E402  (first: sets up sys.path)

DEFAULT_CACHE = str(ROOT / ".cache" / "quality" / "bench-3474.pickle")
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "quality-lfw-bench.md"


# --------------------------------------------------------------------------
# Subsets
# --------------------------------------------------------------------------

def _identities(lfw_root: str) -> list[tuple[str, list[str]]]:
    """``(identity, sorted image names)`` for every identity folder, sorted."""
    out = []
    for name in sorted(os.listdir(lfw_root)):
        folder = os.path.join(lfw_root, name)
        if name.startswith("_") or not os.path.isdir(folder):
            continue
        images = sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpg", ".jpeg", ".png")))
        if images:
            out.append((name, images))
    return out


def lfw_subset(lfw_root: str, subset: str) -> list[str]:
    """Absolute image paths of the named LFW subset, in a fixed order.

    ``bench-3474``: identities with >= 10 images (first 30 each) + first 500
    singletons.  ``demo``: first 5 identities with >= 25 images (first 25
    each) + first 4 singletons.
    """
    people = _identities(lfw_root)
    if subset == "bench-3474":
        many, per, n_single = [p for p in people if len(p[1]) >= 10], 30, 500
    elif subset == "demo":
        many, per, n_single = [p for p in people if len(p[1]) >= 25][:5], 25, 4
    else:
        raise ValueError(f"unknown subset {subset!r}; expected 'bench-3474' or 'demo'")
    singles = [p for p in people if len(p[1]) == 1][:n_single]
    paths = [os.path.join(lfw_root, name, image) for name, images in many for image in images[:per]]
    paths += [os.path.join(lfw_root, name, images[0]) for name, images in singles]
    return paths


# --------------------------------------------------------------------------
# Encoding (our encode_faces.py pipeline, cached and incremental)
# --------------------------------------------------------------------------

def load_or_encode(cache: str, image_paths: list[str], mirror: bool = True) -> tuple[list[dict], float]:
    """Records for ``image_paths`` with their encoding time, as encode_faces.py
    makes them with its defaults (``-d auto``; ``mirror=False``: as with
    ``--no-mirror``).  Results are kept beside ``cache`` (its ``.cache.sqlite``),
    so only the first run pays for encoding."""
    from facecluster.detect.detectors import choose_detector
    from facecluster.embed.encoders import choose_encoder
    from facecluster.run.pipeline import Method, encode_dataset
    from facecluster.sources.folder import Listing

    os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
    records, summary = encode_dataset(Listing(images=sorted(image_paths)), cache, Method(choose_detector("auto")[0], choose_encoder("numpy", mirror=mirror)[0]),
                                      on_result=lambda result, reused: None)
    print(f"[INFO] {summary.images} images, {summary.faces} faces ({summary.reused} reused, "
          f"{summary.encoded} encoded) in {summary.seconds:.0f} s", file=sys.stderr)
    return records, summary.seconds if summary.encoded == summary.images else float("nan")


# --------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------

def _grid(start: float, stop: float, step: float) -> list[float]:
    return [round(start + i * step, 3) for i in range(int(round((stop - start) / step)) + 1)]


SWEEPS = {
    "dbscan": [{"eps": e, "min_samples": m} for m in (2, 3, 5) for e in _grid(0.35, 0.6, 0.05)],
    "chinese-whispers": [{"threshold": t} for t in _grid(0.35, 0.6, 0.025)],
    "agglomerative": [{"threshold": t} for t in _grid(0.4, 0.7, 0.025)],
}
DEMO_SWEEPS = {
    "dbscan": [{"eps": e, "min_samples": 5} for e in _grid(0.35, 0.6, 0.05)],
    "chinese-whispers": [{"threshold": t} for t in _grid(0.35, 0.6, 0.05)],
    "agglomerative": [{"threshold": t} for t in _grid(0.4, 0.7, 0.05)],
}
QUICK_SWEEPS = {
    "dbscan": [{"eps": e, "min_samples": m} for m in (2, 5) for e in (0.4, 0.45, 0.5)],
    "chinese-whispers": [{"threshold": t} for t in (0.45, 0.475, 0.5)],
    "agglomerative": [{"threshold": t} for t in (0.5, 0.55, 0.6)],
}


def run_one(X: np.ndarray, identities: list, method: str, params: dict, *, jobs: int, seed: int = 0) -> dict:
    """Cluster once with facecluster and score it; adds ``seconds``."""
    from facecluster.cluster.methods import cluster_encodings
    from facecluster.cluster.evaluation import evaluate

    start = time.perf_counter()
    labels = cluster_encodings(X, method, jobs=jobs, seed=seed, **params)
    seconds = time.perf_counter() - start
    return {**evaluate(labels, identities), "seconds": seconds, "labels": labels}


def run_dlib(X: np.ndarray, identities: list, threshold: float) -> dict:
    """dlib's own chinese_whispers_clustering, the reference our seeded
    implementation must match in quality."""
    import dlib

    from facecluster.cluster.methods import _canonical_labels
    from facecluster.cluster.evaluation import evaluate

    start = time.perf_counter()
    raw = dlib.chinese_whispers_clustering([dlib.vector(row) for row in X.tolist()], threshold)
    labels = _canonical_labels(np.asarray(raw))
    return {**evaluate(labels, identities), "seconds": time.perf_counter() - start, "labels": labels}


def dlib_check(X: np.ndarray, identities: list, thresholds: list[float], *, jobs: int, seeds: int = 5) -> list[str]:
    """Our Chinese whispers against dlib's: in its dlib-equivalent unit-weight
    mode it must score like dlib; the similarity-weighted mode is the one
    facecluster uses.  Pairwise F1, mean [min - max] over seeds."""
    from facecluster.cluster.graph import knn_graph
    from facecluster.cluster.methods import _canonical_labels, _chinese_whispers
    from facecluster.cluster.evaluation import evaluate

    lines = ["", "Implementation check against dlib's own `chinese_whispers_clustering` (unit weights, fixed "
             f"internal seed). Ours: pairwise F1 mean [min - max] over seeds 0-{seeds - 1}.", "",
             "| threshold | dlib pair F1 | dlib BCubed F1 | ours, unit weights (as dlib) | ours, weighted (used) |"
             " ours weighted BCubed F1 (mean) |", "|---:|---:|---:|---:|---:|---:|"]
    for t in thresholds:
        d = run_dlib(X, identities, t)
        cells = [f"{t}", f"{d['pairwise_f1']:.3f}", f"{d['bcubed_f1']:.3f}"]
        bc = []
        for weighted in (False, True):
            f1 = []
            for seed in range(seeds):
                m = evaluate(_canonical_labels(_chinese_whispers(knn_graph(X, 32, jobs=jobs), t, seed=seed, weighted=weighted)),
                             identities)
                f1.append(m["pairwise_f1"])
                bc.append(m["bcubed_f1"]) if weighted else None
            cells.append(f"{np.mean(f1):.3f} [{min(f1):.3f} - {max(f1):.3f}]")
        cells.append(f"{np.mean(bc):.3f}")
        print("dlib check", " | ".join(cells), flush=True)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


ROW_HEAD = ("| {what} | clusters | outliers | pair P | pair R | **pair F1** | BCubed P | BCubed R | **BCubed F1** "
            "| NMI | ARI | time (s) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def _row(label: str, m: dict, bold: bool = False) -> str:
    cells = [label, str(m["clusters"]), str(m["outliers"])] + [
        f"{m[k]:.3f}" for k in ("pairwise_precision", "pairwise_recall", "pairwise_f1",
                                "bcubed_precision", "bcubed_recall", "bcubed_f1", "nmi", "ari")
    ] + [f"{m['seconds']:.2f}"]
    if bold:
        cells = [f"**{c}**" for c in cells]
    return "| " + " | ".join(cells) + " |"


def _is_default(method: str, params: dict) -> bool:
    from facecluster.cluster.methods import DEFAULTS

    return all(abs(params.get(k, v) - v) < 1e-9 for k, v in DEFAULTS[method].items())


def sweep(X: np.ndarray, identities: list, sweeps: dict, *, jobs: int, with_dlib: bool) -> tuple[list[str], dict]:
    """Run every grid point; return markdown lines and the best run per method."""
    lines, best = [], {}
    for method, grid in sweeps.items():
        lines += ["", f"### {method}", "", ROW_HEAD.format(what="parameters")]
        for params in grid:
            try:
                m = run_one(X, identities, method, params, jobs=jobs)
            except ValueError as error:  # e.g. agglomerative refused for memory
                lines.append(f"| {_fmt_params(params)} | refused: {error} |")
                continue
            print(f"{method:17s} {_fmt_params(params):28s} clusters {m['clusters']:4d} outliers {m['outliers']:4d} "
                  f"pairF1 {m['pairwise_f1']:.3f} BCubedF1 {m['bcubed_f1']:.3f} {m['seconds']:.2f}s", flush=True)
            lines.append(_row(_fmt_params(params), m, bold=_is_default(method, params)))
            if m["pairwise_f1"] > best.get(method, ({}, {"pairwise_f1": -1}))[1]["pairwise_f1"]:
                best[method] = (params, m)
        if method == "chinese-whispers" and with_dlib:
            lines += dlib_check(X, identities, [p["threshold"] for p in grid], jobs=jobs)
    return lines, best


def defaults_table(sets: dict[str, tuple[np.ndarray, list]], *, jobs: int) -> list[str]:
    """Each method at its defaults on each named set."""
    from facecluster.cluster.methods import METHODS

    from facecluster.cluster import looks_collapsed

    head = ROW_HEAD.format(what="set / method").split("\n")
    lines = [head[0] + " looks collapsed |", head[1] + "---|"]
    for name, (X, identities) in sets.items():
        for method in METHODS:
            try:
                m = run_one(X, identities, method, {}, jobs=jobs)
            except ValueError as error:
                lines.append(f"| {name} / {method} | refused: {error} |")
                continue
            lines.append(_row(f"{name} / {method}", m) + f" {'yes' if looks_collapsed(m['labels'], X) else 'no'} |")
    return lines


def five_person_sets(X: np.ndarray, identities: list, *, jobs: int) -> list[str]:
    """Clean 5-person sets: the repeated identities taken 5 at a time in name
    order (no outliers).  How often does each method find exactly 5 people?"""
    from facecluster.cluster.methods import METHODS

    counts = Counter(p for p in identities if p is not None)
    people = sorted(p for p, c in counts.items() if c >= 5)  # the >= 10-image identities, not singletons
    groups = [people[i:i + 5] for i in range(0, len(people) - 4, 5)]
    lines = ["| method (defaults) | sets | exactly 5 clusters | mean pair F1 | min pair F1 | mean BCubed F1 "
             "| min BCubed F1 |", "|---|---:|---:|---:|---:|---:|---:|"]
    ident = np.asarray([p if p is not None else "" for p in identities], dtype=object)
    for method in METHODS:
        exact, pf, bf = 0, [], []
        for group in groups:
            rows = np.flatnonzero(np.isin(ident, group))
            m = run_one(X[rows], [identities[i] for i in rows], method, {}, jobs=jobs)
            exact += m["clusters"] == 5
            pf.append(m["pairwise_f1"])
            bf.append(m["bcubed_f1"])
        lines.append(f"| {method} | {len(groups)} | {exact} | {np.mean(pf):.3f} | {min(pf):.3f} "
                     f"| {np.mean(bf):.3f} | {min(bf):.3f} |")
    return lines


def seed_spread(X: np.ndarray, identities: list, *, jobs: int, seeds: int = 5) -> str:
    """How much chinese-whispers' pairwise F1 at its default moves with the seed."""
    from facecluster.cluster.methods import DEFAULTS

    f1 = [run_one(X, identities, "chinese-whispers", {}, jobs=jobs, seed=s)["pairwise_f1"] for s in range(seeds)]
    return (f"chinese-whispers at threshold {DEFAULTS['chinese-whispers']['threshold']}, seeds 0-{seeds - 1}: "
            f"pairwise F1 {min(f1):.3f} .. {max(f1):.3f}")


def scale_table(X: np.ndarray, *, jobs: int, copies: tuple[int, ...] = (1, 4)) -> list[str]:
    """Time each method at its defaults on the encodings and on ``k`` noisy
    copies of them (Gaussian noise, ~0.24 between copies): timing only, the
    copies have no ground truth."""
    from facecluster.cluster.memory import estimate_memory_bytes
    from facecluster.cluster.methods import METHODS, cluster_encodings

    rng = np.random.default_rng(0)
    lines = ["| faces | " + " | ".join(f"{m} (s)" for m in METHODS) + " | agglomerative memory estimate |",
             "|---:|" + "---:|" * (len(METHODS) + 1)]
    for k in copies:
        Xk = np.vstack([X] + [X + rng.normal(0, 0.015, X.shape) for _ in range(k - 1)])
        cells = [str(len(Xk))]
        for method in METHODS:
            start = time.perf_counter()
            try:
                cluster_encodings(Xk, method, jobs=jobs)
            except ValueError:
                cells.append("refused (memory)")
                continue
            cells.append(f"{time.perf_counter() - start:.1f}")
        cells.append(f"{estimate_memory_bytes(len(Xk), 'agglomerative') / 1e9:.2f} GB")
        print("scale", " | ".join(cells), flush=True)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def _records_arrays(data: list[dict]) -> tuple[np.ndarray, list[str]]:
    return np.asarray([r["encoding"] for r in data], dtype=np.float64), [r["imagePath"] for r in data]


def _describe(data: list[dict], n_images: int | None) -> str:
    per_image: dict[str, int] = {}
    for r in data:
        per_image[r["imagePath"]] = per_image.get(r["imagePath"], 0) + 1
    text = f"{len(data)} faces from {len(per_image)} images"
    if n_images is not None:
        text += f" ({n_images} in the subset; {n_images - len(per_image)} with no face found"
        text += f", {sum(1 for v in per_image.values() if v > 1)} with more than one)"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", help="LFW deep-funneled folder (default: $FACES_DATA/lfw-deepfunneled)")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="encodings file for bench-3474; results are kept beside it")
    parser.add_argument("--encodings", help="score this tutorial-format pickle instead of the LFW subsets")
    parser.add_argument("--labels", default="folders", help="'folders' or a CSV with path,identity (with --encodings)")
    parser.add_argument("--dataset-root", help="folder the CSV's paths are relative to (with --encodings)")
    parser.add_argument("--out", help="markdown report (default: benchmarks/results/quality-lfw-bench.md, "
                        "or quality-<encodings name>.md)")
    parser.add_argument("--quick", action="store_true", help="a few grid points only")
    parser.add_argument("--no-dlib", action="store_true", help="skip the dlib chinese-whispers reference runs")
    parser.add_argument("--no-scale", action="store_true", help="skip the timing runs on 4x the encodings")
    parser.add_argument("--jobs", type=int, default=1, help="n_jobs for the neighbour searches (default 1)")
    args = parser.parse_args(argv)

    from facecluster.cluster.methods import DEFAULTS
    from facecluster.cluster.evaluation import primary_face_labels, read_labels

    sweeps = QUICK_SWEEPS if args.quick else SWEEPS
    sets: dict[str, tuple[np.ndarray, list]] = {}
    notes: list[str] = []
    if args.encodings:
        from facecluster.store import load_encodings

        data = load_encodings(args.encodings)
        X, paths = _records_arrays(data)
        try:
            identities = primary_face_labels(data, read_labels(args.labels, paths, args.dataset_root))
        except ValueError as error:
            parser.error(str(error))
        if not any(i is not None for i in identities):
            parser.error(f"no face in {args.encodings} has a label from {args.labels!r}"
                         + ("" if args.dataset_root else "; pass --dataset-root"))
        name = os.path.splitext(os.path.basename(args.encodings))[0]
        sets[name] = (X, identities)
        out = args.out or str(ROOT / "benchmarks" / "results" / f"quality-{name}.md")
        title = f"Clustering quality on `{args.encodings}` (labels: `{args.labels}`)"
        notes.append(f"- {_describe(data, None)}; {sum(i is not None for i in identities)} labelled.")
    else:
        lfw = args.lfw or os.path.join(str(faces_data()),
                                       "lfw-deepfunneled")
        if not os.path.isdir(lfw):
            parser.error(f"no LFW folder at {lfw}; pass --lfw or set FACES_DATA")
        bench_paths = lfw_subset(lfw, "bench-3474")
        data, seconds = load_or_encode(args.cache, bench_paths)
        X, paths = _records_arrays(data)
        folder_labels = read_labels("folders", paths, lfw)
        identities = primary_face_labels(data, folder_labels)
        sets["bench-3474"] = (X, identities)
        demo = set(lfw_subset(lfw, "demo"))
        rows = [i for i, p in enumerate(paths) if p in demo]
        sets["demo"] = (X[rows], [identities[i] for i in rows])
        sets["bench-3474, bystanders labelled too"] = (X, folder_labels)
        out = args.out or str(DEFAULT_OUT)
        title = "Clustering quality on LFW (bench-3474 and demo subsets)"
        notes.append(f"- bench-3474: {_describe(data, len(bench_paths))}. In a photo with several faces "
                     "only the largest takes the photo's label (LFW names the person the photo is of); "
                     f"the other {sum(i is None for i in identities)} faces are bystanders, clustered but not "
                     "scored. The row \"bystanders labelled too\" scores every face as its folder's person.")
        notes.append(f"- demo: {_describe([data[i] for i in rows], len(demo))}.")
        notes.append("- Encodings: encode_faces.py's pipeline with its defaults (`-d auto`, the mirror pass)"
                     + (f", {seconds:.0f} s for {len(bench_paths)} images." if seconds == seconds else "."))

    main_name = next(iter(sets))
    X, identities = sets[main_name]
    print(f"[INFO] {main_name}: {len(X)} faces, {sum(i is not None for i in identities)} labelled", file=sys.stderr)
    lines = [f"# {title}", "",
             f"Written by `benchmarks/quality.py` on {_dt.date.today().isoformat()}; machine: {machine()}; "
             f"jobs={args.jobs}.", ""]
    lines += notes
    lines += ["", "Pairwise scores count pairs of faces (large clusters weigh most); BCubed scores are per face. "
              "Outliers (-1) count as clusters of one. Defaults in bold: "
              + "; ".join(f"{m} {_fmt_params(p)}" for m, p in DEFAULTS.items()) + ".", ""]
    lines += ["## Each method at its defaults", ""] + defaults_table(sets, jobs=args.jobs)
    if not args.encodings:
        lines += ["", "## Clean 5-person sets", "",
                  "The bench identities with >= 10 images, 5 at a time in name order (up to 30 "
                  "images each, no outliers).", ""]
        lines += five_person_sets(X, identities, jobs=args.jobs)
    sweep_lines, best = sweep(X, identities, sweeps, jobs=args.jobs, with_dlib=not args.no_dlib)
    lines += ["", f"## Sweeps on {main_name}"] + sweep_lines
    if "demo" in sets:
        demo_lines, _ = sweep(*sets["demo"], QUICK_SWEEPS if args.quick else DEMO_SWEEPS, jobs=args.jobs,
                              with_dlib=False)
        lines += ["", "## Sweeps on demo"] + demo_lines
    lines += ["", "## Best pairwise F1 per method", ""]
    lines += [f"- {m}: {_fmt_params(p)} -> pairwise F1 {r['pairwise_f1']:.3f}, BCubed F1 {r['bcubed_f1']:.3f}, "
              f"{r['clusters']} clusters, {r['outliers']} outliers" for m, (p, r) in best.items()]
    lines += ["", "- " + seed_spread(X, identities, jobs=args.jobs)]
    if not args.no_scale:
        lines += ["", "## Time as the collection grows", "",
                  f"Each method at its defaults on the {main_name} encodings and on them plus 3 noisy copies "
                  "(timing only). Agglomerative's time and memory grow as n^2; dbscan's and "
                  "chinese-whispers' neighbour search is n^2 in time but linear in memory.", ""]
        lines += scale_table(X, jobs=args.jobs)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"[INFO] wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

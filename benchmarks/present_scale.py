#!/usr/bin/env python3
"""Whether the presentation step stays fast at a million faces in 100,000 clusters.

Builds synthetic records (random unit 128-d encodings, photo paths that do
not exist, two faces a photo) and labels numbered by size as the clustering
numbers them, then runs ``present()`` writing files (no windows): every face
to clusters.csv / clusters.json, montages and gallery for the largest
clusters.  Prints seconds and peak memory of each step.  Not a test.

Usage: python benchmarks/present_scale.py [--faces 1000000] [--clusters 100000] [--out DIR]
"""

import argparse
import logging
import os
import resource
import tempfile
import time

import numpy as np

import bench_paths  # noqa: E402,F401  (sets up sys.path)
from facecluster.present import PresentOptions, present  # noqa: E402
from facecluster.present.clusters import group_clusters  # noqa: E402


def synthetic_labels(faces: int, clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Skewed cluster sizes (a few large, many small), 10% unknown, renumbered largest first."""
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.8
    raw = rng.choice(clusters, size=faces, p=weights / weights.sum())
    raw[rng.random(faces) < 0.1] = -1
    people = np.unique(raw[raw >= 0], return_counts=True)
    rank = np.empty(clusters, np.int64)
    rank[people[0][np.argsort(-people[1], kind="stable")]] = np.arange(len(people[0]))
    return np.where(raw >= 0, rank[np.maximum(raw, 0)], -1)


def synthetic_records(faces: int, rng: np.random.Generator) -> list[dict]:
    """Records whose encodings are rows of one float32 array (the records, not the floats, are measured)."""
    encodings = rng.standard_normal(size=(faces, 128), dtype=np.float32)  # no float64 copy to inflate the peak
    for start in range(0, faces, 100_000):
        chunk = encodings[start:start + 100_000]
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
    return [{"imagePath": f"/nonexistent/photos/{i // 2:07d}.jpg", "loc": (40, 140, 120, 60), "encoding": encodings[i]}
            for i in range(faces)]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=1_000_000)
    ap.add_argument("--clusters", type=int, default=100_000)
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one, removed)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(message)s")
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    records = synthetic_records(args.faces, rng)
    labels = synthetic_labels(args.faces, args.clusters, rng)
    print(f"setup: {len(records):,} records, {len(np.unique(labels)):,} clusters in "
          f"{time.perf_counter() - started:.1f} s, memory {current_mib():,.0f} MiB (peak {peak_mib():,.0f} MiB)")
    before = current_mib()
    started = time.perf_counter()
    group_clusters(records, labels)
    print(f"group_clusters alone: {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as temporary:
        out = args.out or os.path.join(temporary, "output")
        started = time.perf_counter()
        done = present(out, records, labels, PresentOptions(run={"benchmark": "present_scale"}))
        seconds = time.perf_counter() - started
        sizes = {name: os.path.getsize(os.path.join(out, name)) / 2**20 for name in ("clusters.csv", "clusters.json")}
        print(f"present(): {seconds:.1f} s, {len(done.montages)} montages, {len(done.pages)} gallery pages, "
              f"{done.left_out:,} clusters left out of montages and gallery; "
              + ", ".join(f"{name} {size:,.0f} MiB" for name, size in sizes.items()))
        print(f"peak memory: {peak_mib():,.0f} MiB ({peak_mib() - before:+,.0f} MiB over the records' {before:,.0f} MiB)")


if __name__ == "__main__":
    main()

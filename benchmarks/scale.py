"""Time and peak memory of clustering 10k to 1M faces (``make bench-scale``).

For each size a synthetic collection (:mod:`benchmarks.synthetic`, distances
calibrated to dlib's on LFW) is written once as a tutorial-format pickle under
``.cache/scale/``; then, in a fresh process per method so that peak RSS is the
run's own, the benchmark times

1. loading it as ``cluster_faces.py`` does (:func:`facecluster.store.load_encodings`
   and :func:`~facecluster.store.take_encodings`),
2. clustering it (:func:`facecluster.cluster.cluster_encodings`, defaults, with the
   constraints of who appears together read from the records),
3. writing ``clusters.csv`` (:func:`facecluster.present.export.write_clusters_csv`),

and records the process' peak resident memory.  At 100k faces it also checks
that the approximate (inverted-file index) graph gives the same clusters as the exact one
(adjusted Rand index).  Writes ``benchmarks/results/scale.md``.

Usage::

    python benchmarks/scale.py                    # 10k, 100k, 1M
    python benchmarks/scale.py --sizes 10000 100000 --methods adaptive
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from bench_paths import ROOT, machine  # noqa: E402  (first: sets up sys.path)

CACHE = ROOT / ".cache" / "scale"
OUT = ROOT / "benchmarks" / "results" / "scale.md"
SIZES = (10_000, 100_000, 1_000_000)


def write_collection(n: int, seed: int = 0) -> Path:
    """The synthetic ``n``-face pickle (tutorial format, float64 encodings) and
    its ground truth ``.persons.npy``; made once, then reused."""
    from synthetic import synthetic_encodings

    path = CACHE / f"synthetic-{n}.pickle"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    X, person = synthetic_encodings(n, seed)
    records = [{"imagePath": f"photos/{i // 1000:04d}/{i:08d}.jpg", "loc": (20, 116, 116, 20),
                "encoding": X[i].astype(np.float64)} for i in range(n)]
    del X
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(records, handle, protocol=4)
    np.save(path.with_suffix(".persons.npy"), person)
    os.replace(tmp, path)
    return path


def run_one(path: Path, method: str, out_dir: Path, jobs: int) -> dict:
    """Load, cluster, write, as ``cluster_faces.py`` does it, in this process.  Returns the timings."""
    from facecluster.cluster import cluster_encodings
    from facecluster.cluster.constraints import Constraints
    from facecluster.present.clusters import group_clusters
    from facecluster.present.export import write_clusters_csv
    from facecluster.store import load_encodings, take_encodings

    times = {}
    start = time.perf_counter()
    records = load_encodings(path)
    encodings = take_encodings(records)  # one float32 array; the records keep path and box
    times["load_s"] = time.perf_counter() - start
    start = time.perf_counter()
    labels = cluster_encodings(encodings, method, jobs=jobs, constraints=Constraints.from_records(records))
    times["cluster_s"] = time.perf_counter() - start
    start = time.perf_counter()
    write_clusters_csv(out_dir / f"clusters-{method}-{len(labels)}.csv", records, group_clusters(records, labels))
    times["write_s"] = time.perf_counter() - start
    np.save(out_dir / f"labels-{method}-{len(labels)}.npy", labels)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    times["peak_rss_gb"] = usage.ru_maxrss * 1024 / 1e9
    # CPU seconds, all threads: on a shared machine wall time also counts the others' load.
    times["cpu_s"] = usage.ru_utime + usage.ru_stime
    times["clusters"] = int(labels.max() + 1)
    times["outliers"] = int((labels < 0).sum())
    return times


def measure(path: Path, method: str, jobs: int) -> dict:
    """:func:`run_one` in a fresh interpreter, so that its peak RSS is its own."""
    code = ("import json, sys; from pathlib import Path; sys.path.insert(0, %r); import scale; "
            "print(json.dumps(scale.run_one(Path(%r), %r, Path(%r), %d)))"
            % (str(ROOT / "benchmarks"), str(path), method, str(CACHE), jobs))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["total_s"] = time.perf_counter() - start
    return result


def agreement(n: int, method: str, jobs: int) -> tuple[float, float]:
    """ARI between the approximate-graph and exact-graph clusters of the ``n``-face
    collection, and ARI of the approximate clusters against the true persons
    (outliers counted as people of one photo)."""
    from sklearn.metrics import adjusted_rand_score

    from facecluster.cluster import cluster_encodings
    from synthetic import synthetic_encodings

    X, person = synthetic_encodings(n, 0)
    approximate = outliers_apart(cluster_encodings(X, method, jobs=jobs, exact=False))
    exact = outliers_apart(cluster_encodings(X, method, jobs=jobs, exact=True))
    return adjusted_rand_score(exact, approximate), adjusted_rand_score(person, approximate)


def outliers_apart(labels: np.ndarray) -> np.ndarray:
    """Each outlier (-1) a cluster of its own, as the evaluation counts them."""
    labels = labels.copy()
    out = labels < 0
    labels[out] = labels.max() + 1 + np.arange(out.sum())
    return labels


def write_report(out: str | Path, lines: list[str]) -> None:
    """Write a markdown report, making its folder."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n")
    print(f"[INFO] wrote {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from facecluster.cluster import RECOMMENDED_METHOD

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--methods", nargs="+", default=[RECOMMENDED_METHOD, "dbscan"])
    parser.add_argument("--jobs", type=int, default=-1)
    parser.add_argument("--agreement-at", type=int, default=100_000, help="faces for the ANN-vs-exact check (0: skip)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)

    rows = ["| faces | method | load (s) | cluster (s) | write (s) | total (s) | CPU (s) | peak RSS (GB) | clusters "
            "| outliers |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in args.sizes:
        path = write_collection(n)
        for method in args.methods:
            r = measure(path, method, args.jobs)
            if "error" in r:
                rows.append(f"| {n:,} | {method} | failed: {r['error']} |")
            else:
                rows.append(f"| {n:,} | {method} | {r['load_s']:.1f} | {r['cluster_s']:.1f} | {r['write_s']:.1f} "
                            f"| {r['total_s']:.1f} | {r.get('cpu_s', float('nan')):.0f} | {r['peak_rss_gb']:.2f} "
                            f"| {r['clusters']:,} | {r['outliers']:,} |")
            print(rows[-1], flush=True)
    lines = ["# Clustering at scale", "", f"Written by `benchmarks/scale.py` on {date.today().isoformat()}; {machine()}; "
             f"load average {os.getloadavg()[0]:.1f} at the end; "
             "synthetic collections (benchmarks/synthetic.py). Each run is a fresh process doing what "
             "cluster_faces.py does: load the tutorial-format pickle (load_encodings + take_encodings), "
             "cluster at the method's defaults, write clusters.csv (write_clusters_csv).", ""] + rows
    if args.agreement_at:
        lines += ["", f"Approximate graph against the exact graph at {args.agreement_at:,} faces (ARI):", ""]
        for method in args.methods:
            same, truth = agreement(args.agreement_at, method, args.jobs)
            lines.append(f"- {method}: ARI(approximate, exact) = {same:.4f}; ARI(approximate, true persons) = {truth:.4f}")
            print(lines[-1], flush=True)
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

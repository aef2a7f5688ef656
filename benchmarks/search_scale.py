"""Search speed and memory at 10k to 1M faces (``make bench-search``).

For each size the synthetic collection of ``benchmarks/scale.py`` (a
tutorial-format pickle under ``.cache/scale/``, distances calibrated to LFW's)
is searched in fresh processes, so that each peak RSS is its own:

1. **first search**: load the pickle and build the index
   (:func:`facecluster.people.search.open_index`; above 20,000 faces this trains
   the inverted-file index and keeps it beside the pickle);
2. **later searches**: the same with the kept index and the faces' places read back
   (no pickle);

then 50 queries (a random face each) are timed one by one, and their
same-person results (distance < 0.5) are compared with an exact brute-force
search (recall of the index).  Peak memory is taken before that check, which
loads the encodings again.  Writes
``benchmarks/results/search-scale.md``.

Usage::

    python benchmarks/search_scale.py                   # 10k, 100k, 1M
    python benchmarks/search_scale.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench_paths import ROOT  # noqa: E402  (first: sets up sys.path)

OUT = ROOT / "benchmarks" / "results" / "search-scale.md"
SIZES = (10_000, 100_000, 1_000_000)
QUERIES = 50


def run_one(path: Path, queries: int) -> dict:
    """In this process: open the index, time ``queries`` searches, check them against brute force."""
    from facecluster.people.search import SAME_PERSON, open_index, search
    from facecluster.store import load_encoding_columns

    started = time.perf_counter()
    index = open_index(str(path))
    load_s = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # the search's own, before the check below
    X = index.encodings if index.encodings is not None else load_encoding_columns(str(path)).encodings
    rng = np.random.default_rng(1)
    times, found, exact_found = [], 0, 0
    for face in rng.choice(len(X), queries, replace=False).tolist():
        query = X[face][None, :]
        t = time.perf_counter()
        matches = search(index, query)
        times.append(time.perf_counter() - t)
        distances = np.sqrt(((X - query) ** 2).sum(axis=1))
        truth = set(np.flatnonzero(distances < SAME_PERSON).tolist())
        exact_found += len(truth)
        found += len(truth & {m.face for m in matches if m.same})
    return {"load_s": load_s, "saved": index.saved, "exact": index.exact, "query_ms": 1000 * float(np.median(times)),
            "query_max_ms": 1000 * max(times), "recall": found / exact_found if exact_found else 1.0,
            "peak_rss_gb": rss}


def measure(path: Path, queries: int) -> dict:
    """:func:`run_one` in a fresh process; its result."""
    code = (f"import sys, json; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'benchmarks')!r}]; "
            f"from search_scale import run_one; from pathlib import Path; "
            f"print(json.dumps(run_one(Path({str(path)!r}), {queries})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from scale import write_collection, write_report

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    rows = ["| faces | index | run | load + index (s) | query, median (ms) | query, slowest (ms) "
            "| recall vs exact | peak RSS (GB) |", "|---:|---|---|---:|---:|---:|---:|---:|"]
    for n in args.sizes:
        path = write_collection(n)
        for suffix in (".search.faiss", ".search.json"):  # the first run below builds it
            Path(str(path) + suffix).unlink(missing_ok=True)
        for run in ("first search", "later searches"):
            r = measure(path, QUERIES)
            if "error" in r:
                rows.append(f"| {n:,} | | {run} | failed: {r['error']} |")
            else:
                kind = "exact (flat)" if r["exact"] else f"inverted file ({r['saved'] or 'not kept'})"
                rows.append(f"| {n:,} | {kind} | {run} | {r['load_s']:.1f} | {r['query_ms']:.2f} | {r['query_max_ms']:.2f} "
                            f"| {r['recall']:.4f} | {r['peak_rss_gb']:.2f} |")
            print(rows[-1], flush=True)
            if r.get("exact"):
                break  # nothing is kept for an exact index: the later searches are the same
    lines = ["# Search at scale", "", f"Written by `benchmarks/search_scale.py`; {os.cpu_count()} cores, load average "
             f"{os.getloadavg()[0]:.1f} at the end; synthetic collections (benchmarks/synthetic.py), each run a "
             f"fresh process; {QUERIES} one-face queries, recall of the same-person results (distance < 0.5) against "
             "brute force.", ""] + rows
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`make bench-dask`: what sending the work through Dask costs on one machine.

Two local ``dask worker`` processes (one thread each) against the local
process pool (``--workers 2``) on the same LFW photos, each run a fresh
``encode_faces.py`` process as a user starts it (``--fresh``: nothing
reused), alternating which goes first each round.  Prints each run and the
medians: wall time of the whole command, the encoding time the script
reports, and the CPU seconds spent (the command and its forked workers; for
Dask also the scheduler's and workers' processes), which the other jobs on a
shared machine disturb less than wall time.  The cluster is started once, as a long-lived cluster would be, so
its workers load the models once (in the first Dask run).

    .venv/bin/python benchmarks/dask_overhead.py --photos 500 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench_paths import ROOT, faces_data  # noqa: E402  (first: sets up sys.path)

from facecluster.run.dask_local import LocalCluster, local_cluster  # noqa: E402
from quality import lfw_subset  # noqa: E402  (the one definition of the subsets)


def photo_folder(lfw: Path, count: int, folder: Path) -> Path:
    """The first ``count`` photos of LFW bench-3474, linked as ``<identity>/<photo>``."""
    for source in [Path(p) for p in lfw_subset(str(lfw), "bench-3474")[:count]]:
        target = folder / source.relative_to(lfw)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)
    return folder


def cpu_seconds(processes: list[subprocess.Popen]) -> float:
    """User + system CPU seconds of ``processes`` and all their children, so far."""
    total = 0.0
    for process in processes:
        try:
            parent = psutil.Process(process.pid)
            for each in [parent, *parent.children(recursive=True)]:
                times = each.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(arguments: list[str], cluster: LocalCluster) -> tuple[float, float, float]:
    """Run ``encode_faces.py`` with ``arguments``: (wall s, the encoding s its summary reports, CPU s)."""
    started, cpu_before = time.perf_counter(), children_cpu() + cpu_seconds(cluster.processes)
    done = subprocess.run([sys.executable, "encode_faces.py", *arguments], cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - started, children_cpu() + cpu_seconds(cluster.processes) - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"encode_faces.py {' '.join(arguments)} failed: {done.stderr[-2000:]}")
    reported = re.search(r"skipped, ([0-9.]+) seconds", done.stdout)
    return wall, float(reported.group(1)) if reported else float("nan"), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=500, help="how many photos of LFW bench-3474 (default 500)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of (local, dask), alternating (default 3)")
    args = parser.parse_args()
    lfw = faces_data() / "lfw-deepfunneled"
    with tempfile.TemporaryDirectory(prefix="dask-bench-") as scratch:
        work = Path(scratch)
        photos = photo_folder(lfw, args.photos, work / "photos")
        (work / "logs").mkdir()
        with local_cluster(work / "logs", workers=2) as cluster:
            variants = {"local pool (2 processes)": ["--workers", "2"],
                        "dask (2 workers x 1 thread)": ["--dask", cluster.address]}
            warm = ["-i", str(photos), "-e", str(work / "warm.pickle"), "--dask", cluster.address]
            timed_run(warm, cluster)  # the workers load the models, once
            times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
            for round_ in range(args.repeat):
                order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
                for name in order:
                    encodings = work / f"{round_}-{len(times[name])}-{name[:5]}.pickle"
                    run = timed_run(["-i", str(photos), "-e", str(encodings), "--fresh", *variants[name]], cluster)
                    times[name].append(run)
                    print(f"[bench] round {round_ + 1}/{args.repeat} {name}: {run[0]:.1f} s wall, "
                          f"{run[1]:.1f} s encoding, {run[2]:.1f} CPU s, {args.photos / run[0]:.2f} photos/s", flush=True)
    print_table(times, args.photos)


def print_table(times: dict[str, list[tuple[float, float, float]]], photos: int) -> None:
    """Medians side by side, and Dask's overhead against the local pool on each measure."""
    medians = {name: [statistics.median(run[i] for run in runs) for i in range(3)] for name, runs in times.items()}
    print(f"\n| {photos} LFW photos | wall s | encoding s | CPU s | photos/s (wall) |\n|---|---|---|---|---|")
    for name, (wall, reported, cpu) in medians.items():
        print(f"| {name} | {wall:.1f} | {reported:.1f} | {cpu:.1f} | {photos / wall:.2f} |")
    local, dask = medians.values()
    overhead = ", ".join(f"{100 * (d / l - 1):+.1f}% {what}" for what, l, d in zip(("wall", "encoding", "CPU"), local, dask))
    print(f"\nDask overhead (medians of {len(next(iter(times.values())))} alternating runs): {overhead};"
          f" load average {os.getloadavg()[0]:.1f} at the end")

if __name__ == "__main__":
    main()

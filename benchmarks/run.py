#!/usr/bin/env python3
"""`make bench`: our encoder against the tutorial's loop, same machine, same run.

For each photo set the two are run alternately (tutorial first on even
rounds, ours first on odd ones) ``--repeat`` times, each as its own process
tree, sampling the tree's memory.  The table gives photos/s (median and
range), faces found, photos with a face, peak memory and our speed-up per
round (median and range).  On sets with identities it also clusters both
runs' encodings and scores them, so faster never means worse clusters.

Sets (from ``$FACES_DATA``, see ../shared/datasets/README.md):
  lfw-bench  3,474 LFW photos: identities with >= 10 photos (first 30 each)
             plus the first 500 singletons
  examples   face_recognition's example photos: large, varied, multi-face
  yale       Yale faces: 320x243 grayscale under hard lighting
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import psutil

from bench_paths import ROOT, faces_data  # noqa: E402  (first: sets up sys.path)

from facecluster.cluster.methods import cluster_encodings  # noqa: E402
from facecluster.cluster.evaluation import evaluate, primary_face_labels, read_labels  # noqa: E402
from facecluster.store import load_encodings  # noqa: E402

from quality import lfw_subset  # noqa: E402  (the one definition of the subsets)

CACHE = ROOT / ".cache" / "bench"


def linked_set(name: str, files: list[Path], root: Path) -> Path:
    """A folder of symlinks ``<identity>/<photo>`` so both tools see the same tree."""
    folder = CACHE / name
    if not folder.is_dir():
        for source in files:
            relative = source.relative_to(root)
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    return folder


def photo_sets(data: Path, wanted: list[str]) -> dict[str, Path]:
    sets = {}
    if "lfw-bench" in wanted:
        lfw = data / "lfw-deepfunneled"
        sets["lfw-bench"] = linked_set("lfw-bench", [Path(p) for p in lfw_subset(str(lfw), "bench-3474")], lfw)
    if "examples" in wanted:
        sets["examples"] = data / "face_recognition_examples"
    if "yale" in wanted:
        sets["yale"] = data / "yale_faces"
    return sets


def run_measured(command: list[str]) -> tuple[float, float]:
    """Run a process tree to completion: (seconds, peak memory of the tree in MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, peak / 2**20


def count_faces(encodings: Path) -> tuple[int, int]:
    records = load_encodings(encodings)
    return len(records), len({r["imagePath"] for r in records})


def cluster_quality(encodings: Path, dataset: Path) -> dict[str, float]:
    records = load_encodings(encodings)
    import numpy as np

    identities = primary_face_labels(records, read_labels("folders", [r["imagePath"] for r in records], str(dataset)))
    matrix = np.array([r["encoding"] for r in records])
    scores = {}
    for method in ("chinese-whispers", "agglomerative"):
        labels = cluster_encodings(matrix, method)
        scores[method] = evaluate(labels, identities)["pairwise_f1"]
    return scores


def bench_set(name: str, folder: Path, repeat: int, out: Path, workers: int, single_too: bool = False) -> str:
    photos = sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".txt"))
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    pickles = {"tutorial loop": work / "tutorial.pickle", "ours": work / "ours.pickle"}
    ours = [sys.executable, "encode_faces.py", "-i", str(folder), "--fresh"] + (["--workers", str(workers)] if workers else [])
    commands = {
        "tutorial loop": [sys.executable, "benchmarks/tutorial_encode.py", "-i", str(folder), "-e", str(pickles["tutorial loop"])],
        "ours": ours + ["-e", str(pickles["ours"])],
    }
    if single_too:  # what the mirror pass (on by default) costs, in the same rounds
        pickles["ours --no-mirror"] = work / "ours-single.pickle"
        commands["ours --no-mirror"] = ours + ["-e", str(pickles["ours --no-mirror"]), "--no-mirror"]
    times: dict[str, list[float]] = {k: [] for k in commands}
    peaks: dict[str, list[float]] = {k: [] for k in commands}
    for round_ in range(repeat):
        order = list(commands) if round_ % 2 == 0 else list(reversed(commands))
        for variant in order:
            seconds, peak = run_measured(commands[variant])
            times[variant].append(seconds)
            peaks[variant].append(peak)
            print(f"[bench] {name} round {round_ + 1}/{repeat} {variant}: {seconds:.1f} s, {peak:.0f} MB", flush=True)
    counts = {variant: count_faces(pickle) for variant, pickle in pickles.items()}
    speedups = [t / o for t, o in zip(times["tutorial loop"], times["ours"])]

    lines = [
        f"### {name}: {photos} photos, {repeat} alternating rounds",
        "",
        "| encoder | photos/s median (range) | faces | photos with a face | peak memory (MB) |",
        "|---|---|---|---|---|",
    ]
    for variant in commands:
        rates = [photos / t for t in times[variant]]
        lines.append(
            f"| {variant} | {statistics.median(rates):.2f} ({min(rates):.2f}–{max(rates):.2f}) | "
            f"{counts[variant][0]} | {counts[variant][1]} | {max(peaks[variant]):.0f} |"
        )
    lines += ["", f"Speed-up: **{statistics.median(speedups):.2f}×** median (range {min(speedups):.2f}–{max(speedups):.2f}×)."]
    if single_too:
        single_speedups = [t / o for t, o in zip(times["tutorial loop"], times["ours --no-mirror"])]
        cost = [mirror / once for once, mirror in zip(times["ours --no-mirror"], times["ours"])]
        lines += [f"Speed-up of ours --no-mirror: {statistics.median(single_speedups):.2f}× median "
                  f"(range {min(single_speedups):.2f}–{max(single_speedups):.2f}×); "
                  f"the mirror pass's time: {statistics.median(cost):.2f}× median (range {min(cost):.2f}–{max(cost):.2f}×)."]
    if name == "lfw-bench":
        quality = {v: cluster_quality(pickles[v], folder) for v in commands}
        lines += ["", "| encodings from | pairwise F1, chinese-whispers | pairwise F1, agglomerative |", "|---|---|---|"]
        for variant, scores in quality.items():
            lines.append(f"| {variant} | {scores['chinese-whispers']:.3f} | {scores['agglomerative']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="examples,lfw-bench", help="comma-separated: lfw-bench, examples, yale")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds per set (default 3)")
    parser.add_argument("--workers", type=int, default=0, help="our --workers (default: one per core)")
    parser.add_argument("--single-too", action="store_true",
                        help="also run ours with --no-mirror in each round (what the default mirror pass costs)")
    parser.add_argument("--out", default="bench-results", help="folder for the markdown tables")
    args = parser.parse_args()
    data = faces_data()
    if not (data / "lfw-deepfunneled").is_dir():
        print(f"[ERROR] no photo sets at {data}: set FACES_DATA", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    header = (
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}; {date.today().isoformat()}."
    )
    sections = [header]
    for name, folder in photo_sets(data, args.sets.split(",")).items():
        sections.append(bench_set(name, folder, args.repeat, out, args.workers, args.single_too))
        (out / "encode-speed.md").write_text("\n\n".join(sections) + "\n")
    print("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Seconds of video encoded per second of wall time, at the defaults, at 360p and 720p.

The clips are made at run time from the two real clips in
``$FACES_DATA/videos`` (the stage clip, then the selfie clip letterboxed to
16:9, twice over: about 42 s with shot changes, several people and one long
track) and never kept.  The detector is the script's default (``-d auto``:
HOG, and the CNN where HOG finds nothing, on a CPU) unless
``--detection-method`` says otherwise.  Each resolution is encoded ``--repeats`` times from
scratch (``fresh``: no cached segments) with every core; the median is
reported with faces kept per track and tracks per clip.  Models are loaded
before the clock starts, as the script loads them once per run.

USAGE
    nice python benchmarks/video_speed.py [--repeats 3] [--step 0.5] [--workers 0] [-d auto|hog|cnn]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_paths import faces_data  # noqa: E402  (first: sets up sys.path)

from facecluster.detect.detectors import choose_detector  # noqa: E402
from facecluster.embed.encoders import choose_encoder  # noqa: E402
from facecluster.run.pipeline import Method  # noqa: E402
from facecluster.run.videos import DEFAULT_FACES_PER_TRACK, DEFAULT_STEP, VideoOptions, encode_videos  # noqa: E402

SOURCES = ("hamilton_short_clip.mp4", "selfie_talking_glasses_12s.mp4")
SIZES = {"360p": (640, 360), "720p": (1280, 720)}


def letterboxed(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` scaled to fit ``size`` (w, h), centred on black."""
    import cv2

    width, height = size
    factor = min(width / rgb.shape[1], height / rgb.shape[0])
    scaled = cv2.resize(rgb, (round(rgb.shape[1] * factor) // 2 * 2, round(rgb.shape[0] * factor) // 2 * 2),
                        interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - scaled.shape[0]) // 2, (width - scaled.shape[1]) // 2
    canvas[top:top + scaled.shape[0], left:left + scaled.shape[1]] = scaled
    return canvas


def make_clip(folder: Path, size: tuple[int, int], out: Path, rounds: int = 2) -> Path:
    """The benchmark clip at ``size``: the sources one after the other, ``rounds`` times, H.264 at 30 fps."""
    import av

    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=30, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for _ in range(rounds):
            for name in SOURCES:
                with av.open(str(folder / name)) as source:
                    for frame in source.decode(video=0):
                        rgb = letterboxed(frame.to_ndarray(format="rgb24"), size)
                        container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return out


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the pool's workers), user and system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--step", type=float, default=DEFAULT_STEP)
    ap.add_argument("--faces-per-track", type=int, default=DEFAULT_FACES_PER_TRACK)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("-d", "--detection-method", default="auto", choices=("auto", "hog", "cnn"))
    args = ap.parse_args()
    data = faces_data() / "videos"
    method = Method(choose_detector(args.detection_method)[0], choose_encoder("numpy", "small", 1)[0])
    method.preload()
    options = VideoOptions(args.step, args.faces_per_track)
    print(f"detector {method.detector.name}, step {args.step} s, {args.faces_per_track} faces per track, workers {args.workers or os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} (a shared machine: compare medians run side by side)")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.sizes:
            clip = make_clip(data, SIZES[name], Path(scratch) / f"bench-{name}.mp4")
            speeds, cpus, faces, tracks, seconds = [], [], 0, 0, 0.0
            for repeat in range(args.repeats):
                started, cpu_before = time.perf_counter(), _cpu_seconds()
                records, summary = encode_videos([str(clip)], str(Path(scratch) / f"enc-{name}.pickle"), method,
                                                 options, workers=args.workers, fresh=True, out=open(os.devnull, "w"))
                wall = time.perf_counter() - started
                cpus.append(_cpu_seconds() - cpu_before)  # the pool's workers are joined: theirs included
                speeds.append(summary.seconds / wall)
                faces, tracks, seconds = len(records), summary.tracks, summary.seconds
                print(f"  {name} run {repeat + 1}: {summary.seconds:.1f} s of video in {wall:.1f} s = "
                      f"{summary.seconds / wall:.2f}x real time, {cpus[-1]:.1f} CPU s", flush=True)
            print(f"{name}: median {statistics.median(speeds):.2f}x real time, {statistics.median(cpus):.1f} CPU s"
                  f" ({seconds:.1f} s clip; "
                  f"{tracks} tracks, {faces} faces kept, {faces / max(tracks, 1):.1f} per track)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CNN face-detection speed: dlib-bin's ``cnn_face_detection_model_v1`` against
facecluster.detect.mmod's backends (onnxruntime, numpy), on one thread,
in this one process.

Cases (photos from ``$FACES_DATA``, else ``../shared/datasets``):

- ``lfw250 up1``: LFW 250x250 photos at upsample 1 (what face_recognition's
  ``face_locations(img, 1, "cnn")`` does);
- ``photo~1000px up0``: face_recognition example photos around 1000 px wide
  at upsample 0;
- ``crop112 up1`` / ``up2``: a 112x112 aligned crop.

Rounds interleave dlib and each backend so machine noise hits all alike;
prints the median (min, max) seconds per call, each backend's speed-up over
dlib (and onnxruntime's over numpy), whether the boxes were identical to
dlib's, and the load average.  dlib is slow (seconds per call), so keep
``--rounds`` small.

Usage::

    python benchmarks/cnn_speed.py [--rounds 3] [--threads 1] [--backends onnxruntime,numpy]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bench_paths import faces_data  # noqa: E402  (first: sets up sys.path)

CASES = [
    ("lfw250 up1", "lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg", 1),
    ("lfw250 up1", "lfw-deepfunneled/AJ_Cook/AJ_Cook_0001.jpg", 1),
    ("photo~1000px up0", "face_recognition_examples/_multi_face/examples__two_people.jpg", 0),
    ("photo~1000px up0", "face_recognition_examples/obama/examples__knn_examples__train__obama__obama.jpg", 0),
    ("crop112 up1", "glint_aligned_crops/Barack Obama/102.png", 1),
    ("crop112 up2", "glint_aligned_crops/Barack Obama/102.png", 2),
]


def _data_root() -> Path:
    return faces_data()


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _timed(fn, *args) -> tuple[float, list]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def _boxes_dlib(dets) -> list:
    return [(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()) for d in dets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backends", default=",".join(("onnxruntime", "numpy")))
    args = parser.parse_args()

    import dlib
    from threadpoolctl import threadpool_limits

    from facecluster.detect import mmod as mn

    ref = dlib.cnn_face_detection_model_v1(mn.default_model_path())
    ours = {b: mn.MmodDetector(backend=b, threads=args.threads) for b in args.backends.split(",")}
    images = [(label, _load(_data_root() / rel), up) for label, rel, up in CASES]
    times: dict[str, dict[str, list]] = {label: {name: [] for name in ["dlib", *ours]} for label, _, _ in CASES}
    same = {name: True for name in ours}
    loads = [os.getloadavg()[0]]
    with threadpool_limits(args.threads):
        for label, img, up in images:  # warm-up, and the boxes check
            a = _boxes_dlib(ref(img, up))
            for name, det in ours.items():
                same[name] &= a == [d[:4] for d in det(img, up)]
        for _ in range(args.rounds):
            for label, img, up in images:
                times[label]["dlib"].append(_timed(ref, img, up)[0])
                for name, det in ours.items():
                    times[label][name].append(_timed(det, img, up)[0])
            loads.append(os.getloadavg()[0])
    print(f"threads={args.threads} rounds={args.rounds} load (1-min avg) {min(loads):.1f}-{max(loads):.1f}")
    print("boxes identical to dlib's: " + ", ".join(f"{name} {ok}" for name, ok in same.items()))
    print(f"{'case':18} {'dlib s (min-max)':>24}" + "".join(f" {name + ' s (min-max)':>28} {'vs dlib':>8}" for name in ours))
    for label, t in times.items():
        md = statistics.median(t["dlib"])
        row = f"{label:18} {md:8.3f} ({min(t['dlib']):.3f}-{max(t['dlib']):.3f})"
        for name in ours:
            m = statistics.median(t[name])
            row += f" {m:12.4f} ({min(t[name]):.4f}-{max(t[name]):.4f}) {md / m:7.1f}x"
        if {"onnxruntime", "numpy"} <= ours.keys():
            row += f"  onnxruntime/numpy {statistics.median(t['numpy']) / statistics.median(t['onnxruntime']):.2f}x"
        print(row)


if __name__ == "__main__":
    main()

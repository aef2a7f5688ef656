"""Face-encoding speed: dlib's ResNet (dlib-bin) against facecluster.embed.resnet.

Takes real faces from LFW (``$FACES_DATA/lfw-deepfunneled``, else
``../shared/datasets/lfw-deepfunneled``), finds them once with the HOG detector
and the 5-point shape predictor, and then times, round after round and
interleaved in this one process (so a noisy machine hits every variant alike):

- ``dlib face_encodings``: ``compute_face_descriptor(img, shape, 1)`` per face,
  i.e. what ``face_recognition.face_encodings`` does (chip + network);
- ``dlib chips bs16``: ``compute_face_descriptor([chips...])``, 16 at a time;
- ``fast bsN``: ``resnet.encode_chips`` on ready chips, N at a time;
- ``fast face_chips+bs4``: cutting the chips from the photo with dlib plus
  ``encode_chips``: the drop-in replacement for ``face_encodings``.

Also cost split: HOG detection, 5-point shapes, chip extraction.
BLAS runs on one thread (the tool runs one worker process per core) unless
``--threads`` says otherwise.  Prints medians over the rounds, with min and
max, and the largest difference between the two encoders' results.

Usage::

    python benchmarks/encoder_speed.py [--faces 24] [--rounds 7] [--threads 1]

LFW: G. B. Huang et al., "Labeled Faces in the Wild", UMass Amherst TR 07-49, 2007.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench_paths import faces_data  # noqa: E402  (first: sets up sys.path)


def _lfw_root() -> Path:
    base = faces_data()
    path = base / "lfw-deepfunneled"
    if not path.is_dir():
        sys.exit(f"no LFW at {path}: set FACES_DATA to the folder holding lfw-deepfunneled/")
    return path


def _load_faces(count: int):
    import dlib
    import face_recognition_models
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    files = sorted(_lfw_root().glob("*/*.jpg"))
    step = max(1, len(files) // (count * 2))
    faces = []  # (rgb, rect, shape)
    for path in files[::step]:
        rgb = np.array(Image.open(path).convert("RGB"))
        rects = detector(rgb, 1)
        if len(rects):
            faces.append((rgb, rects[0], predictor(rgb, rects[0])))
        if len(faces) == count:
            break
    return detector, predictor, faces


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=24, help="faces per round (default 24)")
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = ap.parse_args(argv)

    import dlib
    import face_recognition_models
    from threadpoolctl import threadpool_info, threadpool_limits

    from facecluster.embed import resnet

    detector, predictor, faces = _load_faces(args.faces)
    n = len(faces)
    if not n:
        sys.exit("no faces found")
    net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    t0 = time.perf_counter()
    enc = resnet.load_encoder()
    load_s = time.perf_counter() - t0
    chips = np.concatenate([resnet.face_chips(rgb, [shape]) for rgb, _, shape in faces])

    def dlib_per_face():
        return np.array([np.array(net.compute_face_descriptor(rgb, shape, 1)) for rgb, _, shape in faces])

    def dlib_chips16():
        out = []
        for i in range(0, n, 16):
            out.extend(np.array(d) for d in net.compute_face_descriptor([c for c in chips[i : i + 16]]))
        return np.array(out)

    def fast(bs):
        return lambda: enc.encode_chips(chips, batch_size=bs)

    def fast_from_photo():
        cut = np.concatenate([resnet.face_chips(rgb, [shape]) for rgb, _, shape in faces])
        return enc.encode_chips(cut, batch_size=4)

    variants = {
        "hog detect (upsample 1)": lambda: [detector(rgb, 1) for rgb, _, _ in faces],
        "5-point shape": lambda: [predictor(rgb, rect) for rgb, rect, _ in faces],
        "face_chips (dlib)": lambda: [resnet.face_chips(rgb, [shape]) for rgb, _, shape in faces],
        "dlib face_encodings": dlib_per_face,
        "dlib chips bs16": dlib_chips16,
        "fast bs1": fast(1),
        "fast bs4": fast(4),
        "fast bs8": fast(8),
        "fast bs16": fast(16),
        "fast face_chips+bs4": fast_from_photo,
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    with threadpool_limits(args.threads):
        ref = dlib_per_face()
        worst = max(float(np.abs(fn() - ref).max()) for k, fn in variants.items() if k.startswith(("fast", "dlib chips")))
        for _ in range(args.rounds):
            for name, fn in variants.items():
                t = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t) / n * 1000)

    blas = ", ".join(f"{i['internal_api']} {i.get('version', '')} {i.get('architecture', '')}".strip() for i in threadpool_info())
    print(f"{n} LFW faces x {args.rounds} rounds, BLAS threads {args.threads} ({blas}); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; dlib {dlib.__version__}, "
          f"DLIB_USE_BLAS={dlib.DLIB_USE_BLAS}, numpy {np.__version__}")
    print(f"fast_encoder model parse: {load_s * 1000:.0f} ms (once per process)")
    print(f"max |fast - dlib| over all faces and variants: {worst:.2e}")
    base = statistics.median(times["dlib face_encodings"])
    print()
    print(f"| {'step':26s} | ms/face median | min    | max    | vs dlib face_encodings |")
    print(f"|{'-' * 28}|---------------:|-------:|-------:|-----------------------:|")
    for name, vals in times.items():
        med = statistics.median(vals)
        speed = f"{base / med:.1f}x" if name.startswith(("fast", "dlib")) else ""
        print(f"| {name:26s} | {med:14.2f} | {min(vals):6.2f} | {max(vals):6.2f} | {speed:>22s} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

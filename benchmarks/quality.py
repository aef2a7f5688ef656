"""Clustering quality on real faces: the sweep that chose facecluster's defaults.

Builds the LFW subsets that ``shared/datasets/README.md`` describes, encodes
them once with the tutorial's own loop, then sweeps each clustering method's
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
import pickle
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

DEFAULT_CACHE = "/tmp/qual/bench3474.pickle"
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
# Encoding (the tutorial's encode_faces.py loop, verbatim in substance)
# --------------------------------------------------------------------------

def encode_tutorial(image_paths: list[str], *, model: str = "hog", progress: bool = True) -> list[dict]:
    """Encode every face of every image exactly as encode_faces.py does:
    cv2.imread -> BGR2RGB -> face_locations(model) -> face_encodings(boxes)."""
    import cv2
    import face_recognition

    data = []
    start = time.perf_counter()
    for i, image_path in enumerate(image_paths):
        if progress and i % 200 == 0:
            print(f"[INFO] processing image {i + 1}/{len(image_paths)} "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        image = cv2.imread(image_path)
        if image is None:
            continue
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        boxes = face_recognition.face_locations(rgb, model=model)
        encodings = face_recognition.face_encodings(rgb, boxes)
        data.extend({"imagePath": image_path, "loc": box, "encoding": enc} for box, enc in zip(boxes, encodings))
    if progress:
        print(f"[INFO] encoded {len(data)} faces from {len(image_paths)} images "
              f"in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return data


def load_or_encode(cache: str, image_paths: list[str]) -> list[dict]:
    """Records for ``image_paths``, read from ``cache`` (tutorial pickle) when
    it covers them, otherwise encoded and written there."""
    if os.path.exists(cache):
        with open(cache, "rb") as handle:
            data = pickle.loads(handle.read())
        if set(image_paths) <= {r["imagePath"] for r in data} | _faceless(cache):
            return data
        print(f"[WARN] {cache} does not cover the subset: re-encoding", file=sys.stderr)
    data = encode_tutorial(image_paths)
    os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
    tmp = cache + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(pickle.dumps(data))
    os.replace(tmp, cache)
    found = {r["imagePath"] for r in data}
    with open(cache + ".noface.txt", "w") as handle:  # so the cache check knows them
        handle.writelines(p + "\n" for p in image_paths if p not in found)
    return data


def _faceless(cache: str) -> set[str]:
    try:
        with open(cache + ".noface.txt") as handle:
            return {line.rstrip("\n") for line in handle}
    except OSError:
        return set()

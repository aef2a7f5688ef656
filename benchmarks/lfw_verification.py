#!/usr/bin/env python3
"""`make verify`: LFW's face-verification protocol with `encode_faces.py`'s defaults.

LFW View 2 (``pairs.txt``): 10 folds of 300 same-person and 300
different-person pairs.  For each fold the distance threshold that is most
accurate on the other 9 folds is applied to it; the score is the mean
accuracy over the 10 folds, +- its standard deviation (Huang et al., "Labeled
Faces in the Wild", UMass TR 07-49, 2007, section 4).  dlib publishes 99.38%
for the model face_recognition uses (dlib.net, "High Quality Face
Recognition with Deep Metric Learning", 2017).

Each pair image is encoded by the project's own pipeline (the detector and
encoder ``encode_faces.py`` chooses by default, results cached under
``.cache/lfw-verify/``).  Where a photo holds several faces, the one compared
is the face whose box centre is nearest the picture's centre: LFW's
deep-funneled images are centred on the labelled face.  A pair with an image
where no face was found counts as "different" (a miss on a same-person pair).

Usage: ``benchmarks/lfw_verification.py [--all] [-d auto|hog|cnn] [--landmarks small|large] [--no-mirror]``;
``--all`` encodes every LFW photo and also reports how many have a face.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench_paths import ROOT  # noqa: E402  (first: sets up sys.path)

from facecluster.detect.detectors import DETECTION_METHODS, choose_detector  # noqa: E402
from facecluster.embed.encoders import DEFAULT_MIRROR, LANDMARK_MODELS, choose_encoder  # noqa: E402
from facecluster.run.pipeline import Method, encode_dataset, list_dataset  # noqa: E402
from facecluster.sources.folder import Listing  # noqa: E402
from facecluster.records import FaceRecord  # noqa: E402
from facecluster.sample_data import find_lfw, find_lfw_pairs  # noqa: E402

DLIB_PUBLISHED = 0.9938  # dlib_face_recognition_resnet_model_v1 on LFW View 2
FR_THRESHOLD = 0.6  # face_recognition's default tolerance
CACHE = ROOT / ".cache" / "lfw-verify"
ALL_LFW_CACHE = ROOT / ".cache" / "quality" / "lfw-deepfunneled.pickle"
RESULTS = ROOT / "benchmarks" / "results" / "lfw_verification.json"

Pair = tuple[str, str, bool]  # two photo paths relative to the LFW folder, same person?


def read_pairs(path: Path) -> list[list[Pair]]:
    """``pairs.txt`` -> its folds: per fold, the same-person pairs then the different ones."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    folds, per_fold = int(lines[0][0]), int(lines[0][1])
    rows = lines[1:]
    if len(rows) != folds * 2 * per_fold:
        raise ValueError(f"{path}: expected {folds * 2 * per_fold} pairs, found {len(rows)}")

    def photo(name: str, number: str) -> str:
        return f"{name}/{name}_{int(number):04d}.jpg"

    pairs: list[Pair] = []
    for row in rows:
        if len(row) == 3:
            pairs.append((photo(row[0], row[1]), photo(row[0], row[2]), True))
        else:
            pairs.append((photo(row[0], row[1]), photo(row[2], row[3]), False))
    size = 2 * per_fold
    return [pairs[i * size : (i + 1) * size] for i in range(folds)]


def central_faces(records: list[FaceRecord], root: Path) -> dict[str, np.ndarray]:
    """Each photo's face nearest its centre (LFW's convention), keyed by path relative to ``root``."""
    from PIL import Image

    best: dict[str, tuple[float, np.ndarray]] = {}
    for record in records:
        path = record["imagePath"]
        with Image.open(path) as image:
            width, height = image.size
        top, right, bottom, left = record["loc"]
        off_centre = np.hypot((left + right - width) / 2, (top + bottom - height) / 2)
        key = str(Path(path).relative_to(root))
        if key not in best or off_centre < best[key][0]:
            best[key] = (off_centre, record["encoding"])
    return {key: encoding for key, (_, encoding) in best.items()}


def distances(folds: list[list[Pair]], faces: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per fold: (distances, same-person flags); ``inf`` where a photo has no face."""
    out = []
    for fold in folds:
        dist = [np.linalg.norm(faces[a] - faces[b]) if a in faces and b in faces else np.inf for a, b, _ in fold]
        out.append((np.array(dist), np.array([same for _, _, same in fold])))
    return out


def accuracy(dist: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs judged right: "same person" when the distance is under ``threshold``."""
    return float(np.mean((dist < threshold) == same))


def best_threshold(dist: np.ndarray, same: np.ndarray) -> float:
    """The threshold most accurate on these pairs: tried midway between sorted finite distances."""
    finite = np.unique(dist[np.isfinite(dist)])
    candidates = np.concatenate([(finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]])
    scores = [(accuracy(dist, same, t), -abs(t - FR_THRESHOLD)) for t in candidates]
    return float(candidates[max(range(len(candidates)), key=scores.__getitem__)])


def ten_fold(per_fold: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[float], list[float]]:
    """Each fold's accuracy at the threshold learned on the other folds, and those thresholds."""
    accuracies, thresholds = [], []
    for i, (dist, same) in enumerate(per_fold):
        train_dist = np.concatenate([d for j, (d, _) in enumerate(per_fold) if j != i])
        train_same = np.concatenate([s for j, (_, s) in enumerate(per_fold) if j != i])
        threshold = best_threshold(train_dist, train_same)
        thresholds.append(threshold)
        accuracies.append(accuracy(dist, same, threshold))
    return accuracies, thresholds


def encode(lfw: Path, photos: list[str] | None, detection: str, landmarks: str = "small",
           mirror: bool = DEFAULT_MIRROR, workers: int = 0) -> tuple[list[FaceRecord], int, float]:
    """Encode ``photos`` (relative to ``lfw``; ``None``: all of LFW) as encode_faces.py would.

    Returns the face records, how many photos yielded no face, and the seconds taken.
    """
    detector, why = choose_detector(detection)
    encoder, encoder_why = choose_encoder("numpy", landmarks, 1, mirror)
    print(f"[INFO] detection method: {detector.name} ({why})")
    print(f"[INFO] encoder: {encoder.name} ({encoder_why})")
    if photos is None:
        listing = list_dataset(str(lfw))
    else:
        listing = Listing(images=[str(lfw / photo) for photo in photos])
    # All of LFW shares make quality's cache (rows are kept per detector and encoder options).
    encodings = ALL_LFW_CACHE if photos is None else CACHE / "encodings.pickle"
    encodings.parent.mkdir(parents=True, exist_ok=True)
    records, summary = encode_dataset(listing, str(encodings), Method(detector, encoder), workers=workers)
    return records, len(summary.no_face), summary.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="LFW verification (View 2, 10 folds) with encode_faces.py's defaults")
    parser.add_argument("-d", "--detection-method", default="auto", choices=DETECTION_METHODS)
    parser.add_argument("--landmarks", choices=LANDMARK_MODELS, default="small", help="as encode_faces.py's")
    parser.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=DEFAULT_MIRROR, help="as encode_faces.py's")
    parser.add_argument("-w", "--workers", type=int, default=0, help="worker processes (default 0: one per core)")
    parser.add_argument("--all", action="store_true", help="encode all 13,233 LFW photos (not just the 7,701 in pairs)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"the results as JSON (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    try:
        lfw = find_lfw()
        folds = read_pairs(find_lfw_pairs(lfw))
    except (OSError, RuntimeError, ValueError) as error:
        print(f"[ERROR] cannot read LFW or its pairs: {error}", file=sys.stderr)
        return 2
    in_pairs = sorted({photo for fold in folds for a, b, _ in fold for photo in (a, b)})
    records, no_face, seconds = encode(lfw, None if args.all else in_pairs, args.detection_method, args.landmarks, args.mirror, args.workers)
    faces = central_faces(records, lfw)
    missing = [photo for photo in in_pairs if photo not in faces]
    per_fold = distances(folds, faces)
    accuracies, thresholds = ten_fold(per_fold)
    dist = np.concatenate([d for d, _ in per_fold])
    same = np.concatenate([s for _, s in per_fold])
    found = np.isfinite(dist)
    result = {
        "detection": args.detection_method,
        "landmarks": args.landmarks,
        "mirror": args.mirror,
        "ten_fold_accuracy": float(np.mean(accuracies)),
        "ten_fold_std": float(np.std(accuracies)),
        "wrong_pairs": int(sum(round((1 - a) * len(fold)) for a, fold in zip(accuracies, folds))),
        "thresholds": thresholds,
        "accuracy_at_0.6": accuracy(dist, same, FR_THRESHOLD),
        "accuracy_at_0.6_both_found": accuracy(dist[found], same[found], FR_THRESHOLD),
        "pairs_both_found": int(found.sum()),
        "pair_images": len(in_pairs),
        "pair_images_without_face": missing,
        "photos_encoded": "all of LFW" if args.all else "pair images",
        "photos_without_face": no_face,
        "seconds": round(seconds, 1),
        "dlib_published": DLIB_PUBLISHED,
    }
    print(f"LFW View 2, 10 folds: accuracy {result['ten_fold_accuracy']:.4f} +- {result['ten_fold_std']:.4f} "
          f"(dlib publishes {DLIB_PUBLISHED:.4f}); {result['wrong_pairs']} pairs wrong; "
          f"thresholds {min(thresholds):.3f}-{max(thresholds):.3f}")
    print(f"at face_recognition's {FR_THRESHOLD}: {result['accuracy_at_0.6']:.4f}; "
          f"{result['accuracy_at_0.6_both_found']:.4f} over the {int(found.sum())} pairs with both faces found")
    print(f"pair images with no face: {len(missing)} of {len(in_pairs)} {missing[:5]}")
    if args.all:
        print(f"all of LFW: no face in {no_face} photo(s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

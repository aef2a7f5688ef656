#!/usr/bin/env python3
"""Fit the mirror pass's rescaling on LFW (the constants in facecluster/embed/mirror_scale.py).

Averaging a face's encoding with its mirror image's removes the part of the
encoding that flips with the picture, which is mostly noise: photos of one
person come closer (LFW pairs: about 4 %), photos of two people less so
(about 2 %).  Every fixed distance users know (the tutorial's DBSCAN eps 0.5,
face_recognition's tolerance 0.6) then reaches further than it did.  The
encoder therefore scales the average about a fixed centre (the mean encoding
of LFW's pair images) by one factor, chosen so that the same-person and the
different-person distance quantiles of LFW's verification pairs are as close
as one factor can bring them to the single pass's (``--no-mirror``,
face_recognition's own encodings).  Scaling about the mean rather than about
zero keeps the encodings where single-pass encodings lie (their norms are
about 1.4; about zero the whole cloud would move by (factor - 1) x 1.3), so a
rescaled encoding still compares with one from face_recognition.

Each of LFW's 7,701 pair images is encoded once, with the detector
encode_faces.py chooses by default, and each face twice (in the photo and in
the photo mirrored, as the mirror pass does), kept apart; results are cached in
``.cache/mirror-scale/``.  The face compared is the one nearest the picture's
centre, as in ``lfw_verification.py``.  Writes ``benchmarks/results/mirror-scale.md``
and prints the two constants.

Usage: ``benchmarks/mirror_scale.py [-w WORKERS]``
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from dataclasses import dataclass

import numpy as np

from bench_paths import ROOT  # noqa: E402  (first: sets up sys.path)

from facecluster.run.pipeline import Method  # noqa: E402

CACHE = ROOT / ".cache" / "mirror-scale" / "lfw-pairs.pickle"
OUT = ROOT / "benchmarks" / "results" / "mirror-scale.md"
QUANTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)


@dataclass(frozen=True)
class TwoPassMethod(Method):
    """The default detector and the single-pass encoder; each face encoded in the
    photo and in the photo mirrored, the two kept side by side (256 numbers)."""

    def find_faces(self, rgbs: list[np.ndarray]) -> list:
        from facecluster.embed.encoders import mirror_photo
        from facecluster.records import Face

        box_lists = self.detector.detect_batch(rgbs)
        seen = self.encoder.encode_batch(rgbs, box_lists)
        mirrored_views = [mirror_photo(rgb, boxes) for rgb, boxes in zip(rgbs, box_lists)]
        mirrored = self.encoder.encode_batch([v[0] for v in mirrored_views], [v[1] for v in mirrored_views])
        return [[Face(box, np.concatenate([s, m])) for box, s, m in zip(boxes, ss, ms)]
                for boxes, ss, ms in zip(box_lists, seen, mirrored)]


def two_pass_encodings(photos: list[str], workers: int) -> list[dict]:
    """``{"imagePath", "loc", "seen", "mirrored"}`` for every face of ``photos`` (cached)."""
    from facecluster.detect.detectors import choose_detector
    from facecluster.embed.encoders import choose_encoder
    from facecluster.run.pipeline import chunks, run_in_processes

    if CACHE.is_file():
        with open(CACHE, "rb") as f:
            records = pickle.load(f)
        if {r["imagePath"] for r in records} >= set(photos) - _faceless(records, photos):
            return records
    method = TwoPassMethod(choose_detector("auto")[0], choose_encoder("numpy", mirror=False)[0])
    method.preload()
    found: dict[str, list] = {}
    for result in run_in_processes(list(chunks(sorted(photos), 4)), method, workers or os.cpu_count() or 1):
        found[result.path] = [(face.box, np.asarray(face.encoding)) for face in result.faces]
    records = [{"imagePath": p, "loc": tuple(box), "seen": e[:128], "mirrored": e[128:]}
               for p in sorted(photos) for box, e in found.get(p, [])]
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE, "wb") as f:
        pickle.dump(records, f)
    return records


def _faceless(records: list[dict], photos: list[str]) -> set[str]:
    return set(photos) - {r["imagePath"] for r in records}


def pair_distances(folds, faces: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All pairs' distances and same-person flags (pairs with a faceless photo left out)."""
    from lfw_verification import distances

    per_fold = distances(folds, faces)
    dist = np.concatenate([d for d, _ in per_fold])
    same = np.concatenate([s for _, s in per_fold])
    return dist[np.isfinite(dist)], same[np.isfinite(dist)]


def fit_factor(single: tuple[np.ndarray, np.ndarray], averaged: tuple[np.ndarray, np.ndarray]) -> float:
    """The factor that shares the mirror pass's gain evenly: the geometric mean of
    how much closer it brings photos of one person (the single pass's median
    same-person distance over the average's) and photos of two people (the same
    for different-person pairs), rounded to 0.001.  Scaled by it, one person's
    photos are closer than with the single pass by the same ratio as two people's
    are further apart."""
    ratios = [np.median(single[0][single[1] == same]) / np.median(averaged[0][averaged[1] == same]) for same in (True, False)]
    return round(float(np.sqrt(ratios[0] * ratios[1])), 3)


def quantile_gaps(single: tuple[np.ndarray, np.ndarray], scaled: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """Largest gap (scaled minus single) over :data:`QUANTILES`, same-person then different-person."""
    gaps = []
    for same in (True, False):
        gap = np.percentile(scaled[0][scaled[1] == same], QUANTILES) - np.percentile(single[0][single[1] == same], QUANTILES)
        gaps.append(float(gap[np.argmax(np.abs(gap))]))
    return gaps[0], gaps[1]


def main(argv: list[str] | None = None) -> int:
    from lfw_verification import FR_THRESHOLD, central_faces, read_pairs, ten_fold, distances

    from facecluster.sample_data import find_lfw, find_lfw_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--workers", type=int, default=0, help="worker processes (default: one per core)")
    args = parser.parse_args(argv)
    lfw = find_lfw()
    folds = read_pairs(find_lfw_pairs(lfw))
    photos = sorted({str(lfw / p) for fold in folds for a, b, _ in fold for p in (a, b)})
    records = two_pass_encodings(photos, args.workers)

    def faces(encode) -> dict[str, np.ndarray]:
        return central_faces([{"imagePath": r["imagePath"], "loc": r["loc"], "encoding": encode(r)} for r in records], lfw)

    single = faces(lambda r: r["seen"])
    averaged = faces(lambda r: (r["seen"] + r["mirrored"]) / 2)
    centre = np.mean(list(averaged.values()), axis=0)
    factor = fit_factor(pair_distances(folds, single), pair_distances(folds, averaged))
    rescaled = {k: centre + factor * (v - centre) for k, v in averaged.items()}
    gaps = quantile_gaps(pair_distances(folds, single), pair_distances(folds, rescaled))

    rows = []
    for name, encodings in (("single pass (--no-mirror)", single), ("mirror pass, averaged", averaged),
                            (f"mirror pass, rescaled x{factor}", rescaled)):
        dist, same = pair_distances(folds, encodings)
        accuracies, thresholds = ten_fold(distances(folds, encodings))
        cells = [" ".join(f"{q:.3f}" for q in np.percentile(dist[same == flag], QUANTILES)) for flag in (True, False)]
        rows.append(f"| {name} | {cells[0]} | {cells[1]} | {np.mean(accuracies):.4f} | "
                    f"{min(thresholds):.3f}-{max(thresholds):.3f} | {np.mean((dist < FR_THRESHOLD) == same):.4f} | "
                    f"{np.mean(dist[same] >= FR_THRESHOLD):.4f} / {np.mean(dist[~same] < FR_THRESHOLD):.4f} |")
    header = ("| encodings | same person: quantiles " + " ".join(map(str, QUANTILES)) + " % | different people: same quantiles "
              "| 10-fold accuracy | thresholds learned | accuracy at 0.6 | at 0.6: same called different / different called same |")
    text = "\n".join([
        "# The mirror pass's rescaling, fitted on LFW's verification pairs",
        "",
        f"Written by `benchmarks/mirror_scale.py`: {len(photos)} pair images, each face encoded in the photo and "
        "mirrored, the face nearest the centre compared; 6,000 pairs of `pairs.txt`.  Distance quantiles:",
        "",
        header,
        "|---|---|---|---:|---|---:|---:|",
        *rows,
        "",
        f"Factor {factor}: the geometric mean of the single pass's median distance over the average's, for "
        f"same-person and for different-person pairs.  Rescaled, the largest quantile gap to the single pass is "
        f"{gaps[0]:+.4f} for same-person pairs (closer) and {gaps[1]:+.4f} for different-person pairs (further).  "
        f"Centre: the mean averaged encoding of the pair images (norm {np.linalg.norm(centre):.3f}).",
        "",
    ])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)
    print("MIRROR_SCALE =", factor)
    print("MIRROR_CENTRE = (" + ", ".join(f"{x:.6f}" for x in centre) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())

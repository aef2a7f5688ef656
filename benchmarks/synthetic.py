"""Synthetic face encodings whose distances look like dlib's on LFW.

Used by ``benchmarks/scale.py`` (10k to 1M faces) and the graph tests.  Every
encoding is a 128-d unit vector

    x = normalise(a * m + b * c_p + s_f * e_f)

with ``m`` one direction shared by all faces (real encodings are far from
centred), ``c_p`` a random unit direction per person, ``e_f`` a random unit
direction per face, and ``s_f`` the face's own noise level (log-normal around
``s``, so some photos of a person are much worse than others, as in LFW).  In
128 dimensions random directions are nearly orthogonal, so

    same person:      |x - y|^2 ~ s_f^2 + s_g^2
    different people: |x - y|^2 ~ 2 b^2 + s_f^2 + s_g^2

and ``a, b, s`` are solved from the target medians (:data:`CALIBRATION`,
measured on the 13,233 LFW photos encoded by encode_faces.py: see
docs/clustering.md).  People's sizes follow LFW's: 70% of people have one
photo, a few have hundreds (a Zipf law with exponent 2.3, capped at 500).
"""

from __future__ import annotations

import numpy as np

DIM = 128

# Median Euclidean distance between two photos of the same person / of two
# different people, and the spread of the per-photo noise (log-normal sigma),
# measured on all of LFW (docs/clustering.md, "Synthetic collections").
CALIBRATION = {"same": 0.44, "different": 0.83, "noise_sigma": 0.2}


def identity_sizes(n: int, rng: np.random.Generator, *, exponent: float = 2.3, largest: int = 500) -> np.ndarray:
    """Photo counts per person, summing to exactly ``n`` (Zipf law)."""
    sizes: list[np.ndarray] = []
    total = 0
    while total < n:
        draw = rng.zipf(exponent, size=max(1024, n // 2))
        draw = draw[draw <= largest]
        sizes.append(draw)
        total += int(draw.sum())
    out = np.concatenate(sizes)
    out = out[np.cumsum(out) <= n]
    short = n - int(out.sum())
    return np.concatenate([out, np.ones(short, dtype=out.dtype)]) if short else out


def synthetic_encodings(
    n: int, seed: int = 0, *, same: float | None = None, different: float | None = None, chunk: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic encodings and their person ids.

    Returns ``(X, person)``: ``X`` float32 ``(n, 128)`` unit rows in a shuffled
    order, ``person`` int64 ``(n,)``.  Deterministic for a given ``seed``;
    built a chunk at a time so that memory stays ``~ 2 x 512 n`` bytes.
    """
    same = CALIBRATION["same"] if same is None else same
    different = CALIBRATION["different"] if different is None else different
    if not 0 < same < different < np.sqrt(2):
        raise ValueError("need 0 < same < different < sqrt(2)")
    rng = np.random.default_rng(seed)
    s2 = same**2 / 2
    b2 = (different**2 - same**2) / 2
    a = np.sqrt(max(1.0 - s2 - b2, 0.0))
    m = _unit(rng.standard_normal(DIM))
    sizes = identity_sizes(n, rng)
    person = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    person = person[rng.permutation(n)]
    centres = _unit(rng.standard_normal((len(sizes), DIM)).astype(np.float32))
    X = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, chunk):
        rows = person[start:start + chunk]
        noise = _unit(rng.standard_normal((len(rows), DIM)).astype(np.float32))
        level = np.sqrt(s2) * rng.lognormal(0.0, CALIBRATION["noise_sigma"], size=(len(rows), 1))
        X[start:start + chunk] = _unit(a * m + np.sqrt(b2) * centres[rows] + level.astype(np.float32) * noise)
    return X, person


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)

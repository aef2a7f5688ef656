"""The mirror pass's rescaling: averaged encodings at the single pass's distances.

Averaging a face's encoding with its mirror image's (the mirror pass,
:mod:`.encoders`) removes the part of the encoding that flips with the
picture, mostly noise.  On LFW's 6,000 verification pairs the plain average
brings photos of one person 5.3 % closer (median distance 0.437 -> 0.415) and
photos of two people 1.6 % closer (0.825 -> 0.812), so every fixed distance
users know (the tutorial's DBSCAN ``eps`` 0.5, face_recognition's tolerance
0.6, dlib's chinese whispers at 0.5) reached further than with
face_recognition's own encodings, and the tutorial's 5 people could come out
as 4.

:func:`rescale` therefore stretches the average about :data:`MIRROR_CENTRE` by
:data:`MIRROR_SCALE`, fitted once on LFW's verification pairs
(``benchmarks/mirror_scale.py``; ``benchmarks/results/mirror-scale.md``).  One
factor cannot give back both distributions, since the average brings the two
kinds of pair closer by different amounts (no factor puts every quantile of
both within 0.02 of the single pass's).  The factor is the geometric mean of
the two ratios, so the mirror pass's gain is shared evenly: scaled, photos of
one person are 1.8 % closer than with the single pass and photos of two people
1.8 % further apart, at every quantile (1-99 %).  At any fixed threshold a
person's photos are then split less often than with face_recognition's
encodings and two people joined less often (at 0.6: 1.9 % and 0.37 % of LFW's
pairs, against 2.1 % and 0.50 %).  Distances keep their order, so verification
with a learned threshold is unchanged (0.9917).

The centre is the mean averaged encoding of LFW's pair images: distances do
not depend on it, but stretching about zero would move every encoding (norm
about 1.4) by ``(MIRROR_SCALE - 1) x 1.3``, away from where single-pass
encodings (the tutorial's pickles, face_recognition's known faces) lie.
"""

from __future__ import annotations

import numpy as np

# Fitted by benchmarks/mirror_scale.py on LFW's pairs.txt images (encode_faces.py's default detector).
MIRROR_SCALE = 1.034
MIRROR_CENTRE = np.array([
    -0.097037, 0.085840, 0.054373, -0.044289, -0.096604, -0.016933, -0.013462, -0.107496,
    0.140907, -0.063772, 0.193048, -0.036406, -0.244906, -0.040093, -0.028585, 0.123765,
    -0.148916, -0.124064, -0.119787, -0.081234, 0.015275, 0.036141, 0.029266, 0.020331,
    -0.136973, -0.301135, -0.071708, -0.089041, 0.051807, -0.089884, 0.018082, 0.055734,
    -0.180312, -0.055511, 0.029555, 0.066161, -0.051397, -0.070093, 0.208059, 0.011290,
    -0.172182, 0.010442, 0.054798, 0.247222, 0.201917, 0.002910, 0.021695, -0.071242,
    0.118180, -0.262949, 0.049517, 0.143044, 0.113471, 0.074943, 0.084140, -0.145010,
    0.022403, 0.139204, -0.185547, 0.073528, 0.072764, -0.096317, -0.037501, -0.039027,
    0.158694, 0.088037, -0.093373, -0.137518, 0.167092, -0.142025, -0.042631, 0.077875,
    -0.092454, -0.163061, -0.262877, 0.035643, 0.375341, 0.129288, -0.172451, 0.015212,
    -0.073609, -0.017670, 0.033974, 0.037205, -0.074717, -0.048728, -0.091979, 0.024556,
    0.194254, -0.025314, -0.021048, 0.216898, 0.011875, -0.007935, 0.039568, 0.047687,
    -0.114862, -0.011518, -0.110761, -0.013676, 0.045789, -0.102439, 0.010983, 0.087047,
    -0.174137, 0.164946, -0.020246, -0.023444, -0.009446, -0.023365, -0.079096, 0.002030,
    0.172030, -0.250151, 0.209813, 0.173736, 0.000772, 0.131221, 0.063223, 0.059970,
    -0.000284, -0.005174, -0.132917, -0.106626, 0.031645, -0.027289, 0.022896, 0.037911,
])


def rescale(averaged: np.ndarray) -> np.ndarray:
    """The mirror pass's encoding from the plain average of a face's two
    encodings (one 128-d vector, or rows of them): stretched by
    :data:`MIRROR_SCALE` about :data:`MIRROR_CENTRE`."""
    return MIRROR_CENTRE + MIRROR_SCALE * (np.asarray(averaged, dtype=np.float64) - MIRROR_CENTRE)

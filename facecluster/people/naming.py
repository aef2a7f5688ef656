"""The naming rule: which cluster is which known person (docs/people.md).

Distances are Euclidean between 128-d encodings, as everywhere in the project.
A face's distance to a known person is its distance to the nearest of that
person's known encodings.  A cluster is **named** after person P when

1. the *median* over the cluster's faces of their distance to P is under
   :data:`NAME_THRESHOLD` (a median: one odd photo neither makes nor breaks it), and
2. P beats the second-nearest known person by :data:`NAME_MARGIN` (that
   person's median is at least ``NAME_MARGIN`` farther); otherwise it is a tie
   and the cluster stays unnamed.

A cluster that matches no one stays unnamed.  A face left in Unknown
(label -1) is **pulled in** by P when the face alone matches P clearly: its
distance is under :data:`PULL_THRESHOLD` (stricter, as one face is weaker
evidence than a cluster's median) and beats the second-nearest by the margin.
It joins P's (largest) named cluster, or a new cluster of P's pulled faces.

The thresholds come from the project's own constants, not from a fit to the
quality sets: :data:`NAME_THRESHOLD` is chinese whispers' default (the
distance at which two faces are linked as one person), :data:`PULL_THRESHOLD`
sits a tenth under it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cluster import DEFAULTS
from ..records import UNKNOWN_LABEL

NAME_THRESHOLD: float = DEFAULTS["chinese-whispers"]["threshold"]
PULL_THRESHOLD: float = round(0.9 * NAME_THRESHOLD, 3)
# The winner must be this much nearer than the runner-up (about a tenth of
# the gap between a typical same-person distance, 0.44, and a
# different-people one, 0.83, on LFW: benchmarks/synthetic.py's calibration).
NAME_MARGIN: float = 0.05
# Faces compared with the known encodings at a time (memory ~ rows x known x 4 bytes).
_ROWS_AT_A_TIME = 16_384


@dataclass(frozen=True)
class KnownPeople:
    """The known encodings: ``encodings[i]`` (float32, 128) is a photo of ``names[i]``."""

    names: list[str]
    encodings: np.ndarray

    @property
    def people(self) -> list[str]:
        """The distinct names, sorted."""
        return sorted(set(self.names))


def distances_to_people(encodings: np.ndarray, known: KnownPeople) -> tuple[np.ndarray, list[str]]:
    """Each face's distance to each known person (the nearest of their encodings).

    Returns ``(D, people)``: ``D`` float32 ``(n, len(people))``, people sorted.
    Computed a block of faces at a time, so a million faces need no n x m matrix.
    """
    people = known.people
    column = {name: j for j, name in enumerate(people)}
    owner = np.array([column[name] for name in known.names], dtype=np.int64)
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], np.arange(len(people)))
    K = np.asarray(known.encodings, dtype=np.float32)[order]
    X = np.asarray(encodings, dtype=np.float32)
    out = np.empty((len(X), len(people)), dtype=np.float32)
    k_norms = (K * K).sum(axis=1)
    for start in range(0, len(X), _ROWS_AT_A_TIME):
        block = X[start:start + _ROWS_AT_A_TIME]
        squared = (block * block).sum(axis=1)[:, None] + k_norms[None, :] - 2.0 * block @ K.T
        per_person = np.minimum.reduceat(squared, starts, axis=1) if len(people) else squared[:, :0]
        out[start:start + len(block)] = np.sqrt(np.maximum(per_person, 0.0))
    return out, people


def decide(medians: np.ndarray, threshold: float = NAME_THRESHOLD, margin: float = NAME_MARGIN) -> int | None:
    """The column of the person a row of distances names, or ``None`` (no match, or a tie)."""
    if medians.size == 0:
        return None
    best = int(np.argmin(medians))
    if not medians[best] < threshold:
        return None
    runner_up = np.partition(medians, 1)[1] if medians.size > 1 else np.inf
    return best if runner_up - medians[best] >= margin else None


def name_clusters(encodings: np.ndarray, labels: np.ndarray, known: KnownPeople, *,
                  threshold: float = NAME_THRESHOLD, margin: float = NAME_MARGIN) -> dict[int, str]:
    """``{label: name}`` for every cluster (label >= 0) the rule names; see the module docstring."""
    labels = np.asarray(labels)
    if not len(known.names) or not len(labels):
        return {}
    D, people = distances_to_people(encodings, known)
    names: dict[int, str] = {}
    order = np.argsort(labels, kind="stable")
    distinct, starts = np.unique(labels[order], return_index=True)
    for label, rows in zip(distinct.tolist(), np.split(order, starts[1:])):
        if label == UNKNOWN_LABEL:
            continue
        chosen = decide(np.median(D[rows], axis=0), threshold, margin)
        if chosen is not None:
            names[int(label)] = people[chosen]
    return names


def pull_in_unknown(encodings: np.ndarray, labels: np.ndarray, known: KnownPeople, names: dict[int, str], *,
                    threshold: float = PULL_THRESHOLD, margin: float = NAME_MARGIN) -> tuple[np.ndarray, dict[int, str]]:
    """Move the Unknown faces that one known person clearly matches into that person's cluster.

    The person's largest named cluster takes them; a person with no named
    cluster gets a new label (after the largest in use) for their pulled
    faces.  Returns new ``(labels, names)``; the inputs are not changed.
    """
    labels = np.array(labels, dtype=np.int64, copy=True)
    names = dict(names)
    unknown = np.flatnonzero(labels == UNKNOWN_LABEL)
    if not len(unknown) or not len(known.names):
        return labels, names
    D, people = distances_to_people(np.asarray(encodings)[unknown], known)
    home: dict[str, int] = {}
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, np.int64)
    for label, name in sorted(names.items(), key=lambda item: -sizes[item[0]] if item[0] < len(sizes) else 0):
        home.setdefault(name, label)
    next_label = int(labels.max()) + 1 if len(labels) else 0
    for row, face in zip(D, unknown.tolist()):
        chosen = decide(row, threshold, margin)
        if chosen is None:
            continue
        name = people[chosen]
        if name not in home:
            home[name], names[next_label] = next_label, name
            next_label += 1
        labels[face] = home[name]
    return labels, names

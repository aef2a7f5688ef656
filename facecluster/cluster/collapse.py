"""Does a clustering look collapsed (many people chained into one cluster)?

The check behind cluster_faces.py's warning (:func:`collapse_warning`): it
says plainly what went wrong -- the largest cluster's share or spread, and how
many pictures show two of its faces together (so it holds at least that many
people) -- and suggests what would help, never the method already running.
"""

from __future__ import annotations

import numpy as np

from .constraints import Constraints, repeated_pictures

# The largest cluster shows up twice in at least this many pictures, and in at
# least this share of the multi-face pictures it appears in: many people in one
# cluster, whatever its size (the tutorial's DBSCAN on an 82 s dinner scene:
# one cluster for six people, every frame with two faces showing it twice).
COLLAPSE_REPEATS = 3
COLLAPSE_REPEAT_SHARE = 0.2


def looks_collapsed(
    labels: np.ndarray,
    encodings: np.ndarray | None = None,
    *,
    min_faces: int = 50,
    max_share: float = 0.5,
    max_spread: float = 0.65,
) -> bool:
    """Whether a clustering of at least ``min_faces`` faces looks collapsed,
    i.e. many people chained into one cluster (DBSCAN's typical failure), so
    that the caller should suggest another method or a smaller ``eps``.

    True when the largest cluster holds more than ``max_share`` of all faces,
    or, given the ``encodings``, when the median distance between its faces
    exceeds ``max_spread``: one person's faces have a median distance of about
    0.45 (at most 0.61 over LFW's 158 people with >= 10 photos) while
    different people are 0.8+ apart.  The spread test catches collapses that
    the share misses: the tutorial's DBSCAN on 3,648 LFW faces puts 36% of them
    in one cluster with median distance 0.76 (pairwise precision 0.04).
    """
    labels = np.asarray(labels)
    if encodings is not None and len(encodings) != labels.size:
        raise ValueError(f"{labels.size} labels but {len(encodings)} encodings")
    if labels.size < min_faces:
        return False
    clustered = labels[labels >= 0]
    if clustered.size == 0:
        return False
    sizes = np.bincount(clustered)
    if sizes.max() > max_share * labels.size:
        return True
    if encodings is None:
        return False
    from scipy.spatial.distance import pdist

    members = np.flatnonzero(labels == sizes.argmax())
    if members.size > 500:  # a fixed sample keeps this O(1) and deterministic
        members = np.random.default_rng(0).choice(members, 500, replace=False)
    X = np.asarray(encodings, dtype=np.float64)[members]
    return bool(np.median(pdist(X)) > max_spread)


def repeats_in_largest(labels: np.ndarray, constraints: Constraints) -> tuple[int, int, int]:
    """For the largest cluster: (pictures showing it twice or more, most of
    its faces in one picture, multi-face pictures it appears in)."""
    labels = np.asarray(labels)
    clustered = labels[labels >= 0]
    if clustered.size == 0:
        return 0, 0, 0
    largest = int(np.bincount(clustered).argmax())
    repeats = [r for r in repeated_pictures(labels, constraints) if r.label == largest]
    shared = sum(bool((labels[faces] == largest).any()) for faces in constraints.shared())
    return len(repeats), max((len(r.faces) for r in repeats), default=1), shared


def collapse_warning(labels: np.ndarray, encodings: np.ndarray | None, method: str,
                     constraints: Constraints | None = None, *, threshold: float | None = None,
                     better: tuple[str, int, int] | None = None) -> str | None:
    """The warning to print when the clustering looks collapsed, else ``None``.

    Collapsed: :func:`looks_collapsed`, or (given ``constraints``) the largest
    cluster shows up twice in at least :data:`COLLAPSE_REPEATS` pictures and
    :data:`COLLAPSE_REPEAT_SHARE` of the multi-face pictures it is in.  The
    text says what was seen and suggests another method than ``method``
    (``threshold``: the one it ran at, if any); ``better`` = (method, people
    found, pictures showing one of its clusters twice) when the caller tried it.
    """
    seen = what_collapsed(labels, encodings, constraints)
    return None if seen is None else collapse_text(labels, seen, method, threshold, better)


def what_collapsed(labels: np.ndarray, encodings: np.ndarray | None,
                   constraints: Constraints | None = None) -> str | None:
    """What makes the largest cluster look like many people, in words; ``None`` when it does not
    (the check of :func:`collapse_warning`, for a caller that words the warning later)."""
    labels = np.asarray(labels)
    if not (labels >= 0).any():
        return None
    twice, most, shared = repeats_in_largest(labels, constraints) if constraints is not None else (0, 0, 0)
    together = twice >= COLLAPSE_REPEATS and twice >= COLLAPSE_REPEAT_SHARE * shared
    if not together and not looks_collapsed(labels, encodings):
        return None
    return (f"{twice} of the {shared} pictures it is in with other faces show two of its faces together "
            f"(up to {most} in one picture), so it holds at least {most} people"
            if together else "its faces are too many or too unlike for one person")


def collapse_text(labels: np.ndarray, seen: str, method: str, threshold: float | None = None,
                  better: tuple[str, int, int] | None = None) -> str:
    """The warning for a collapse that :func:`what_collapsed` described as ``seen``."""
    labels = np.asarray(labels)
    size = int(np.bincount(labels[labels >= 0]).max())
    return f"the largest cluster ({size} of {len(labels)} faces) looks like many people merged into one: {seen}; " \
        + _suggestion(method, threshold, better)


def _suggestion(method: str, threshold: float | None, better: tuple[str, int, int] | None) -> str:
    """What would help, never ``method`` itself."""
    from .methods import RECOMMENDED_METHOD

    if better is not None and better[0] != method:
        name, people, twice = better
        return (f"--method {name} finds {people} {'person' if people == 1 else 'people'} here"
                f"{', none of them twice in one picture' if twice == 0 else f' ({twice} pictures show one twice)'}")
    if method == "dbscan":
        return (f"DBSCAN chains look-alikes into one cluster; --method {RECOMMENDED_METHOD} separates them "
                "and keeps faces seen together apart (or lower --eps)")
    lower = f" (now {threshold:.3g})" if threshold is not None else ""
    if method == RECOMMENDED_METHOD:
        return "try --method hdbscan, or chinese-whispers with a lower --threshold, e.g. 0.45"
    return f"try --method {RECOMMENDED_METHOD}, or a lower --threshold{lower}"

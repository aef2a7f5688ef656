"""Scoring clusters against known identities.

:func:`evaluate` compares predicted labels (``-1`` = outlier) with true
identities and returns the usual external clustering measures:

- pairwise precision / recall / F1: over all pairs of faces, a pair is
  *predicted* when both faces share a cluster and *true* when both show the
  same person (as in e.g. Otto, Wang & Jain, "Clustering millions of faces by
  identity", TPAMI 2018);
- BCubed precision / recall / F1: per face, the share of its cluster that is
  the same person, and the share of that person found in its cluster, averaged
  over faces (Bagga & Baldwin 1998; Amigo et al., "A comparison of extrinsic
  clustering evaluation metrics based on formal constraints", Inf. Retrieval
  2009).  Unlike pairwise scores, large clusters don't dominate;
- NMI and ARI from scikit-learn.

Every outlier counts as a cluster of its own, so a method is neither rewarded
nor punished for calling a face "unknown" except through those pairs.

:func:`read_labels` gets the identities, from folder names or a CSV key, and
:func:`format_report` prints the result.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from ..files import open_regular
from ..records import box_area

LABELS_CSV_HEADER = ("path", "identity")


class Scores(TypedDict):
    """What :func:`evaluate` measures: counts of the faces scored, then the scores (0-1)."""

    faces: int  # faces scored (those with a label)
    unlabelled: int  # faces left out: no label
    identities: int  # distinct people among the scored faces
    identities_repeated: int  # people with 2+ faces: the clusters a perfect run finds
    clusters: int  # non-outlier clusters among the scored faces
    outliers: int  # scored faces labelled -1
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    nmi: float
    ari: float


def evaluate(labels_pred: Sequence[int] | np.ndarray, identities: Sequence[str | None]) -> Scores:
    """Score predicted cluster labels against true identities.

    Parameters
    ----------
    labels_pred : ints, one per face; ``-1`` marks an outlier, which is scored
        as a cluster of its own.
    identities : the true identity of each face, or ``None`` for a face
        without a label; those faces are left out of every measure.

    Returns
    -------
    :class:`Scores`: the counts of faces, people and clusters scored, pairwise
    and BCubed precision, recall and F1, NMI and ARI.

    With no predicted pairs, pairwise precision is 1 (no claim was wrong); with
    no true pairs, pairwise recall is 1 (nothing was missed).

    Raises ValueError when the lengths differ or no face has a label.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    pred = np.asarray(labels_pred)
    if pred.ndim != 1:
        raise ValueError(f"labels_pred must be 1-D, got shape {pred.shape}")
    if len(pred) != len(identities):
        raise ValueError(f"labels_pred has {len(pred)} entries but identities has {len(identities)}")
    if pred.size and not np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"labels_pred must be integers, got dtype {pred.dtype}")
    scored = np.array([identity is not None for identity in identities], dtype=bool)
    if not scored.any():
        raise ValueError("nothing to score: no face has an identity label")

    pred = pred[scored].astype(np.int64)
    truth = [identity for identity in identities if identity is not None]
    n = len(truth)
    # Each outlier becomes its own cluster, with an id no real cluster uses.
    outlier = pred < 0
    pred = pred.copy()
    pred[outlier] = pred.max(initial=0) + 1 + np.arange(int(outlier.sum()))
    _, truth_ids = np.unique(np.asarray(truth, dtype=object).astype(str), return_inverse=True)

    table = contingency_matrix(truth_ids, pred, sparse=True).tocoo()  # rows: people, columns: clusters
    cell = table.data.astype(np.float64)
    person_size = np.bincount(truth_ids).astype(np.float64)
    _, cluster_size = np.unique(pred, return_counts=True)
    cluster_size = cluster_size.astype(np.float64)

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) / 2).sum())

    together = pairs(cell)
    predicted, true = pairs(cluster_size), pairs(person_size)
    pair_p = together / predicted if predicted else 1.0
    pair_r = together / true if true else 1.0

    # BCubed: a face in cell (person p, cluster c) has precision n_pc/|c| and
    # recall n_pc/|p|; n_pc faces share each value.
    bc_p = float((cell * cell / cluster_size[table.col]).sum() / n)
    bc_r = float((cell * cell / person_size[table.row]).sum() / n)

    return Scores(
        faces=n,
        unlabelled=int(len(identities) - n),
        identities=int(len(person_size)),
        identities_repeated=int((person_size >= 2).sum()),
        clusters=int(len(np.unique(pred[~outlier]))),
        outliers=int(outlier.sum()),
        pairwise_precision=float(pair_p),
        pairwise_recall=float(pair_r),
        pairwise_f1=_f1(pair_p, pair_r),
        bcubed_precision=bc_p,
        bcubed_recall=bc_r,
        bcubed_f1=_f1(bc_p, bc_r),
        nmi=float(normalized_mutual_info_score(truth_ids, pred)),
        ari=float(adjusted_rand_score(truth_ids, pred)),
    )


def read_labels(spec: str, image_paths: Sequence[str], dataset_root: str | None = None) -> list[str | None]:
    """The true identity of each image, or ``None`` where it has none.

    ``spec`` is either

    - ``"folders"``: the name of each image's parent folder (LFW's
      ``<identity>/<image>`` layout).  Images directly in ``dataset_root`` have
      no label; or
    - the path of a CSV file with the header ``path,identity`` whose paths are
      relative to ``dataset_root`` (``/`` or the OS separator).  An image path
      matches a row when, normalised, its path relative to ``dataset_root`` or
      its path as given equals the row's.  Images without a row, or with an
      empty identity, have no label.

    Either way, an image inside a folder whose name starts with ``_`` (such as
    ``_multi_face/``) is unlabelled.

    Raises ValueError for a missing, unreadable or malformed CSV (wrong
    header, wrong number of fields, one path given two identities).
    """
    if spec == "folders":
        labels = [_folder_label(path, dataset_root) for path in image_paths]
    else:
        key = _read_key(spec)
        labels = []
        for path in image_paths:
            candidates = [_normalise(path)]
            if dataset_root is not None:
                candidates.insert(0, _normalise(os.path.relpath(os.path.abspath(path), os.path.abspath(dataset_root))))
            labels.append(next((key[c] for c in candidates if c in key), None))
    return [None if label is None or _in_hidden_folder(path, dataset_root) else label
            for path, label in zip(image_paths, labels)]


def format_report(metrics: dict) -> str:
    """Multi-line, human-readable text of an :func:`evaluate` result."""
    m = metrics
    lines = [
        f"faces scored:    {m['faces']}" + (f" ({m['unlabelled']} unlabelled, not scored)" if m["unlabelled"] else ""),
        f"identities:      {m['identities']} ({m['identities_repeated']} with 2+ faces)",
        f"clusters found:  {m['clusters']}, outliers: {m['outliers']}",
        f"pairwise:        precision {m['pairwise_precision']:.3f}  recall {m['pairwise_recall']:.3f}  "
        f"F1 {m['pairwise_f1']:.3f}",
        f"BCubed:          precision {m['bcubed_precision']:.3f}  recall {m['bcubed_recall']:.3f}  "
        f"F1 {m['bcubed_f1']:.3f}",
        f"NMI {m['nmi']:.3f}  ARI {m['ari']:.3f}",
    ]
    return "\n".join(lines)


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def _normalise(path: str) -> str:
    return os.path.normpath(path.replace("\\", "/")).replace(os.sep, "/")


def _folder_label(path: str, dataset_root: str | None) -> str | None:
    parent = os.path.dirname(os.path.abspath(path))
    if dataset_root is not None and os.path.normpath(parent) == os.path.abspath(dataset_root):
        return None
    return os.path.basename(parent) or None


def _in_hidden_folder(path: str, dataset_root: str | None) -> bool:
    # Relative to the dataset root when known, so a "_" folder *above* the
    # dataset (e.g. /home/me/_photos/dataset) doesn't hide everything.
    folder = os.path.dirname(os.path.abspath(path))
    if dataset_root is not None:
        relative = os.path.relpath(folder, os.path.abspath(dataset_root))
        if not relative.startswith(".."):
            folder = relative
    else:
        folder = os.path.basename(folder)
    return any(part.startswith("_") for part in _normalise(folder).split("/"))


def _read_key(csv_path: str) -> dict[str, str | None]:
    if not os.path.isfile(csv_path):
        raise ValueError(f"labels file {csv_path!r} does not exist (expected 'folders' or a CSV with path,identity)")
    key: dict[str, str | None] = {}
    try:
        with io.TextIOWrapper(open_regular(csv_path), newline="", encoding="utf-8-sig") as handle:
            rows = csv.reader(handle)
            header = next(rows, None)
            if header is None or tuple(h.strip().lower() for h in header) != LABELS_CSV_HEADER:
                raise ValueError(f"{csv_path}: first line must be the header 'path,identity', got {header!r}")
            for line, row in enumerate(rows, start=2):
                if not row or not any(row):
                    continue
                if len(row) != 2:
                    raise ValueError(f"{csv_path}, line {line}: expected 2 fields (path,identity), got {len(row)}")
                path, identity = row[0].strip(), row[1].strip() or None
                if not path:
                    raise ValueError(f"{csv_path}, line {line}: empty path")
                path = _normalise(path)
                if path in key and key[path] != identity:
                    raise ValueError(f"{csv_path}, line {line}: {path!r} already labelled {key[path]!r}")
                key[path] = identity
    except UnicodeDecodeError as error:
        raise ValueError(f"{csv_path}: not a UTF-8 text file ({error.reason})") from None
    except csv.Error as error:
        raise ValueError(f"{csv_path}: malformed CSV ({error})") from None
    except OSError as error:
        raise ValueError(f"labels file {csv_path!r} cannot be read ({error.strerror or error})") from None
    return key


def primary_face_labels(records: Sequence[dict], identities: Sequence[str | None]) -> list[str | None]:
    """Keep a photo's label only on its largest face.

    A label names the person a photo is *of*; in a photo with several faces
    the others are bystanders, who would otherwise be scored as that person.
    They are still clustered, just not scored.  ``records`` are face records
    (``imagePath``, ``loc``) aligned with ``identities``.
    """
    largest: dict[str, int] = {}
    for index, record in enumerate(records):
        best = largest.get(record["imagePath"])
        if best is None or box_area(record["loc"]) > box_area(records[best]["loc"]):
            largest[record["imagePath"]] = index
    return [label if largest[record["imagePath"]] == index else None
            for index, (record, label) in enumerate(zip(records, identities))]

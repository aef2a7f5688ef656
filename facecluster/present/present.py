"""The one call that shows the clusters: montages, files, person folders, gallery, windows.

:func:`present` is all ``cluster_faces.py`` needs after clustering.  Steps
run in this order, each over the clusters grouped once (see
:mod:`.clusters`): ``clusters.csv`` and ``clusters.json`` (every face),
the person folders (``--organize``), the montages (files and/or windows,
Unknown Faces first, then people largest first, at most ``max_montages``),
and the gallery pages for the same clusters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from ..records import FaceRecord
from .clusters import Clusters, group_clusters
from .crops import PhotoReader
from .export import write_clusters_csv, write_clusters_json
from .gallery import GalleryOptions, write_gallery
from .montage import cluster_montage, montage_filename
from ..files import write_image
from .organize import organize
from .output import mark
from .windows import show_montages

DEFAULT_MAX_MONTAGES = 100


@dataclass(frozen=True)
class PresentOptions:
    """What :func:`present` makes besides the files."""

    show_windows: bool = False  # page through the montages in windows
    organize: Literal["copy", "link"] | None = None  # person folders, and how
    seed: int = 0  # seeds the montage sampling
    max_montages: int = DEFAULT_MAX_MONTAGES  # montages and gallery sections, largest clusters first
    run: Mapping = field(default_factory=dict)  # stored under "run" in clusters.json
    names: Mapping[int, str] = field(default_factory=dict)  # label -> person's name, for named clusters
    gallery: GalleryOptions = GalleryOptions()


@dataclass
class Presented:
    """What :func:`present` did."""

    montages: dict[int, str] = field(default_factory=dict)  # label -> montage file written
    folders: dict[int, str] = field(default_factory=dict)  # label -> person folder
    pages: list[str] = field(default_factory=list)  # gallery pages, index.html first
    left_out: int = 0  # clusters with no montage or gallery section


def present(out_dir: str | None, records: Sequence[FaceRecord], labels, options: PresentOptions) -> Presented:
    """Show the clustering of ``records`` (one label per record, -1 unknown).

    With ``out_dir`` every file goes there (created if needed); ``None``
    writes nothing, for windows alone.  Prints the tutorial's
    ``[INFO] faces for face ID: N`` per montage.  Raises ValueError when
    ``labels`` does not match ``records`` or ``max_montages`` < 1.
    """
    if options.max_montages < 1:
        raise ValueError(f"max_montages must be at least 1, got {options.max_montages}")
    clusters = group_clusters(records, labels, options.names)
    shown = clusters.order[:options.max_montages]
    done = Presented(left_out=len(clusters.order) - len(shown))
    if done.left_out:
        kept = "every face is in clusters.csv and clusters.json" if out_dir else "--output DIR writes every face"
        print(f"[INFO] montages{' and gallery' if out_dir else ''} for the {len(shown):,} largest of "
              f"{len(clusters.order):,} clusters (--max-montages); {kept}")
    reader = PhotoReader()
    if out_dir is not None:
        done.folders = _files_and_folders(out_dir, records, clusters, options)
    _montages(out_dir, records, clusters, shown, options, reader, done)
    if out_dir is not None:
        done.pages = write_gallery(out_dir, records, clusters, shown, done.montages, done.folders, reader,
                                   options.gallery)
        pages = f" ({len(done.pages)} pages)" if len(done.pages) > 1 else ""
        print(f"[INFO] wrote {len(done.montages):,} montages, clusters.csv, clusters.json and index.html{pages} "
              f"to {out_dir}/")
    reader.report()  # once, for montages and gallery together
    return done


def _files_and_folders(out_dir: str, records: Sequence[FaceRecord], clusters: Clusters,
                       options: PresentOptions) -> dict[int, str]:
    """Write clusters.csv and clusters.json (every face) and, if asked, the person folders.

    Returns the person folders by label (empty without ``options.organize``).
    """
    os.makedirs(out_dir, exist_ok=True)
    mark(out_dir)
    write_clusters_csv(os.path.join(out_dir, "clusters.csv"), records, clusters)
    write_clusters_json(os.path.join(out_dir, "clusters.json"), records, clusters, options.run)
    if not options.organize:
        return {}
    organized = organize(out_dir, records, clusters, options.organize)
    print(f"[INFO] {organized.placed:,} photos sorted into {len(organized.folders):,} folders "
          f"in {out_dir}/ ({organized.mode})")
    return organized.folders


def _montages(out_dir: str | None, records: Sequence[FaceRecord], clusters: Clusters, shown: list[int],
              options: PresentOptions, reader: PhotoReader, done: Presented) -> None:
    """Build each montage once: written to ``out_dir`` (if any) and shown in windows (if asked).

    Windows open as the montages are built, so the first appears at once;
    after ``q`` the rest are still written when there is an ``out_dir``.
    """
    montages = _each_montage(records, clusters, shown, options.seed, reader)
    if out_dir is not None:
        montages = _written(out_dir, montages, done.montages, clusters.names)
    if options.show_windows:
        show_montages((clusters.title(label), image) for label, image in montages)
    if out_dir is not None:
        for _ in montages:  # whatever the windows did not get to
            pass
        _remove_stale_montages(out_dir, done.montages)


def _remove_stale_montages(out_dir: str, written: Mapping[int, str]) -> None:
    """Remove montage files an earlier run left for clusters this run has not got (or leaves out)."""
    wanted = {os.path.basename(path) for path in written.values()}
    for name in os.listdir(out_dir):
        if re.fullmatch(r"face_id_\d+(_[^/\\.]+)?\.jpg|unknown_faces\.jpg", name) and name not in wanted:
            os.unlink(os.path.join(out_dir, name))


def _each_montage(records: Sequence[FaceRecord], clusters: Clusters, shown: list[int], seed: int,
                  reader: PhotoReader) -> Iterator[tuple[int, np.ndarray]]:
    """Loop over the clusters ``shown``, building a montage of a random sample
    of at most 25 faces for each -- one at a time, so memory stays flat."""
    rng = np.random.default_rng(seed)
    for label in shown:
        name = f" ({clusters.names[label]})" if label in clusters.names else ""
        print("[INFO] faces for face ID: {}{}".format(label, name))
        yield label, cluster_montage(records, clusters.members(label), rng, reader)


def _written(out_dir: str, montages: Iterator[tuple[int, np.ndarray]],
             files: dict[int, str], names: Mapping[int, str]) -> Iterator[tuple[int, np.ndarray]]:
    """Pass the montages on after writing each to ``out_dir`` (named by ``names``, label -> person's
    name); records the files in ``files``."""
    for label, image in montages:
        files[label] = os.path.join(out_dir, montage_filename(label, names.get(label)))
        write_image(files[label], image)
        yield label, image

"""The encoding run: every photo of a folder through one detector and one encoder.

The detector and encoder are chosen once (:class:`Method`) and sent to every
worker.  Photos are spread over worker processes (one per core by default),
a task at a time (one photo, or a CNN batch).  Results come back in any order
but are stored by path, and the records come out in the listing's order, so
the output is the same whatever the number of workers.  Finished photos are
kept in a :class:`~facecluster.store.photo_cache.ResultCache` as they arrive, which makes
runs incremental and resumable; the encodings file itself is written by the
caller, at the end.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Callable, Iterator

import numpy as np

from ..store.photo_cache import Fingerprint, PhotoResult, ResultCache, open_cache
from .pool import KILLED, STALLED, in_pool
from ..sources.skips import ImageSkipped, Skip, display_path
from ..sources.folder import Listing, list_images
from ..sources.images import LoadedImage, load_image
from ..records import Face, FaceRecord, make_record, scale_box
from ..detect.detectors import Detector
from ..embed.encoders import Encoder

# Part of the key under which results are reused: bump it whenever a change
# would find or encode faces differently, so old results are redone.
PIPELINE_VERSION = 3

# A worker died on this photo.  Not kept between runs: the cause may have been
# transient (the system ran out of memory), so the next run tries it again.
CRASHED = "crashed the image decoder"
# No result for pool.STALL_SECONDS, run alone: tried again next run, as a crash is.
HUNG = "the image decoder stopped responding"

# What dlib, OpenCV or numpy raise on a pathological image.
_PHOTO_ERRORS = (RuntimeError, ValueError, MemoryError)


class DatasetError(Exception):
    """The dataset can't be used at all; ``str()`` is a one-line reason."""


@dataclass(frozen=True)
class Method:
    """The detector and the encoder a run uses: chosen once, sent to every worker."""

    detector: Detector
    encoder: Encoder

    def cache_key(self) -> str:
        """Results are reused only under the same key: the pipeline version, detector and encoder."""
        return f"v{PIPELINE_VERSION}/{self.detector.cache_key()}/{self.encoder.cache_key()}"

    @property
    def photos_per_task(self) -> int:
        """Photos a worker takes at once: what the detector batches (CUDA) or the
        encoder's network runs as one batch, whichever is more."""
        return max(self.detector.photos_per_task, self.encoder.photos_per_task)

    def preload(self) -> None:
        """Load both models now (before forking workers that then share them)."""
        self.detector.preload()
        self.encoder.preload()

    def find_faces(self, rgbs: list[np.ndarray], quick: bool = False) -> list[list[Face]]:
        """Detect, then encode, every face in each RGB picture; boxes in its pixels.

        ``quick``: the detector's first look only (:meth:`~facecluster.detect.detectors.Detector.quick_look`).
        """
        box_lists = [self.detector.quick_look(rgb) for rgb in rgbs] if quick else self.detector.detect_batch(rgbs)
        encoding_lists = self.encoder.encode_batch(rgbs, box_lists)
        return [[Face(box, enc) for box, enc in zip(boxes, encs)] for boxes, encs in zip(box_lists, encoding_lists)]


@dataclass
class RunSummary:
    images: int = 0
    faces: int = 0
    with_faces: int = 0
    reused: int = 0
    encoded: int = 0
    no_face: list[str] = field(default_factory=list)  # paths as given
    skipped: list[Skip] = field(default_factory=list)  # in path order
    ignored: int = 0
    seconds: float = 0.0

    def skipped_by_category(self) -> Counter:
        return Counter(skip.category for skip in self.skipped)


def _skipped(path: str, category: str, reason: str, transient: bool = False) -> PhotoResult:
    return PhotoResult(path, "skipped", [], reason, category, transient)


def _failed(path: str, error: BaseException) -> PhotoResult:
    if isinstance(error, MemoryError):
        return _skipped(path, "out of memory", "out of memory while finding faces", transient=True)
    return _skipped(path, "failed", f"could not be processed: {type(error).__name__}: {error}")


def _load(path: str) -> tuple[LoadedImage | None, PhotoResult | None]:
    """The decoded photo, or else its result as skipped."""
    try:
        return load_image(path), None
    except ImageSkipped as skipped:
        return None, _skipped(path, skipped.category, skipped.reason, skipped.transient)
    except _PHOTO_ERRORS as error:
        return None, _failed(path, error)


def _with_faces(path: str, image: LoadedImage, faces: list[Face]) -> PhotoResult:
    """The photo's result, its boxes mapped back to the original's pixels.

    A face whose encoding is not finite (a degenerate crop) is not a face:
    NaN would make the whole encodings file unusable for clustering.
    """
    faces = [face for face in faces if np.isfinite(face.encoding).all()]
    if image.scale != 1.0:
        faces = [Face(scale_box(face.box, 1 / image.scale), face.encoding) for face in faces]
    return PhotoResult(path, "faces" if faces else "no-face", faces)


def encode_photos(paths: list[str], method: Method) -> list[PhotoResult]:
    """A worker's task: the results of ``paths``, in order, detected as one batch.

    Never raises for a bad photo: whatever fails is that photo's result, and
    a batch that fails is redone photo by photo, so one bad photo costs only itself.
    """
    fingerprints = {path: Fingerprint.of(path, with_digest=True) for path in paths}  # before reading
    results: dict[str, PhotoResult] = {}
    loaded: list[tuple[str, LoadedImage]] = []
    for path in paths:
        image, failure = _load(path)
        if failure is not None:
            results[path] = failure
        else:
            loaded.append((path, image))
    try:
        face_lists = method.find_faces([image.rgb for _, image in loaded])
    except _PHOTO_ERRORS as error:
        if len(loaded) > 1:
            return [result for path in paths for result in encode_photos([path], method)]
        face_lists = []
        results.update((path, _failed(path, error)) for path, _ in loaded)
    for (path, image), faces in zip(loaded, face_lists):
        results[path] = _with_faces(path, image, faces)
    return [replace(results[path], fingerprint=fingerprints[path]) for path in paths]


# Tasks each worker should get at least, so the run's tail (one worker finishing a last
# task while the others wait) stays short: face_recognition's 26 example photos in tasks
# of 4 took 1.2x as long as photo by photo.
_TASKS_PER_WORKER = 8


def task_size(photos: int, photos_per_task: int, workers: int) -> int:
    """Photos per task: ``photos_per_task`` (the method's batch), but with several
    workers smaller when there are too few photos for each to get
    :data:`_TASKS_PER_WORKER` tasks (one worker has no one to keep waiting)."""
    if workers == 1:
        return photos_per_task
    return max(1, min(photos_per_task, photos // (workers * _TASKS_PER_WORKER)))


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    """``items`` in consecutive tasks of ``size`` (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


Runner = Callable[[list[list[str]], Method, int], Iterator[PhotoResult]]
"""Runs tasks (lists of photo paths) through :func:`encode_photos` on ``workers``
workers and yields every photo's result as it comes; :func:`run_in_processes`
here, a Dask cluster elsewhere."""


def run_in_processes(tasks: list[list[str]], method: Method, workers: int) -> Iterator[PhotoResult]:
    """The local :data:`Runner`: yield results as worker processes finish them.

    A photo that kills its worker (a decoder crashing on a hostile file), or
    hangs it, is reported as skipped; the photos in flight beside it are
    tried again one at a time (:func:`~.pool.in_pool`), and the run goes on.
    """
    photos_alone = lambda task: [[path] for path in task]  # noqa: E731
    for task, results in in_pool(partial(encode_photos, method=method), tasks, workers, split=photos_alone):
        if results is KILLED:
            yield _skipped(task[0], "crashed", CRASHED, transient=True)
        elif results is STALLED:
            yield _skipped(task[0], "stalled", HUNG, transient=True)
        else:
            yield from results


def list_dataset(dataset: str) -> Listing:
    """The photos and videos of ``dataset``; :class:`DatasetError` if there is nothing to do."""
    if not os.path.exists(dataset):
        raise DatasetError(f"{display_path(dataset)}: no such folder")
    if not os.path.isdir(dataset):
        raise DatasetError(f"{display_path(dataset)}: not a folder")
    listing = list_images(dataset)
    if not listing.images and not listing.videos:
        raise DatasetError(f"{display_path(dataset)}: holds no image or video")
    return listing


def _reused(
    listing: Listing, cache: ResultCache, fresh: bool, on_result: Callable[[PhotoResult, bool], None]
) -> tuple[dict[str, PhotoResult], list[str]]:
    """The results kept from earlier runs, and the photos still to encode."""
    results: dict[str, PhotoResult] = {}
    todo: list[str] = []
    for path in listing.images:
        earlier = None if fresh else cache.lookup(path)
        if earlier is None:
            todo.append(path)
        else:
            results[path] = earlier
            on_result(earlier, True)
    return results, todo


def _summarise(listing: Listing, results: dict[str, PhotoResult], summary: RunSummary) -> list[FaceRecord]:
    """The face records in listing order, counting each photo's outcome into ``summary``."""
    records: list[FaceRecord] = []
    skipped = list(listing.skipped)
    for path in listing.images:
        result = results[path]
        if result.status == "skipped":
            skipped.append(Skip(path, result.category, result.reason))
        elif not result.faces:
            summary.no_face.append(path)
        else:
            summary.with_faces += 1
            records.extend(make_record(path, face.box, face.encoding) for face in result.faces)
    summary.skipped = sorted(skipped)
    summary.faces = len(records)
    return records


def encode_dataset(
    listing: Listing,
    encodings_path: str,
    method: Method,
    *,
    workers: int = 0,
    fresh: bool = False,
    runner: Runner = run_in_processes,
    on_result: Callable[[PhotoResult, bool], None] = lambda result, reused: None,
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> tuple[list[FaceRecord], RunSummary]:
    """Encode every photo in ``listing`` with ``method``; return the face records and a summary.

    ``workers=0`` means one process per core.  Results kept in the cache
    beside ``encodings_path`` for an unchanged photo are reused unless
    ``fresh``.  ``runner`` runs the photos still to do.  ``on_result(result, reused)`` is called once per photo, in
    completion order, for progress display; ``warn`` gets the cache's lines.
    Records come in listing order with paths as the listing gives them; the
    encodings file itself is not written here.
    """
    started = time.perf_counter()
    summary = RunSummary(images=len(listing.images), ignored=listing.ignored)
    cache = open_cache(encodings_path, method.cache_key(), warn)
    try:
        results, todo = _reused(listing, cache, fresh, on_result)
        summary.reused = len(results)
        if todo:
            method.preload()  # deliberately, once, before the workers fork
        workers = workers or os.cpu_count() or 1
        tasks = list(chunks(todo, task_size(len(todo), method.photos_per_task, workers)))
        for result in runner(tasks, method, workers):
            results[result.path] = result
            cache.store(result)
            summary.encoded += 1
            on_result(result, False)
        cache.prune(listing.root, listing.images)
    finally:
        cache.close()
    records = _summarise(listing, results, summary)
    summary.seconds = time.perf_counter() - started
    return records, summary

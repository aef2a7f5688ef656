"""The encoding run: every photo of a folder through detection and encoding.

Photos are spread over worker processes (one per core by default).  Results
come back in any order but are stored by path, and the encodings file is
written sorted by path, so the output is the same whatever the number of
workers.  Finished photos are kept in a :class:`~facecluster.cache.ResultCache`
as they arrive, which makes runs incremental and resumable; the encodings file
itself is replaced only at the end, atomically, so the previous one survives
any interruption.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..cache import Fingerprint, PhotoResult, ResultCache, cache_path_for
from .detectors import DetectionOptions, detect_faces_batch, encode_faces, find_faces, preload
from ..images import ImageSkipped, Listing, display_path, list_images, load_image
from ..records import FaceRecord, make_record, scale_box


# A worker died on this photo.  Not kept between runs: the cause may have been
# passing (the system ran out of memory), so the next run tries it again.
CRASHED = "crashed the image decoder"


# What dlib, OpenCV or numpy raise on a pathological image.
_PHOTO_ERRORS = (RuntimeError, ValueError, MemoryError)


class DatasetError(Exception):
    """The dataset can't be used at all; ``str()`` is a one-line reason."""


@dataclass
class RunSummary:
    images: int = 0
    faces: int = 0
    with_faces: int = 0
    no_face: int = 0
    reused: int = 0
    encoded: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    ignored: int = 0
    seconds: float = 0.0


def _worker_init() -> None:
    # One BLAS thread per process: the processes already use every core.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def encode_photo(path: str, options: DetectionOptions) -> PhotoResult:
    """Decode one photo and return its faces with boxes in original pixels.

    Never raises for a bad photo: whatever fails is the photo's result.
    """
    try:
        image = load_image(path)
        faces = find_faces(image.rgb, options)
    except ImageSkipped as skipped:
        return PhotoResult(path, "skipped", [], str(skipped))
    except _PHOTO_ERRORS as error:
        return PhotoResult(path, "skipped", [], f"could not be processed ({type(error).__name__}: {error})")
    return _result_from_faces(path, [(face.box, face.encoding) for face in faces], image.scale)


def _result_from_faces(path: str, faces: list, scale: float) -> PhotoResult:
    if scale != 1.0:
        faces = [(scale_box(box, 1 / scale), encoding) for box, encoding in faces]
    return PhotoResult(path, "faces" if faces else "no-face", faces)


def encode_photos(paths: list[str], options: DetectionOptions, batch_size: int = 1) -> list[PhotoResult]:
    """A worker's task: several photos; with the CNN detector they are detected in batches."""
    if options.method != "cnn" or len(paths) == 1:
        return [encode_photo(path, options) for path in paths]
    loaded, results = [], {}
    for path in paths:
        try:
            loaded.append((path, load_image(path)))
        except ImageSkipped as skipped:
            results[path] = PhotoResult(path, "skipped", [], str(skipped))
    try:
        all_boxes = detect_faces_batch([image.rgb for _, image in loaded], options, batch_size)
        for (path, image), boxes in zip(loaded, all_boxes):
            encodings = encode_faces(image.rgb, boxes, options.num_jitters, options.landmarks, options.encoder)
            results[path] = _result_from_faces(path, list(zip(boxes, encodings)), image.scale)
    except _PHOTO_ERRORS:  # one bad photo must not cost the batch: redo them one by one
        return [encode_photo(path, options) for path in paths]
    return [results[path] for path in paths]


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pool(workers: int) -> ProcessPoolExecutor:
    # On Linux the workers are forked from this process after preload(), so
    # they share its already-loaded models instead of each loading its own
    # (about a second apiece).  Elsewhere fork is unsafe: spawn, and load lazily.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init)


def _run_pool(
    tasks: list[list[str]], options: DetectionOptions, workers: int, batch_size: int
) -> Iterator[PhotoResult]:
    """Yield results as workers finish them, keeping only a few tasks in flight.

    If a worker dies (a decoder crashing on a hostile file), the photos that
    were in flight are retried one at a time, each in a process of its own,
    and one that kills it again is reported as skipped; the rest of the run
    goes on in a fresh pool.
    """
    queue = deque(tasks)
    while queue:
        suspects: list[list[str]] = []
        with _pool(workers) as pool:
            in_flight: dict[Future, list[str]] = {}
            try:
                while queue or in_flight:
                    while queue and len(in_flight) < workers * 2:
                        task = queue.popleft()
                        in_flight[pool.submit(encode_photos, task, options, batch_size)] = task
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        results = future.result()
                        del in_flight[future]
                        yield from results
            except BrokenProcessPool:
                suspects = list(in_flight.values())
        for path in (path for task in suspects for path in task):
            yield _encode_isolated(path, options)


def _encode_isolated(path: str, options: DetectionOptions) -> PhotoResult:
    with _pool(1) as pool:
        try:
            return pool.submit(encode_photos, [path], options).result()[0]
        except BrokenProcessPool:
            return PhotoResult(path, "skipped", [], CRASHED)


def _open_cache(encodings_path: str, options: DetectionOptions, warn: Callable[[str], None]) -> ResultCache:
    path = cache_path_for(encodings_path)
    try:
        return ResultCache(path, options.cache_key())
    except sqlite3.DatabaseError as error:
        warn(f"{path}: unusable progress cache ({error}); starting a new one")
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except OSError:
                pass
        return ResultCache(path, options.cache_key())


def list_dataset(dataset: str) -> Listing:
    """The photos of ``dataset``; :class:`DatasetError` if there is nothing to do."""
    if not os.path.exists(dataset):
        raise DatasetError(f"{display_path(dataset)}: no such folder")
    if not os.path.isdir(dataset):
        raise DatasetError(f"{display_path(dataset)}: not a folder")
    listing = list_images(dataset)
    if not listing.images:
        raise DatasetError(f"{display_path(dataset)}: holds no image")
    return listing


def encode_dataset(
    listing: Listing,
    encodings_path: str,
    options: DetectionOptions,
    *,
    workers: int = 0,
    batch_size: int = 32,
    fresh: bool = False,
    on_result: Callable[[PhotoResult, bool], None] = lambda result, reused: None,
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> tuple[list[FaceRecord], RunSummary]:
    """Encode every photo in ``listing``; return the face records, sorted by path.

    ``workers=0`` means one process per core.  Results already in the cache
    beside ``encodings_path`` for an unchanged photo are reused unless
    ``fresh``.  ``on_result`` is called once per photo, in completion order,
    for progress display.  The encodings file itself is not written here.
    """
    started = time.perf_counter()
    summary = RunSummary(images=len(listing.images), ignored=listing.ignored)
    for path, reason in listing.skipped:
        summary.skipped[reason] += 1
        warn(f"[WARNING] skipped {display_path(path)}: {reason}")

    cache = _open_cache(encodings_path, options, warn)
    try:
        results: dict[str, PhotoResult] = {}
        fingerprints = {path: Fingerprint.of(path) for path in listing.images}
        todo: list[str] = []
        for path in listing.images:
            earlier = None if fresh or fingerprints[path] is None else cache.lookup(path, fingerprints[path])
            if earlier is None:
                todo.append(path)
            else:
                results[path] = earlier
                summary.reused += 1
                on_result(earlier, True)

        workers = workers or os.cpu_count() or 1
        chunk = batch_size if options.method == "cnn" else 1
        if todo:
            preload(options)  # deliberately, once, before the workers fork
        for result in _run_pool(list(_chunks(todo, chunk)), options, workers, batch_size):
            results[result.path] = result
            fingerprint = fingerprints.get(result.path)
            if fingerprint is not None and result.reason != CRASHED:
                cache.store(result, fingerprint)
            summary.encoded += 1
            on_result(result, False)
        cache.prune(set(listing.images))
    finally:
        cache.close()

    records: list[FaceRecord] = []
    for path in listing.images:
        result = results[path]
        if result.status == "skipped":
            summary.skipped[result.reason] += 1
            warn(f"[WARNING] skipped {display_path(path)}: {result.reason}")
            continue
        if not result.faces:
            summary.no_face += 1
            continue
        summary.with_faces += 1
        records.extend(make_record(path, box, encoding) for box, encoding in result.faces)
    summary.faces = len(records)
    summary.seconds = time.perf_counter() - started
    return records, summary

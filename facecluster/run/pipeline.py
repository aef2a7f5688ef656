"""The encoding run: every photo of a folder through one detector and one encoder.

The detector and encoder are chosen once (:class:`Method`) and sent to every
worker.  Photos are spread over worker processes (one per core by default),
a task at a time (one photo, or a CNN batch).  Results come back in any order
but are stored by path, and the records come out in the listing's order, so
the output is the same whatever the number of workers.  Finished photos are
kept in a :class:`~facecluster.run.photo_cache.ResultCache` as they arrive, which makes
runs incremental and resumable; the encodings file itself is written by the
caller, at the end.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections import Counter, deque
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import numpy as np

from .photo_cache import Fingerprint, PhotoResult, ResultCache, open_cache
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
# passing (the system ran out of memory), so the next run tries it again.
CRASHED = "crashed the image decoder"

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


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies, even by SIGKILL (Linux; elsewhere nothing).

    ``parent`` is the parent's pid as it forked us: if it is already gone, exit now.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no libc prctl: the SIGTERM handler still stops us
            pass
    if os.getppid() != parent:  # the parent died between fork and prctl
        os._exit(1)


def _worker_init(parent: int) -> None:
    # A worker never outlives the run: killed with it, even by SIGKILL (a worker holds
    # 200+ MB and the cache open).
    die_with_parent(parent)
    # One BLAS thread per process: the processes already use every core.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _skipped(path: str, category: str, reason: str, passing: bool = False) -> PhotoResult:
    return PhotoResult(path, "skipped", [], reason, category, passing)


def _failed(path: str, error: BaseException) -> PhotoResult:
    if isinstance(error, MemoryError):
        return _skipped(path, "out of memory", "out of memory while finding faces", passing=True)
    return _skipped(path, "failed", f"could not be processed: {type(error).__name__}: {error}")


def _load(path: str) -> tuple[LoadedImage | None, PhotoResult | None]:
    """The decoded photo, or else its result as skipped."""
    try:
        return load_image(path), None
    except ImageSkipped as skipped:
        return None, _skipped(path, skipped.category, skipped.reason, skipped.passing)
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


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def start_method() -> str:
    """How worker processes start: ``fork`` on Linux, ``spawn`` elsewhere and with CUDA.

    Forked after preload(), the workers share the models this process loaded
    instead of each loading its own (about a second apiece).  Elsewhere fork is
    unsafe; and a dlib built with CUDA put the CNN's weights on the GPU as
    preload() loaded them, and a CUDA context does not survive a fork, so
    spawned workers load their own models there.
    """
    from ..models.dlib_models import cuda_available

    return "fork" if sys.platform.startswith("linux") and not cuda_available() else "spawn"


def _pool(workers: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context(start_method())
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),))


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` processes, shut down when the block ends.

    On an exception (Ctrl-C, SIGTERM, an error) the workers are killed at once
    rather than waited for: a photo in flight may take seconds, and a run that
    was told to stop must stop.  Killed or not, they never outlive this
    process (:func:`die_with_parent`).
    """
    pool = _pool(workers)
    try:
        yield pool
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public call before 3.14
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


Runner = Callable[[list[list[str]], Method, int], Iterator[PhotoResult]]
"""Runs tasks (lists of photo paths) through :func:`encode_photos` on ``workers``
workers and yields every photo's result as it comes; :func:`run_in_processes`
here, a Dask cluster elsewhere."""


def run_in_processes(tasks: list[list[str]], method: Method, workers: int) -> Iterator[PhotoResult]:
    """The local :data:`Runner`: yield results as worker processes finish them, a few tasks in flight.

    If a worker dies (a decoder crashing on a hostile file), the photos that
    were in flight are retried one at a time, each in a process of its own,
    and one that kills it again is reported as skipped; the rest of the run
    goes on in a fresh pool.
    """
    queue = deque(tasks)
    while queue:
        suspects: list[list[str]] = []
        with worker_pool(workers) as pool:
            in_flight: dict[Future, list[str]] = {}
            try:
                while queue or in_flight:
                    while queue and len(in_flight) < workers * 2:
                        task = queue.popleft()
                        in_flight[pool.submit(encode_photos, task, method)] = task
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        results = future.result()
                        del in_flight[future]
                        yield from results
            except BrokenProcessPool:
                suspects = list(in_flight.values())
        for path in (path for task in suspects for path in task):
            yield _encode_isolated(path, method)


def _encode_isolated(path: str, method: Method) -> PhotoResult:
    with worker_pool(1) as pool:
        try:
            return pool.submit(encode_photos, [path], method).result()[0]
        except BrokenProcessPool:
            return _skipped(path, "crashed", CRASHED, passing=True)


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
        tasks = list(_chunks(todo, task_size(len(todo), method.photos_per_task, workers)))
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

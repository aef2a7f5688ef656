"""What runs on the Dask workers: the models plugin, the checks, the encoding task.

Kept apart from :mod:`facecluster.run.dask_runner` (the client side) so
that the workers unpickle only this and the pipeline.  Every function here is
sent by reference, so a worker -- and the scheduler, which unpickles the
tasks -- must have the project installed (``make install``), at the same
version: :func:`environment` is how the client checks that.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import tempfile
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from distributed import WorkerPlugin, get_worker

from ..store.photo_cache import Fingerprint, PhotoResult
from .pipeline import Method, encode_photos

# The distributions whose versions must match on the client and every worker:
# Dask's own wire format, and what decodes photos and computes encodings.
PACKAGES = ("dask", "distributed", "cloudpickle", "msgpack", "numpy", "dlib-bin", "dlib", "pillow", "opencv-python")

# The code whose every byte can change an encoding (compared by digest).
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_ENCODING_CODE = ("sources/*.py", "detect/*.py", "embed/*.py", "models/*.py", "run/*.py", "records.py")


@dataclass(frozen=True)
class SentPhoto:
    """A photo read on the client and sent with its task (``--dask-photos send``).

    ``path`` is the path as the client's listing gives it; ``size`` and
    ``mtime_ns`` are the client's view of the file, for the cache.
    """

    path: str
    data: bytes
    size: int
    mtime_ns: int


class ModelsPlugin(WorkerPlugin):
    """Loads the run's models once per worker process, when the worker joins (or now).

    A worker that can't load them fails the plugin's setup, which the client
    turns into one line.
    """

    def __init__(self, method: Method):
        self.method = method

    def setup(self, worker) -> None:
        # One BLAS thread per task thread, as in the local pool: start workers
        # with --nthreads 1 and one process per core (--nworkers).
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        _undo_malloc_trimming()
        self.method.preload()


# glibc's mallopt parameters, and the thresholds a plain process grows into.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 << 20, 64 << 20


def _undo_malloc_trimming() -> None:
    """Let this worker reuse freed memory as a plain process does.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which
    also pins glibc's mmap threshold at 128 KB: every photo-sized array is then
    mapped and unmapped afresh.  Measured here: 8x the page faults and up to 2x
    the CPU time per photo, most of Dask's overhead on this work.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing was pinned
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)


def _code_digest() -> str:
    """A short digest of the encoding code, to tell whether two installs run the same code."""
    digest = hashlib.blake2b(digest_size=8)
    for pattern in _ENCODING_CODE:
        for path in sorted(_PACKAGE_ROOT.glob(pattern)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "-"


def environment() -> dict[str, str]:
    """This process's versions that must match across the cluster: python, packages, encoding code."""
    versions = {"python": ".".join(platform.python_version_tuple()[:2]), "facecluster code": _code_digest()}
    versions.update((name, _version(name)) for name in PACKAGES)
    return versions


def sees(photos: list[tuple[str, int]]) -> bool:
    """Whether this worker can see every ``(absolute path, size)`` as the client does."""
    try:
        return all(os.stat(path).st_size == size for path, size in photos)
    except OSError:
        return False


def _encode_sent(photos: list[SentPhoto], method: Method) -> list[PhotoResult]:
    """:func:`encode_photos` on bytes from the client, decoded exactly like a local file.

    The bytes are written to a private folder and go through the very same
    path as a photo on shared storage (the same loader, the same digest of the
    same bytes); only the path and the file's time are the client's.
    """
    with tempfile.TemporaryDirectory(prefix="facecluster-") as folder:
        paths = [os.path.join(folder, str(number)) for number in range(len(photos))]
        for path, photo in zip(paths, photos):
            with open(path, "wb") as handle:
                handle.write(photo.data)
        results = encode_photos(paths, method)
    return [_as_sent(result, photo) for result, photo in zip(results, photos)]


def _as_sent(result: PhotoResult, photo: SentPhoto) -> PhotoResult:
    fingerprint = result.fingerprint and Fingerprint(photo.size, photo.mtime_ns, result.fingerprint.digest)
    return replace(result, path=photo.path, fingerprint=fingerprint)


def encode_task(tasks: list[list[str]] | list[list[SentPhoto]], method: Method) -> tuple[str, list[PhotoResult]]:
    """A Dask task: this worker's address, and the results of several pipeline tasks' photos, in order.

    Each pipeline task (absolute paths the worker can read, or
    :class:`SentPhoto`\\ s) runs on its own, exactly as in the local pool.
    """
    results: list[PhotoResult] = []
    for photos in tasks:
        if photos and isinstance(photos[0], SentPhoto):
            results += _encode_sent(photos, method)  # type: ignore[arg-type]
        else:
            results += encode_photos(photos, method)  # type: ignore[arg-type]
    return get_worker().address, results

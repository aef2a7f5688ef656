"""The one process pool of a run: tasks spread over worker processes, a
worker's death or hang costing only the task that caused it.

Photos and video segments both go through :func:`in_pool`.  A decoder that
crashes on a hostile file kills its whole worker process, and with it the
pool; one that hangs would hold the run forever, and every later run at the
same file.  In either case :func:`in_pool` runs each task that was in flight
alone, in a process of its own, so that only the culprit is lost and an
innocent task that happened to share the pool is never blamed.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

Task = TypeVar("Task")
Result = TypeVar("Result")


class _Lost:
    """Why a task has no result: its worker was lost to it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


KILLED = _Lost("KILLED")
"""What :func:`in_pool` gives for a task that killed the process it ran in."""

STALLED = _Lost("STALLED")
"""What :func:`in_pool` gives for a task that, run alone, gave nothing for :data:`STALL_SECONDS`."""

# How long no worker may finish anything before the tasks in flight are suspected
# of hanging.  The slowest honest task is a 60 s segment of 4K video: 0.4x real time
# here on a loaded machine (docs/video.md), so about 2.5 minutes; a task suspected
# wrongly is only run again, alone, with as long again.
STALL_SECONDS = 900.0


class _NoProgress(Exception):
    """Nothing finished for the stall limit: the pool is killed (by :func:`worker_pool`)."""


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


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` processes, shut down when the block ends.

    On an exception (Ctrl-C, SIGTERM, an error) the workers are killed at once
    rather than waited for: a photo in flight may take seconds, and a run that
    was told to stop must stop.  Killed or not, they never outlive this
    process (:func:`die_with_parent`).
    """
    context = multiprocessing.get_context(start_method())
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public call before 3.14
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def in_pool(function: Callable[[Task], Result], tasks: Iterable[Task], workers: int,
            split: Callable[[Task], list[Task]] = lambda task: [task],
            stall_seconds: float | None = None) -> Iterator[tuple[Task, Result | _Lost]]:
    """Yield ``(task, function(task))`` as ``workers`` processes finish them, in any order.

    ``function`` must be picklable (a module-level function, a
    ``functools.partial`` of one, or an instance of a module-level class);
    two tasks a worker are kept in flight so that no worker waits for the
    next.  When a worker dies, or no worker finishes anything for
    ``stall_seconds`` (default :data:`STALL_SECONDS`), every task in flight is
    a suspect: each is ``split`` into parts (a batch of photos into single
    photos) and each part is run alone, in a process of its own, giving
    ``(part, KILLED)`` if it kills that one too and ``(part, STALLED)`` if it
    gives nothing for ``stall_seconds`` again.  The remaining tasks then go on
    in a fresh pool.
    """
    stall = STALL_SECONDS if stall_seconds is None else stall_seconds
    queue = deque(tasks)
    while queue:
        in_flight: dict[Future, Task] = {}
        try:
            with worker_pool(workers) as pool:
                while queue or in_flight:
                    while queue and len(in_flight) < workers * 2:
                        # Taken off the queue only once submitted: submit raises on a broken pool.
                        future = pool.submit(function, queue[0])
                        in_flight[future] = queue.popleft()
                    done, _ = wait(in_flight, timeout=stall, return_when=FIRST_COMPLETED)
                    if not done:
                        raise _NoProgress
                    for future in done:
                        result = future.result()  # raises BrokenProcessPool with the task still in flight
                        yield in_flight.pop(future), result
        except (BrokenProcessPool, _NoProgress):  # the pool's workers are gone or killed
            for part in (part for task in list(in_flight.values()) for part in split(task)):
                yield part, _run_alone(function, part, stall)


def _run_alone(function: Callable[[Task], Result], task: Task, stall: float) -> Result | _Lost:
    try:
        with worker_pool(1) as pool:
            try:
                return pool.submit(function, task).result(timeout=stall)
            except BrokenProcessPool:
                return KILLED
            except TimeoutError:
                raise _NoProgress from None  # worker_pool kills the hung worker
    except _NoProgress:
        return STALLED

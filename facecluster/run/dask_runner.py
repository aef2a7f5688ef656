"""The encoding run on a Dask cluster (``encode_faces.py --dask tcp://HOST:8786``).

A :class:`DaskRunner` is a :data:`~facecluster.run.pipeline.Runner`: it
sends the same tasks to a running Dask scheduler that
:func:`~facecluster.run.pipeline.run_in_processes` gives local processes,
and yields each photo's result as it arrives, so the cache, the records and
the encodings file are exactly those of a local run.  Everything else stays
on this machine: listing, reuse, the cache, the summary (and clustering).

:func:`connect` checks the cluster before any work, each failure one line
(:class:`DaskError`, exit 2): the scheduler is reachable, runs this project
at the same versions (it unpickles the tasks) and has workers, the workers
run the same versions and code, they load the models (a worker
plugin, once per worker process), and they see the photos -- or else the
photos are sent from here.  See docs/dask.md.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections import deque
from dataclasses import replace
from typing import Callable, Iterator

from ..store.photo_cache import PhotoResult
from ..files import open_regular
from ..sources.folder import Listing
from ..sources.skips import display_path, skipped_for_oserror
from .pipeline import CRASHED, Method

PHOTO_MODES = ("auto", "shared", "send")
WINDOW_PER_THREAD = 3  # Dask tasks in flight per worker thread: enough to keep every worker fed
# Pipeline tasks (one photo each, or a CNN batch) sent together as one Dask task,
# up to this many photos: Dask's per-task cost (measured here: ~5 ms of
# scheduler and ~10 ms of client CPU, against ~45 ms to encode an LFW photo) is
# then shared.  Each pipeline task still runs on its own, so results are the same.
PHOTOS_PER_DASK_TASK = 4
WINDOW_REFRESH = 5.0  # seconds between looks at how many threads the cluster has now
# A Dask scheduler greets a new connection at once (its handshake, in ms); a listener that says
# nothing for this long (or Dask's connect timeout, if shorter) is not one.
HANDSHAKE_TIMEOUT = 10.0
DEFAULT_PORT = 8786


class DaskError(Exception):
    """The cluster can't do this run; ``str()`` is the one line to print."""


def connect(address: str, method: Method, listing: Listing, photos: str = "auto",
            say: Callable[[str], None] = print) -> "DaskRunner":
    """A runner on the Dask scheduler at ``address``, checked and ready; :class:`DaskError` if not.

    ``photos``: ``shared`` (the workers read the photos at the same path),
    ``send`` (this machine reads them and sends the bytes) or ``auto``
    (shared when every worker sees them, else send).  ``say`` gets the
    lines that describe the cluster.  How long to wait for the scheduler, and
    for a first worker, is Dask's ``distributed.comm.timeouts.connect`` (30 s;
    ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s`` waits less).
    """
    address = check_address(address)
    timeout = _connect_timeout()
    if address.startswith("tcp://"):
        probe_scheduler(address, min(timeout, HANDSHAKE_TIMEOUT))
    client = _client(address)
    try:
        threads = _check_cluster(client, address, method, timeout)
        send, why = _photo_mode(client, listing, photos)
    except BaseException:
        client.close()
        raise
    say(f"[INFO] Dask: {address}, {len(threads)} workers, {sum(threads.values())} threads; photos {why}")
    return DaskRunner(client, send)


def check_address(address: str) -> str:
    """``address`` as Dask spells it (``tcp://HOST:PORT``; a bare ``HOST[:PORT]`` is TCP on port 8786);
    :class:`DaskError` with one line for anything else (``http://``, ``inproc://``, a typo).

    ``tls://`` is passed on only when Dask's TLS settings (``distributed.comm.tls``) are configured.
    """
    _require_distributed()  # its settings (timeouts, TLS) join Dask's config when it is imported
    import dask.config

    scheme, found, rest = address.strip().partition("://")
    if not found:
        scheme, rest = "tcp", address.strip()
    usage = f"--dask {address}: give the scheduler's address as tcp://HOST:PORT (e.g. tcp://10.0.0.5:{DEFAULT_PORT})"
    if scheme not in ("tcp", "tls"):
        raise DaskError(f"{usage}; {scheme}:// is not a Dask scheduler's protocol here")
    host, port = _host_and_port(rest)
    if not host or port is None or not 0 < port < 65536 or any(c in host for c in "/?#@ "):
        raise DaskError(usage)
    if scheme == "tls" and not dask.config.get("distributed.comm.tls.ca-file", None):
        raise DaskError(f"--dask {address}: TLS needs Dask's security settings (distributed.comm.tls: ca-file, and "
                        "the client's cert and key; docs/dask.md); without them use tcp:// on a private network "
                        "or through an SSH tunnel")
    return f"{scheme}://{host}:{port}"


def _host_and_port(rest: str) -> tuple[str, int | None]:
    """``("HOST", PORT)`` from ``HOST[:PORT]`` or ``[IPv6][:PORT]``; the port is ``None`` when it is no number."""
    if rest.startswith("["):
        host, _, tail = rest.partition("]")
        host, port_text = host + "]", tail[1:] if tail.startswith(":") else tail or ""
        if tail and not tail.startswith(":"):
            return host, None
    elif rest.count(":") > 1:  # an IPv6 address needs its brackets
        return "", None
    else:
        host, _, port_text = rest.partition(":")
    try:
        return host, int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        return host, None


def probe_scheduler(address: str, timeout: float) -> None:
    """Connect to ``address`` (tcp://) and read the first bytes a Dask scheduler sends; :class:`DaskError`
    if it can't be reached, says nothing within ``timeout`` s, or says something else (an HTTP server ...).

    Dask's own client would wait forever on a silent listener and try to allocate
    exabytes for an HTTP reply; this look first costs one round trip.
    """
    import socket
    import struct

    host, port = _host_and_port(address.removeprefix("tcp://"))
    try:
        connection = socket.create_connection((host.strip("[]"), port), timeout=timeout)
    except OSError as error:  # refused, no route, unknown host, a timeout
        reason = error.strerror or _one_line(error) if not isinstance(error, TimeoutError) else f"no answer in {timeout:.0f} s"
        raise DaskError(f"cannot reach the Dask scheduler at {address}: {reason}") from None
    with connection:
        greeting = _first_bytes(connection, 16, timeout)
    if not greeting:
        raise DaskError(f"{address} is not a Dask scheduler: it took the connection but said nothing in "
                        f"{timeout:.0f} s (a scheduler greets at once); check the host and port")
    total, frames = struct.unpack("<QQ", greeting.ljust(16, b"\0"))
    if len(greeting) < 16 or not 0 < total < 2**20 or not 0 < frames < 1000:
        shown = greeting.decode("ascii", "replace").encode("unicode_escape").decode()
        raise DaskError(f"{address} is not a Dask scheduler: it answered {shown!r}..., not Dask's handshake; "
                        "check the host and port")


def _first_bytes(connection, count: int, timeout: float) -> bytes:
    """Up to ``count`` bytes the peer sends within ``timeout`` seconds (fewer if it stops or closes)."""
    received = b""
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline:
        connection.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = connection.recv(count - len(received))
        except OSError:  # a timeout, or a reset
            break
        if not chunk:
            break
        received += chunk
    return received


def _connect_timeout() -> float:
    """Dask's own connect timeout, in seconds."""
    import dask.config
    from dask.utils import parse_timedelta

    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="s"))


def _require_distributed() -> None:
    """Import Dask distributed; :class:`DaskError` with one line where it is not installed."""
    try:
        importlib.import_module("distributed")
    except ImportError as error:
        raise DaskError(f"--dask needs Dask distributed on this machine ({error}): pip install -r requirements.txt") from None


def _client(address: str):
    """A connected ``distributed.Client``; :class:`DaskError` if the scheduler can't be reached."""
    _require_distributed()
    from distributed import Client

    # Dask's own warnings (a result re-fetched after its worker died ...) are
    # handled here; the workers' logs keep the details.
    logging.getLogger("distributed").setLevel(logging.ERROR)
    try:
        return Client(address, timeout=_connect_timeout(), set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise DaskError(f"cannot reach the Dask scheduler at {address}: {_one_line(error)}") from None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _check_cluster(client, address: str, method: Method, timeout: float) -> dict[str, int]:
    """Scheduler and workers run this project at the same versions, models load on each worker;
    returns the workers' thread counts."""
    from distributed import TimeoutError as DaskTimeout

    from . import dask_tasks

    ours = dask_tasks.environment()
    try:  # recent distributed unpickles every task graph on the scheduler
        scheduler = client.run_on_scheduler(dask_tasks.environment)
    except Exception as error:  # a scheduler without this project can't even unpickle the check
        raise DaskError(f"the Dask scheduler cannot run facecluster ({type(error).__name__}: {_one_line(error)}):"
                        " start it from the .venv that make install made (docs/dask.md)") from None
    mismatch = version_mismatch(ours, {address: scheduler}, "scheduler")
    if mismatch:
        raise DaskError(mismatch)
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (DaskTimeout, TimeoutError):
        raise DaskError(f"no Dask worker joined the scheduler at {address} within {timeout:.0f} s") from None
    try:
        theirs = client.run(dask_tasks.environment)
    except Exception as error:  # a worker without this project can't even unpickle the check
        raise DaskError(f"the Dask workers cannot run facecluster ({type(error).__name__}: {_one_line(error)}):"
                        " install this project on every worker (docs/dask.md)") from None
    mismatch = version_mismatch(ours, theirs)
    if mismatch:
        raise DaskError(mismatch)
    try:
        client.register_plugin(dask_tasks.ModelsPlugin(method), name=f"facecluster-models-{method.cache_key()}")
    except Exception as error:
        raise DaskError(f"the Dask workers cannot load the models ({type(error).__name__}: {_one_line(error)}):"
                        " install requirements.txt on every worker") from None
    return client.nthreads()


def version_mismatch(ours: dict[str, str], theirs: dict[str, dict[str, str]], role: str = "worker") -> str | None:
    """The one line naming the first difference between this machine and a Dask ``role``
    (``theirs``: each one's address and versions), or ``None``."""
    for where, versions in sorted(theirs.items()):
        for name, version in ours.items():
            if versions.get(name) != version:
                return (f"version mismatch between this machine and Dask {role} {where}: {name} {version} here,"
                        f" {versions.get(name, 'missing')} there; install the same versions everywhere")
    return None


def _photo_mode(client, listing: Listing, photos: str) -> tuple[bool, str]:
    """Whether to send the photos' bytes, and why, in words; :class:`DaskError` if ``shared`` can't be."""
    from . import dask_tasks

    if photos == "send":
        return True, "sent from this machine (--dask-photos send)"
    where = display_path(os.path.abspath(listing.root or os.path.dirname(listing.images[0])))
    seen = client.run(dask_tasks.sees, _samples(listing.images))
    blind = sorted(worker for worker, ok in seen.items() if not ok)
    if not blind:
        return False, f"read by the workers from shared storage ({where})"
    if photos == "shared":
        raise DaskError(f"Dask worker {blind[0]} cannot see the photos at {where}: mount them at the same path"
                        " on every worker, or use --dask-photos send")
    return True, f"sent from this machine ({len(blind)} of {len(seen)} workers cannot see {where})"


def _samples(paths: list[str]) -> list[tuple[str, int]]:
    """The first, middle and last photo as ``(absolute path, size)``, for the workers to look for."""
    picked = {paths[0], paths[len(paths) // 2], paths[-1]}
    return [(os.path.abspath(path), os.stat(path).st_size) for path in sorted(picked) if os.path.exists(path)]


class DaskRunner:
    """Runs encoding tasks on a Dask cluster; a :data:`~facecluster.run.pipeline.Runner`.

    A bounded window of tasks is in flight (a few per worker thread), so a
    million photos never sit in the scheduler's memory, nor their bytes in
    this one's.  A task whose worker died is run again elsewhere by Dask;
    one that killed ``distributed.scheduler.allowed-failures`` + 1 workers
    comes back as ``KilledWorker``: a batch is then split into single
    photos, and a single photo is reported as crashed, as locally.
    """

    def __init__(self, client, send: bool):
        self.client = client
        self.send = send
        self.workers_seen: set[str] = set()
        self.photos_done = 0

    def __call__(self, tasks: list[list[str]], method: Method, workers: int) -> Iterator[PhotoResult]:
        """Yield every photo's result as the cluster finishes it (``workers`` is the cluster's own)."""
        from distributed import as_completed

        pending = deque(_grouped(tasks, PHOTOS_PER_DASK_TASK))
        in_flight: dict = {}
        finished = as_completed(loop=self.client.loop)
        window, looked = self._window(), time.monotonic()
        try:
            yield from self._submit(pending, in_flight, finished, method, window)
            for future in finished:
                task = in_flight.pop(future)
                yield from self._collect(future, task, pending)
                if time.monotonic() - looked > WINDOW_REFRESH:
                    window, looked = self._window(), time.monotonic()
                yield from self._submit(pending, in_flight, finished, method, window)
        finally:
            if in_flight and self.client.status == "running":
                self.client.cancel(list(in_flight))
            self.close()

    def _window(self) -> int:
        return max(4, WINDOW_PER_THREAD * sum(self.client.nthreads().values()))

    def _submit(self, pending: deque, in_flight: dict, finished, method: Method, window: int) -> Iterator[PhotoResult]:
        """Send tasks until ``window`` are in flight; yields the results of photos that could not be read here."""
        from . import dask_tasks

        while pending and len(in_flight) < window:
            paths, payload, unreadable = self._payload(pending.popleft())
            yield from unreadable
            if paths:
                future = self.client.submit(dask_tasks.encode_task, payload, method, pure=False)
                in_flight[future] = paths
                finished.add(future)

    def _payload(self, group: list[list[str]]) -> tuple[list[str], list[list], list[PhotoResult]]:
        """For a group of pipeline tasks: the paths a worker will do, in order; what it gets for each
        task (absolute paths, or the photos' bytes); and the results of photos this machine could not read."""
        if not self.send:
            return [path for task in group for path in task], [[os.path.abspath(p) for p in task] for task in group], []
        unreadable: list[PhotoResult] = []
        payload = [sent for sent in (_read(task, unreadable) for task in group) if sent]
        return [photo.path for sent in payload for photo in sent], payload, unreadable

    def _collect(self, future, task: list[str], pending: deque) -> Iterator[PhotoResult]:
        """The results of a finished task, under the paths the listing gives; a dead worker's batch goes back in line."""
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        try:
            worker, results = future.result()
        except KilledWorker:  # each photo again, on its own
            if len(task) > 1:
                pending.extendleft([[path]] for path in reversed(task))
            else:
                yield PhotoResult(task[0], "skipped", [], CRASHED, "crashed", transient=True)
            return
        except CancelledError:
            raise DaskError("lost the Dask scheduler mid-run; finished photos are kept, run again to resume") from None
        except Exception as error:  # not a photo's fault: encode_photos turns those into results
            raise DaskError(f"a Dask worker failed on {display_path(task[0])}: {type(error).__name__}:"
                            f" {_one_line(error)}") from None
        self.workers_seen.add(worker)
        self.photos_done += len(results)
        for path, result in zip(task, results):
            yield result if result.path == path else replace(result, path=path)

    def close(self) -> None:
        """Let go of the scheduler (the cluster and its loaded models stay up for the next run)."""
        if self.client.status not in ("closed", "closing"):
            self.client.close()

    def __enter__(self) -> "DaskRunner":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()  # on an error or Ctrl-C too: an open client prints tracebacks as the process ends

    def summary(self) -> str:
        """One line: how many photos the cluster encoded, on how many workers."""
        return f"[INFO] Dask: {self.photos_done} photos encoded on {len(self.workers_seen)} workers"


def _grouped(tasks: list[list[str]], photos: int) -> Iterator[list[list[str]]]:
    """Consecutive pipeline tasks, gathered until a group holds at least ``photos`` photos."""
    group: list[list[str]] = []
    for task in tasks:
        group.append(task)
        if sum(len(each) for each in group) >= photos:
            yield group
            group = []
    if group:
        yield group


def _read(task: list[str], unreadable: list[PhotoResult]):
    """The task's photos read here, to send (:class:`SentPhoto`); those that can't be read go to ``unreadable``."""
    from .dask_tasks import SentPhoto

    sent = []
    for path in task:
        try:
            with open_regular(path) as handle:
                info = os.fstat(handle.fileno())
                sent.append(SentPhoto(path, handle.read(), info.st_size, info.st_mtime_ns))
        except OSError as error:
            skipped = skipped_for_oserror(error)
            unreadable.append(PhotoResult(path, "skipped", [], skipped.reason, skipped.category, skipped.transient))
    return sent

"""A real Dask cluster on this machine: ``dask scheduler`` and ``dask worker`` processes.

For the tests and benchmarks (and trying ``--dask`` on one machine): the
same commands a user runs on several machines, as separate processes from
this Python's environment, on 127.0.0.1 only, and always stopped.

    with local_cluster(Path("logs"), workers=2) as cluster:
        ... encode_faces.py --dask cluster.address ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

PROJECT = Path(__file__).resolve().parent.parent.parent
_DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
_WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]


# The settings docs/dask.md recommends for CPU-bound workers: no statistical
# profiler sampling the task thread every 10 ms (it feeds only the dashboard),
# and slower health checks.  Measured idle here: 0.44 CPU s per 30 s for a
# scheduler and two workers, instead of 3.7 (6% of this 2-core machine).
QUIET_SETTINGS = {
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
    "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "1s",
    "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "2s",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalCluster:
    """The processes of a local cluster; ``address`` is the scheduler's."""

    address: str
    log_folder: Path
    env: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, command: list[str], log: str, env: dict[str, str] | None = None) -> None:
        with open(self.log_folder / log, "ab") as output:
            self.processes.append(subprocess.Popen(
                command, env={**self.env, **(env or {})}, stdout=output, stderr=subprocess.STDOUT,
                cwd=self.log_folder, start_new_session=True,  # its own group: stopped with its nanny's children
            ))

    def add_worker(self, name: str, *options: str, env: dict[str, str] | None = None) -> None:
        """One ``dask worker`` (with its nanny, one thread) joined to this scheduler."""
        self.start([*_WORKER, self.address, "--name", name, "--nthreads", "1", "--host", "127.0.0.1",
                    "--no-dashboard", *options], f"{name}.log", env)

    def wait_for_scheduler(self, timeout: float = 120) -> None:
        """Until the scheduler's port takes connections (a loaded machine may need seconds to start it);
        ``TimeoutError`` with the logs' folder otherwise."""
        host, port = self.address.removeprefix("tcp://").rsplit(":", 1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                    raise TimeoutError(f"the scheduler at {self.address} did not start; logs in {self.log_folder}") from None
                time.sleep(0.2)

    def wait_for_workers(self, count: int, timeout: float = 120) -> None:
        """Until ``count`` workers are joined; ``TimeoutError`` with the logs' folder otherwise."""
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            try:
                client.wait_for_workers(count, timeout=timeout)
            except Exception as error:
                raise TimeoutError(f"{count} Dask workers did not join in {timeout} s (logs: {self.log_folder})") from error

    def stop(self) -> None:
        """Stop every process and its children: SIGTERM, then SIGKILL after 10 s."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def local_cluster(log_folder: Path, workers: int = 2, scheduler_env: dict[str, str] | None = None,
                  worker_options: tuple[str, ...] = (), timeout: float = 120) -> Iterator[LocalCluster]:
    """A scheduler and ``workers`` single-thread workers on 127.0.0.1, joined, then stopped.

    The processes import this checkout through ``PYTHONPATH``, whichever
    checkout ``make install`` put into the environment (as a worker machine
    imports its install).  Logs go to ``log_folder``.
    """
    path = os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, **QUIET_SETTINGS, PYTHONPATH=path)
    port = free_port()
    cluster = LocalCluster(f"tcp://127.0.0.1:{port}", log_folder, env)
    try:
        cluster.start([*_DASK, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], "scheduler.log",
                      scheduler_env)
        for number in range(workers):
            cluster.add_worker(f"worker-{number + 1}", *worker_options)
        if workers:
            cluster.wait_for_workers(workers, timeout)
        yield cluster
    finally:
        cluster.stop()

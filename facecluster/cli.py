"""What the two scripts share: one-line errors, exit codes, progress display.

Bad input ends in one clear line and exit status 2, never a traceback.  An
unexpected failure also gets one line (exit 1).  ``FACECLUSTER_DEBUG=1`` adds
the traceback to either, for a developer chasing a wrong exit-2 verdict.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from typing import Callable, NoReturn

from .sources.skips import display_path

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process the signal killed


class UsageError(Exception):
    """Input the whole run can't go on with; ``str()`` is the one line to print."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: ends the run as Ctrl-C does (workers stopped, finished work kept), exit 143."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def one_line(problem: BaseException) -> str:
    """The line for a known error: an ``OSError`` as ``FILE: reason`` (a full disk, a name too long ...)."""
    if isinstance(problem, OSError) and problem.strerror:
        where = problem.filename if problem.filename is not None else ""
        return f"{display_path(where)}: {problem.strerror}" if where != "" else problem.strerror
    return str(problem)


def error(message: str) -> None:
    print(f"[ERROR] {message}", file=sys.stderr)


def warning(message: str) -> None:
    print(f"[WARNING] {message}", file=sys.stderr)


def run(main: Callable[[], int | None], known_errors: tuple[type[BaseException], ...] = ()) -> NoReturn:
    """Run a script's ``main`` and turn every way it can end into an exit status."""
    # The package logs what a user should see (a photo that vanished since it
    # was encoded, ...); show it in the scripts' own style.
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _terminate)  # `kill PID`: stop the workers and keep what is done, as Ctrl-C
    try:
        status = main() or 0
    except (UsageError, *known_errors) as problem:
        if _debugging():
            traceback.print_exc()
        error(one_line(problem))
        status = EXIT_BAD_INPUT
    except KeyboardInterrupt as stop:
        error(("terminated" if isinstance(stop, Terminated) else "interrupted")
              + "; finished work is kept, run the same command again to resume")
        status = EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    except Exception as problem:  # a bug or an environment failure: still one line
        if _debugging():
            traceback.print_exc()
        error(f"unexpected failure: {type(problem).__name__}: {problem} (FACECLUSTER_DEBUG=1 shows details)")
        status = 1
    sys.stdout.flush()
    sys.exit(status)


def _debugging() -> bool:
    return os.environ.get("FACECLUSTER_DEBUG", "") not in ("", "0")


class Progress:
    """A progress bar with rate and ETA on a terminal; the tutorial's lines otherwise."""

    def __init__(self, total: int, description: str = "encoding"):
        self.total = total
        self.count = 0
        self.bar = None
        if sys.stderr.isatty() and total:
            from tqdm import tqdm

            tqdm.monitor_interval = 0  # no monitor thread: workers are forked after this
            self.bar = tqdm(total=total, desc=description, unit="photo", file=sys.stderr, dynamic_ncols=True)

    def step(self, note: str = "") -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)
        else:
            print(f"[INFO] processing image {self.count}/{self.total}{note}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

"""What the two scripts share: one-line errors, exit codes, progress display.

Bad input ends in one clear line and exit status 2, never a traceback.  An
unexpected failure also gets one line (exit 1).  ``FACECLUSTER_DEBUG=1`` adds
the traceback to either, for a developer chasing a wrong exit-2 verdict.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Callable, NoReturn

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Input the whole run can't go on with; ``str()`` is the one line to print."""


def error(message: str) -> None:
    print(f"[ERROR] {message}", file=sys.stderr)


def warning(message: str) -> None:
    print(f"[WARNING] {message}", file=sys.stderr)


def run(main: Callable[[], int | None], known_errors: tuple[type[BaseException], ...] = ()) -> NoReturn:
    """Run a script's ``main`` and turn every way it can end into an exit status."""
    # The package logs what a user should see (a photo that vanished since it
    # was encoded, ...); show it in the scripts' own style.
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    try:
        status = main() or 0
    except (UsageError, *known_errors) as problem:
        if _debugging():
            traceback.print_exc()
        error(str(problem))
        status = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        error("interrupted; finished work is kept, run the same command again to resume")
        status = EXIT_INTERRUPTED
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

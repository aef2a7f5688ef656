"""Where the benchmarks find the project and the labelled photos, and how they name the machine.

Every benchmark imports this first (``python benchmarks/x.py`` puts
``benchmarks/`` on ``sys.path``): it puts the repository root and
``benchmarks/`` there too, so a benchmark runs from any folder, with any Python
that has the requirements, and imports the project and its sibling benchmarks.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def faces_data() -> Path:
    """The labelled photo sets: ``$FACES_DATA``, else ``../shared/datasets`` beside
    the checkout (where CI and the dev machine keep them)."""
    return Path(os.environ.get("FACES_DATA") or ROOT.parent / "shared" / "datasets")


def machine() -> str:
    """The machine and the library versions a result was measured with, in one line."""
    import numpy as np
    import sklearn

    try:
        import dlib
        dlib_version = dlib.__version__
    except ImportError:  # pragma: no cover
        dlib_version = "absent"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, dlib {dlib_version}")
